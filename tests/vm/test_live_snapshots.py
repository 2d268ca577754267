"""qcow2 + qemu through the official SDK: a running guest writes numbered records; a snapshot
taken while it writes holds records 1..k with no gap or torn record, and (the guest runs the
QEMU guest agent) the quiesce marker its fsfreeze hook writes after k; ApplyInstanceSnapshot on
the RUNNING instance stops it and restores the disk; after StartInstances the guest continues
from k. Five rounds, as the issue asks."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Server

ACCEL = os.environ.get("LIGHTKEEPER_TEST_ACCEL", "tcg")


def vm_args(guest: tuple[Path, Path]) -> tuple[str, ...]:
    kernel, initrd = guest
    return (
        "--storage",
        "qcow2",
        "--compute",
        "qemu",
        "--qemu-kernel",
        str(kernel),
        "--qemu-initrd",
        str(initrd),
        "--qemu-accel",
        ACCEL,
        "--soft-stop-timeout",
        "10",
        "--transition-seconds",
        "0",
        "--no-rate-limit",
    )


def console(server: Server, instance_id: str) -> str:
    path = server.data_dir / "vms" / instance_id / "console.log"
    return path.read_text(errors="replace") if path.exists() else ""


def written(server: Server, instance_id: str) -> list[tuple[int, bool]]:
    """(k, is_start_line) for every LKGUEST line of the current boot."""
    found = re.findall(r"LKGUEST k=(\d+)( start)?", console(server, instance_id))
    return [(int(k), bool(start)) for k, start in found]


def wait_written(server: Server, instance_id: str, at_least: int, timeout: float = 90) -> int:
    lines = world.wait_for(
        lambda: written(server, instance_id),
        lambda seen: bool(seen) and seen[-1][0] >= at_least,
        timeout,
        0.2,
    )
    return lines[-1][0]


def snapshot_records(
    server: Server, disk_id: str, snapshot_id: str, records: ModuleType, tmp: Path
) -> tuple[int, list[str], bool]:
    """(k, problems, quiesced) of the snapshot's image (records.py)."""
    image = server.data_dir / "disks" / f"{disk_id}.qcow2"
    raw = tmp / f"{snapshot_id}.raw"
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-U",
            "-l",
            f"snapshot.name={snapshot_id}",
            "-O",
            "raw",
            str(image),
            str(raw),
        ],
        check=True,
        capture_output=True,
    )
    try:
        k, problems = records.parse(raw)
        return k, problems, records.quiesced(raw, k)
    finally:
        raw.unlink()


def kill_own_vms(server: Server) -> None:
    """SIGKILL the QEMUs of this server's data dir (only our own VMs, by their pidfiles)."""
    for pidfile in (server.data_dir / "vms").glob("*/qemu.pid"):
        try:
            os.kill(int(pidfile.read_text().split()[0]), 9)
        except (ValueError, ProcessLookupError):
            pass


@pytest.fixture
def vm_server(make_server: Callable[..., Server], guest: tuple[Path, Path]) -> Iterator[Server]:
    server = make_server(*vm_args(guest))
    yield server
    kill_own_vms(server)


def test_live_snapshot_is_crash_consistent_and_rollback_resumes_the_guest(
    vm_server: Server, records: ModuleType, tmp_path: Path
) -> None:
    server = vm_server
    account = world.new_account(server, "vm")
    created = world.create_instance(server, account)  # 1 GiB qcow2, RUNNING: boots the guest
    instance_id, disk_id = created["InstanceId"], created["SystemDisk"]["DiskId"]
    c = world.client(server, account)
    assert world.instance(c, instance_id).InstanceState == "RUNNING"

    for round_number in range(5):
        before = wait_written(server, instance_id, 50 * (round_number + 1))
        snapshot_id = world.create_snapshot(c, instance_id, f"live-{round_number}")
        world.wait_normal(c, snapshot_id, timeout=60)
        k, problems, quiesced = snapshot_records(server, disk_id, snapshot_id, records, tmp_path)
        assert problems == [], problems
        assert k >= before  # everything the guest had reported written is in the snapshot
        assert quiesced, "the guest agent did not hold the writer at a consistent point"
        assert world.instance(c, instance_id).InstanceState == "RUNNING"  # never paused long
        wait_written(server, instance_id, k + 60)  # the guest goes on writing past the snapshot

        world.apply_snapshot(c, instance_id, snapshot_id)
        # forced stop of a real VM (QMP quit) can finish before we look
        assert world.instance(c, instance_id).InstanceState in ("STOPPING", "STOPPED")
        done = world.wait_for(
            lambda sid=snapshot_id: world.snapshot(c, sid),
            lambda s: s.LatestOperationState != "OPERATING",
            timeout=60,
        )
        assert done.LatestOperationState == "SUCCESS"
        assert world.instance(c, instance_id).InstanceState == "STOPPED"

        start = models.StartInstancesRequest()
        start.InstanceIds = [instance_id]
        c.StartInstances(start)
        world.wait_for(
            lambda: world.instance(c, instance_id),
            lambda i: i.InstanceState == "RUNNING",
            timeout=60,
        )
        boot = world.wait_for(
            lambda: written(server, instance_id),
            lambda seen: any(s for _, s in seen),
            timeout=90,
            interval=0.2,
        )
        resumed = next(n for n, start_line in boot if start_line)
        assert resumed == k, (resumed, k)  # continues from the snapshot's last record

        delete = models.DeleteSnapshotsRequest()
        delete.SnapshotIds = [snapshot_id]
        c.DeleteSnapshots(delete)  # deleted through the running VM; frees the quota
        assert world.snapshot(c, snapshot_id) is None
        tags = subprocess.run(
            [
                "qemu-img",
                "snapshot",
                "-U",
                "-l",
                str(server.data_dir / "disks" / f"{disk_id}.qcow2"),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert snapshot_id not in tags


def test_a_machine_that_dies_is_seen_stopped_and_survives_a_server_restart(
    vm_server: Server,
) -> None:
    server = vm_server
    account = world.new_account(server, "vm")
    first = world.create_instance(server, account)["InstanceId"]
    second = world.create_instance(server, account)["InstanceId"]
    wait_written(server, first, 1)
    wait_written(server, second, 1)
    server.stop()  # the server goes; its machines stay up
    pids = {
        i: int((server.data_dir / "vms" / i / "qemu.pid").read_text().split()[0])
        for i in (first, second)
    }
    os.kill(pids[second], 9)  # one of them dies while nobody watches
    server.start()
    c = world.client(server, account)
    assert world.wait_for(
        lambda: world.instance(c, second), lambda i: i.InstanceState == "STOPPED", timeout=20
    ).InstanceState
    assert world.instance(c, first).InstanceState == "RUNNING"
    os.kill(pids[first], 0)  # still the same process: re-attached, not restarted
    stop = models.StopInstancesRequest()
    stop.InstanceIds = [first]
    stop.StopType = "SOFT"
    c.StopInstances(stop)
    world.wait_for(
        lambda: world.instance(c, first), lambda i: i.InstanceState == "STOPPED", timeout=30
    )
    assert world.wait_for(lambda: gone(pids[first]), bool, timeout=10)


def gone(pid: int) -> bool:
    """No such process, or a zombie nobody reaped (QEMU daemonizes away from its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
