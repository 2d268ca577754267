"""Storage faults fail ONE operation cleanly, and the server stays healthy.

* ENOSPC for real: the data dir is a small loop-mounted ext4 filesystem, filled so that a
  snapshot copy (create) or the verified copy of a restore (apply) runs out of space.
* EIO through the product's opt-in fault injection (``LIGHTKEEPER_FAULTS=storage.copy:eio:1``,
  off by default; see storage/faults.py): the next copy fails part-way with an I/O error.

A failed create removes the snapshot and releases its quota; a failed apply leaves the
snapshot NORMAL with LatestOperationState FAILED, the disk byte for byte unchanged and the
instance unlocked; the job history says why; the next operations succeed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models
from testkit import world
from testkit.server import Account, Server, free_port

from tests.support.drivers import storages
from tests.support.mounts import loop_mounted

MiB = world.MiB
DATA = 40 * MiB  # several copy chunks (8 MiB): the faults hit in the middle of a copy


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 192 MiB ext4 filesystem, loop-mounted: small enough to fill for real."""
    with loop_mounted(tmp_path, "ext4", 192 * MiB) as mount:
        yield mount


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start (or restart) a server; ``faults`` is its LIGHTKEEPER_FAULTS environment."""
    started: list[Server] = []

    def factory(
        data_dir: Path, storage: str, faults: str = "", server: Server | None = None
    ) -> Server:
        if server is None:
            server = Server(data_dir, free_port(), _args(storage))
            server.log_path = tmp_path / f"server-{len(started)}.log"
        os.environ["LIGHTKEEPER_FAULTS"] = faults  # inherited by the server process only
        try:
            server.start(timeout=30)
        finally:
            del os.environ["LIGHTKEEPER_FAULTS"]
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


def _args(storage: str) -> tuple[str, ...]:
    return ("--storage", storage, "--no-rate-limit", "--transition-seconds", "0")


def _filler(mount: Path, leave: int) -> Callable[[], Callable[[], None]]:
    """A fault: allocate all free space of the filesystem but ``leave`` bytes."""

    def fill() -> Callable[[], None]:
        filler = mount / "filler"
        stat = os.statvfs(mount)
        with filler.open("wb") as f:
            os.posix_fallocate(f.fileno(), 0, max(stat.f_bavail * stat.f_frsize - leave, 1))
        return filler.unlink

    return fill


def _nothing() -> Callable[[], None]:
    """The fault is already armed (LIGHTKEEPER_FAULTS of the server)."""
    return lambda: None


def _quota_used(c: lighthouse_client.LighthouseClient) -> int:
    request = models.DescribeGeneralResourceQuotasRequest()
    request.ResourceNames = ["SNAPSHOT"]
    (quota,) = c.DescribeGeneralResourceQuotas(request).GeneralResourceQuotaSet
    return int(quota.ResourceQuotaTotal - quota.ResourceQuotaAvailable)


def _last_job(server: Server, kind: str) -> dict[str, Any]:
    history = server.admin("job", "list", "--json")
    job: dict[str, Any] = next(j for j in history if j["kind"] == kind)
    return job


def _setup(server: Server) -> tuple[Account, str, lighthouse_client.LighthouseClient]:
    account = world.new_account(server, "faults")
    instance_id = world.create_instance(server, account, "ap-guangzhou", "--state", "STOPPED")[
        "InstanceId"
    ]
    world.disk_write(server, instance_id, 8 * MiB, os.urandom(DATA))
    return account, instance_id, world.client(server, account)


def _create_fails_cleanly(
    server: Server,
    c: lighthouse_client.LighthouseClient,
    instance_id: str,
    reason: str,
    fault: Callable[[], Callable[[], None]],
) -> None:
    """``fault()`` makes the next copy fail and returns how to undo that."""
    disk = world.disk_sha256(server, instance_id)
    undo = fault()
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_for(lambda: world.snapshot(c, snapshot_id), lambda s: s is None, timeout=30)
    undo()
    assert _quota_used(c) == 0  # released
    job = _last_job(server, "create_snapshot")
    assert (job["snapshot_id"], job["state"]) == (snapshot_id, "FAILED")
    assert "snapshot copy failed" in job["message"] and reason in job["message"], job
    instance = world.instance(c, instance_id)
    assert instance.LatestOperationState != "OPERATING"
    assert world.disk_sha256(server, instance_id) == disk
    assert not list((server.data_dir / "snapshots").glob(f"{snapshot_id}*"))


def _as_a_guest_writes(server: Server) -> None:
    """qcow2: write the image outside the driver, as a running guest does. Its trust epoch
    then ends (storage/qcow2.py), so the next Apply reads the snapshot whole and meets the
    fault; a sealed snapshot would be switched to without reading or copying anything."""
    for image in (server.data_dir / "disks").glob("*.qcow2"):
        command = ["qemu-io", "-f", "qcow2", "-c", "write -P 5 0 64k", str(image)]
        subprocess.run(command, check=True, capture_output=True)


def _apply_fails_cleanly(
    server: Server,
    c: lighthouse_client.LighthouseClient,
    instance_id: str,
    snapshot_id: str,
    reason: str,
    fault: Callable[[], Callable[[], None]],
) -> None:
    _as_a_guest_writes(server)
    disk = world.disk_sha256(server, instance_id)
    undo = fault()
    world.apply_snapshot(c, instance_id, snapshot_id)
    snap = world.wait_for(
        lambda: world.snapshot(c, snapshot_id),
        lambda s: s.LatestOperationState != "OPERATING",
        timeout=30,
    )
    undo()
    assert (snap.SnapshotState, snap.LatestOperationState) == ("NORMAL", "FAILED")
    instance = world.instance(c, instance_id)
    assert instance.LatestOperationState == "FAILED"
    assert instance.InstanceState == "STOPPED"
    job = _last_job(server, "apply_snapshot")
    assert job["state"] == "FAILED"
    assert "rollback failed" in job["message"] and reason in job["message"], job
    assert world.disk_sha256(server, instance_id) == disk  # unchanged, byte for byte
    assert _quota_used(c) == 1


def _healthy(
    server: Server, c: lighthouse_client.LighthouseClient, instance_id: str, snapshot_id: str
) -> None:
    """The same operations now succeed: apply restores the snapshot, a new one is taken."""
    expected = server.admin("snapshot", "sha256", snapshot_id, "--json")
    assert expected["Verified"] is True
    world.apply_snapshot(c, instance_id, snapshot_id)
    snap = world.wait_for(
        lambda: world.snapshot(c, snapshot_id),
        lambda s: s.LatestOperationState != "OPERATING",
        timeout=30,
    )
    assert snap.LatestOperationState == "SUCCESS"
    assert world.disk_sha256(server, instance_id) == expected["Sha256"]
    assert world.instance(c, instance_id).LatestOperationState == "SUCCESS"
    world.wait_normal(c, world.create_snapshot(c, instance_id))
    assert _quota_used(c) == 2


@pytest.mark.parametrize("storage", storages())
def test_disk_full_fails_one_create_and_one_apply_cleanly(
    storage: str, small_fs: Path, start_server: Callable[..., Server]
) -> None:
    server = start_server(small_fs / "data", storage)
    _, instance_id, c = _setup(server)

    fill = _filler(small_fs, leave=12 * MiB)  # less than the 40 MiB a copy needs
    if storage == "qcow2":  # an internal snapshot copies no data (issue #14): it needs no room
        undo = fill()
        try:
            taken = world.create_snapshot(c, instance_id)
            world.wait_normal(c, taken)
        finally:
            undo()
        gone = models.DeleteSnapshotsRequest()
        gone.SnapshotIds = [taken]
        c.DeleteSnapshots(gone)
    else:
        _create_fails_cleanly(server, c, instance_id, "No space left on device", fill)

    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    world.disk_write(server, instance_id, 8 * MiB, os.urandom(DATA))  # diverge from it

    _apply_fails_cleanly(server, c, instance_id, snapshot_id, "No space left on device", fill)
    _healthy(server, c, instance_id, snapshot_id)


@pytest.mark.parametrize("storage", storages())
def test_io_error_fails_one_create_and_one_apply_cleanly(
    storage: str, tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, storage, faults="storage.copy:eio:1")
    _, instance_id, c = _setup(server)
    _create_fails_cleanly(server, c, instance_id, "Input/output error (injected fault", _nothing)

    snapshot_id = world.create_snapshot(c, instance_id)  # the one injected fault is spent
    world.wait_normal(c, snapshot_id)
    world.disk_write(server, instance_id, 8 * MiB, os.urandom(DATA))

    server.stop()
    start_server(data_dir, storage, faults="storage.copy:eio:1", server=server)  # same port
    _apply_fails_cleanly(server, c, instance_id, snapshot_id, "Input/output error", _nothing)
    _healthy(server, c, instance_id, snapshot_id)


def test_fault_injection_is_off_by_default_and_rejects_typos(
    tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    server = start_server(tmp_path / "data", "raw")
    _, instance_id, c = _setup(server)
    world.wait_normal(c, world.create_snapshot(c, instance_id))
    assert "fault injection" not in server.log()
    server.stop()
    with pytest.raises(AssertionError, match="cannot parse"):
        start_server(tmp_path / "data", "raw", faults="storage.copy:eoi")
