"""kill -9 in the middle of a 1 GiB snapshot copy and of a rollback, then restart.

Every snapshot is NORMAL (or gone, cleanly), the disk is either its pre-rollback
or its snapshot content, quota usage is exact and no instance stays locked.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server

GiB = 1024 * world.MiB
CHUNK = 256 * world.MiB


def _fill(server: Server, instance_id: str, seed: int) -> None:
    """Allocate the whole 1 GiB disk with non-repeating data."""
    block = bytes((seed + n) % 251 for n in range(world.MiB))
    for offset in range(0, GiB, CHUNK):
        world.disk_write(server, instance_id, offset, block * (CHUNK // world.MiB))


def _kill_when(server: Server, account: Account, snapshot_id: str, state: str) -> int:
    """SIGKILL the server once the snapshot is part-way through ``state``; return Percent."""
    c = world.client(server, account)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        snap = world.snapshot(c, snapshot_id)
        if snap.SnapshotState == state and 0 < snap.Percent < 100:
            server.kill()
            return int(snap.Percent)
        assert snap.LatestOperationState == "OPERATING", "finished before it could be killed"
        time.sleep(0.02)
    raise AssertionError("never saw the operation in progress")


def _restart_and_settle(server: Server, account: Account) -> list[models.Snapshot]:
    server.start()
    c = world.client(server, account)
    settled = world.wait_for(  # how fast recovery is: bench/, not a threshold here
        lambda: c.DescribeSnapshots(models.DescribeSnapshotsRequest()).SnapshotSet,
        lambda snaps: all(s.LatestOperationState != "OPERATING" for s in snaps),
        timeout=60,
        interval=0.1,
    )
    assert all(s.SnapshotState == "NORMAL" for s in settled)
    return list(settled)


def _quota_used(server: Server, account: Account) -> int:
    request = models.DescribeGeneralResourceQuotasRequest()
    request.ResourceNames = ["SNAPSHOT"]
    (quota,) = (
        world.client(server, account).DescribeGeneralResourceQuotas(request).GeneralResourceQuotaSet
    )
    return int(quota.ResourceQuotaTotal - quota.ResourceQuotaAvailable)


def test_kill_during_snapshot_copy_and_rollback(make_server: Callable[..., Server]) -> None:
    server = make_server("--no-rate-limit", "--transition-seconds", "0")
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    _fill(server, instance_id, seed=1)
    original = world.disk_sha256(server, instance_id)

    # 1. Crash in the middle of the copy: the snapshot is resumed and completes.
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, instance_id)
    _kill_when(server, account, snapshot_id, "CREATING")
    settled = _restart_and_settle(server, account)
    assert [s.SnapshotId for s in settled] in ([snapshot_id], [])
    assert _quota_used(server, account) == len(settled)
    if not settled:  # failed cleanly: take it again so the rollback has something to use
        snapshot_id = world.create_snapshot(world.client(server, account), instance_id)
        world.wait_normal(world.client(server, account), snapshot_id)
    verified = server.admin("snapshot", "sha256", snapshot_id, "--json")
    assert verified["Verified"] is True
    assert verified["Sha256"] == original
    assert world.disk_sha256(server, instance_id) == original

    # 2. Damage the disk, crash in the middle of the rollback: it is resumed and completes.
    _fill(server, instance_id, seed=7)
    damaged = world.disk_sha256(server, instance_id)
    assert damaged != original
    world.apply_snapshot(world.client(server, account), instance_id, snapshot_id)
    _kill_when(server, account, snapshot_id, "ROLLBACKING")
    settled = _restart_and_settle(server, account)
    assert [s.SnapshotId for s in settled] == [snapshot_id]
    assert settled[0].LatestOperation == "RollbackInstanceSnapshot"
    assert world.disk_sha256(server, instance_id) in (original, damaged)
    if settled[0].LatestOperationState == "SUCCESS":
        assert world.disk_sha256(server, instance_id) == original
    after = world.instance(world.client(server, account), instance_id)
    assert after.LatestOperationState != "OPERATING"
    assert after.InstanceState == "STOPPED"
    assert _quota_used(server, account) == 1
    # Unlocked: another snapshot can be taken right away.
    world.wait_normal(
        world.client(server, account),
        world.create_snapshot(world.client(server, account), instance_id),
    )
