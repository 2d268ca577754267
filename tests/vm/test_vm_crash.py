"""kill -9 of the server during a live snapshot and during a rollback of a running guest:
after a restart every snapshot is NORMAL (or cleanly gone), quota is exact, and the machine is
either running or cleanly STOPPED."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Server

from tests.vm.test_live_snapshots import snapshot_records, vm_args, wait_written


@pytest.fixture
def paced_vm_server(
    make_server: Callable[..., Server], guest: tuple[Path, Path]
) -> Iterator[Server]:
    """Operations paced to 3 s, so the server can be killed in the middle of one."""
    server = make_server(*vm_args(guest), "--operation-seconds", "3")
    yield server
    for pidfile in (server.data_dir / "vms").glob("*/qemu.pid"):
        try:
            os.kill(int(pidfile.read_text().split()[0]), 9)
        except (ValueError, ProcessLookupError):
            pass


def _kill_midway(server: Server, c: object, snapshot_id: str, state: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snap = world.snapshot(c, snapshot_id)  # type: ignore[arg-type]
        if snap is not None and snap.SnapshotState == state and 0 < snap.Percent < 100:
            server.kill()
            return
        time.sleep(0.05)
    raise AssertionError("never saw the operation in progress")


def _settled(server: Server, c: object) -> list[models.Snapshot]:
    server.start()
    return list(
        world.wait_for(
            lambda: c.DescribeSnapshots(models.DescribeSnapshotsRequest()).SnapshotSet,  # type: ignore[attr-defined]
            lambda snaps: all(s.LatestOperationState != "OPERATING" for s in snaps),
            timeout=30,
            interval=0.2,
        )
    )


def test_kill_during_live_snapshot_and_rollback(
    paced_vm_server: Server, records: ModuleType, tmp_path: Path
) -> None:
    server = paced_vm_server
    account = world.new_account(server, "vmcrash")
    created = world.create_instance(server, account)
    instance_id, disk_id = created["InstanceId"], created["SystemDisk"]["DiskId"]
    c = world.client(server, account)
    wait_written(server, instance_id, 50)

    snapshot_id = world.create_snapshot(c, instance_id)
    _kill_midway(server, c, snapshot_id, "CREATING")
    settled = _settled(server, world.client(server, account))
    c = world.client(server, account)
    assert all(s.SnapshotState == "NORMAL" for s in settled)
    if not settled:  # failed cleanly: take it again
        snapshot_id = world.create_snapshot(c, instance_id)
        world.wait_normal(c, snapshot_id, timeout=60)
    assert world.instance(c, instance_id).InstanceState == "RUNNING"
    k, problems, _ = snapshot_records(server, disk_id, snapshot_id, records, tmp_path)
    assert problems == [] and k >= 50
    wait_written(server, instance_id, k + 50)  # the guest writes on: it was not left frozen
    quota = models.DescribeGeneralResourceQuotasRequest()
    quota.ResourceNames = ["SNAPSHOT"]
    (used,) = c.DescribeGeneralResourceQuotas(quota).GeneralResourceQuotaSet
    assert used.ResourceQuotaTotal - used.ResourceQuotaAvailable == 1

    world.apply_snapshot(c, instance_id, snapshot_id)
    _kill_midway(server, c, snapshot_id, "ROLLBACKING")
    settled = _settled(server, world.client(server, account))
    c = world.client(server, account)
    assert [(s.SnapshotId, s.SnapshotState) for s in settled] == [(snapshot_id, "NORMAL")]
    assert settled[0].LatestOperationState == "SUCCESS"
    after = world.wait_for(
        lambda: world.instance(c, instance_id),
        lambda i: i.LatestOperationState != "OPERATING",
        timeout=30,
    )
    assert after.InstanceState == "STOPPED"  # cleanly stopped, not left half-way
    start = models.StartInstancesRequest()
    start.InstanceIds = [instance_id]
    c.StartInstances(start)
    world.wait_for(
        lambda: world.instance(c, instance_id), lambda i: i.InstanceState == "RUNNING", timeout=60
    )
