"""A worker that stalled past its job's lease commits nothing (issue #11, defect 1).

Two real servers share one data dir. The one running a job is frozen with SIGSTOP for longer
than the lease, so the other takes the job over and finishes it; the instance is then started.
When the frozen server resumes (SIGCONT) it must not change anything: no rewritten job or
snapshot, no instance set back to STOPPED under its running machine, no snapshot data.
"""

from __future__ import annotations

import fcntl
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Server, free_port
from testkit.stall import database_writable, freeze

LEASE = 1.0
PACED = 2.0  # --operation-seconds: how long each attempt of a create/apply lasts at least
COMMON = (
    "--no-rate-limit",
    "--transition-seconds",
    "0",
    "--job-lease-seconds",
    str(LEASE),
    "--operation-seconds",
    str(PACED),
)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two servers on one data dir (one SQLite database, one set of disk images)."""
    data_dir = tmp_path / "data"
    first = Server(data_dir, free_port(), COMMON)
    first.start()
    second = Server(data_dir, free_port(), COMMON)
    second.start()
    yield first, second
    for server in (first, second):
        if server.process is not None and server.process.poll() is None:
            server.process.send_signal(signal.SIGCONT)
        server.stop()


def _job(data_dir: Path, kind: str) -> dict[str, Any] | None:
    """The newest job of ``kind``, read straight from the database (owner, epoch, state)."""
    with sqlite3.connect(f"file:{data_dir / 'lightkeeper.db'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        row = db.execute(
            "SELECT * FROM jobs WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)
        ).fetchone()
    return dict(row) if row is not None else None


def _owner(
    pair: tuple[Server, Server], kind: str, percent: int, snapshot: Any
) -> tuple[Server, Server]:
    """(the server running the newest ``kind`` job, the other one), once the job is running
    and its snapshot shows at least ``percent``."""
    first, second = pair
    job = world.wait_for(
        lambda: _job(first.data_dir, kind),
        lambda j: j is not None and j["state"] == "RUNNING" and bool(j["owner"]),
        timeout=20,
        interval=0.02,
    )
    world.wait_for(snapshot, lambda s: s.Percent >= percent, timeout=20, interval=0.02)
    assert job is not None
    if _runs_on(job, first):
        return first, second
    assert _runs_on(job, second)
    return second, first


def _epoch(data_dir: Path, kind: str) -> int:
    """The fencing token the newest ``kind`` job was last claimed with."""
    job = _job(data_dir, kind)
    assert job is not None
    return int(job["epoch"])


def _runs_on(job: dict[str, Any], server: Server) -> bool:
    assert server.process is not None
    return bool(job["owner"]) and int(job["owner"].split(":")[1]) == server.process.pid


@contextmanager
def _frozen(server: Server, kind: str) -> Iterator[None]:
    """SIGSTOP the server at a moment it holds no database lock, while it still runs the
    newest ``kind`` job. Frozen inside a write transaction, it would hold SQLite's one write
    lock, and every server on the data dir would wait for it (writes fail cleanly, nothing is
    taken over) until it resumes. A paced job commits its Percent every 0.2 s, so a freeze
    often lands inside one: each try gives up quickly (a frozen holder never lets go), or the
    job would be finished before a freeze held, and no take-over would ever come."""
    assert server.process is not None
    for _ in range(100):
        freeze(server.process.pid)
        if database_writable(server.data_dir, timeout=0.05):
            break
        server.process.send_signal(signal.SIGCONT)
        time.sleep(0.01)
    else:
        raise AssertionError("the server always held the database write lock")
    job = _job(server.data_dir, kind)
    if job is None or job["state"] != "RUNNING" or not _runs_on(job, server):
        server.process.send_signal(signal.SIGCONT)
        raise AssertionError(f"the job ended before its server was frozen: {job}")
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


def _start(c: Any, instance_id: str) -> str | None:
    """Start the instance; the error code if it is refused."""
    request = models.StartInstancesRequest()
    request.InstanceIds = [instance_id]
    try:
        c.StartInstances(request)
    except TencentCloudSDKException as exc:
        return str(exc.code)
    return None


def _settled(c: Any, instance_id: str, state: str) -> Any:
    return world.wait_for(
        lambda: world.instance(c, instance_id),
        lambda i: i.InstanceState == state and i.LatestOperationState != "OPERATING",
        timeout=30,
    )


def _finished(c: Any, snapshot_id: str, timeout: float) -> Any:
    try:
        return world.wait_for(
            lambda: world.snapshot(c, snapshot_id),
            lambda s: s is None or s.LatestOperationState != "OPERATING",
            timeout=timeout,
        )
    except AssertionError:
        return None


# Frozen at 0 %: in the middle of the copy, holding the disk lock; the other server must wait
# for it (and keep the instance locked) rather than fail the job. Frozen later: the copy is
# published and the stalled server only paces; the other server redoes the job and finishes.
FREEZE_AT = [pytest.param(0, id="in-copy"), pytest.param(40, id="after-publish")]


@pytest.mark.parametrize("percent", FREEZE_AT)
def test_rollback_taken_over_from_a_stalled_server(
    pair: tuple[Server, Server], percent: int
) -> None:
    first, _ = pair
    account = world.new_account(first)
    instance_id = world.create_instance(first, account)["InstanceId"]
    world.disk_write(first, instance_id, 0, b"snapshot content" * 4096)
    snapshot_content = world.disk_sha256(first, instance_id)
    c = world.client(first, account)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    _settled(c, instance_id, "RUNNING")
    world.disk_write(first, instance_id, 0, b"later content!!!" * 4096)

    world.apply_snapshot(c, instance_id, snapshot_id)
    stalled, other = _owner(pair, "apply_snapshot", percent, lambda: world.snapshot(c, snapshot_id))
    stalled_epoch = _epoch(first.data_dir, "apply_snapshot")
    c = world.client(other, account)
    started = False
    with _frozen(stalled, "apply_snapshot"):
        world.wait_for(
            lambda: _job(first.data_dir, "apply_snapshot"),
            lambda j: j is not None and not _runs_on(j, stalled),  # taken over
            timeout=60,  # an upper bound only: a loaded machine is slow to take over
        )
        done = _finished(c, snapshot_id, LEASE * 6)
        if done is None:  # waiting for the frozen server's disk lock: the instance stays locked
            assert _start(c, instance_id) == "OperationDenied.InstanceOperationInProgress"
        else:
            assert done.LatestOperationState == "SUCCESS"
            _settled(c, instance_id, "STOPPED")
            assert _start(c, instance_id) is None
            started = True
    done = _finished(c, snapshot_id, 90)
    assert done is not None and done.LatestOperationState == "SUCCESS"
    job = _job(first.data_dir, "apply_snapshot")
    # Committed by a later claim (the other server's, or the resumed one's after a deferral).
    assert job is not None and job["state"] == "SUCCESS" and job["epoch"] > stalled_epoch
    if not started:
        _settled(c, instance_id, "STOPPED")
        assert _start(c, instance_id) is None
    _settled(c, instance_id, "RUNNING")
    # Whatever the resumed server had left to do, it would have committed by now.
    time.sleep(PACED + LEASE * 3)
    assert world.instance(c, instance_id).InstanceState == "RUNNING"
    assert _job(first.data_dir, "apply_snapshot") == job
    after = world.snapshot(c, snapshot_id)
    assert (after.SnapshotState, after.LatestOperationState) == ("NORMAL", "SUCCESS")
    assert world.disk_sha256(first, instance_id) == snapshot_content
    assert "lease lost" in stalled.log()


@pytest.mark.parametrize("percent", FREEZE_AT)
def test_snapshot_taken_over_from_a_stalled_server(
    pair: tuple[Server, Server], percent: int
) -> None:
    first, _ = pair
    account = world.new_account(first)
    instance_id = world.create_instance(first, account)["InstanceId"]
    world.disk_write(first, instance_id, 0, b"point in time" * 8192)
    content = world.disk_sha256(first, instance_id)
    c = world.client(first, account)
    snapshot_id = world.create_snapshot(c, instance_id)
    stalled, other = _owner(
        pair, "create_snapshot", percent, lambda: world.snapshot(c, snapshot_id)
    )
    stalled_epoch = _epoch(first.data_dir, "create_snapshot")
    c = world.client(other, account)
    with _frozen(stalled, "create_snapshot"):
        world.wait_for(
            lambda: _job(first.data_dir, "create_snapshot"),
            lambda j: j is not None and not _runs_on(j, stalled),
            timeout=60,  # an upper bound only: a loaded machine is slow to take over
        )
        _finished(c, snapshot_id, LEASE * 6)
    snapshot = _finished(c, snapshot_id, 90)
    assert snapshot is not None and snapshot.LatestOperationState == "SUCCESS"
    job = _job(first.data_dir, "create_snapshot")
    # Committed by a later claim (the other server's, or the resumed one's after a deferral).
    assert job is not None and job["state"] == "SUCCESS" and job["epoch"] > stalled_epoch
    time.sleep(PACED + LEASE * 3)
    assert _job(first.data_dir, "create_snapshot") == job
    assert world.snapshot(c, snapshot_id).SnapshotState == "NORMAL"
    snapshots = sorted(p.name for p in (first.data_dir / "snapshots").iterdir())
    assert snapshots == [f"{snapshot_id}.img"]
    verified = first.admin("snapshot", "sha256", snapshot_id, "--json")
    assert verified["Verified"] is True and verified["Sha256"] == content
    assert "lease lost" in stalled.log()


def test_a_job_whose_disk_is_held_elsewhere_waits_instead_of_failing(
    make_server: Any,
) -> None:
    """A disk lock held by another process (as by a stalled worker in the middle of a copy)
    never fails the job: releasing the instance then would let it be started while that
    process may still write the disk. The job waits and completes once the lock is free."""
    server = make_server(
        "--no-rate-limit", "--transition-seconds", "0", "--workers", "1", "--operation-seconds", "2"
    )
    account = world.new_account(server)
    busy_id = world.create_instance(server, account)["InstanceId"]
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    disk_id = world.instance(c, instance_id).SystemDisk.DiskId
    # One worker: a paced snapshot of another instance keeps it busy while ours is accepted.
    world.create_snapshot(c, busy_id)
    snapshot_id = world.create_snapshot(c, instance_id)
    lock_path = server.data_dir / "disks" / f"{disk_id}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        time.sleep(2 + 8)  # the slow job, then longer than any busy-retry of the old code
        # A new client: the old one's connection sat idle as long as the server's idle timeout
        # (10 s), and a request sent on it as the server closes it is reset (seen under load).
        c = world.client(server, account)
        waiting = world.snapshot(c, snapshot_id)
        assert waiting is not None
        assert (waiting.SnapshotState, waiting.LatestOperationState) == ("CREATING", "OPERATING")
        refused = models.DeleteSnapshotsRequest()
        refused.SnapshotIds = [snapshot_id]
        with pytest.raises(TencentCloudSDKException) as refusal:
            c.DeleteSnapshots(refused)
        assert refusal.value.code == "UnsupportedOperation.InvalidSnapshotState"
    finally:
        os.close(fd)
    assert world.wait_normal(c, snapshot_id).LatestOperationState == "SUCCESS"
