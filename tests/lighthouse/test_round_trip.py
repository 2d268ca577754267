"""The backup-script story: snapshot, damage the disk, roll back, find it byte for byte."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Server

pytestmark = pytest.mark.both_engines  # SQLite and PostgreSQL (tests/conftest.py)

PATTERN = os.urandom(4 * world.MiB)
OFFSETS = (0, 100 * world.MiB, 513 * world.MiB, 1020 * world.MiB)


@pytest.mark.parametrize("storage", ["raw", "rbd"])
def test_snapshot_overwrite_apply_restores_every_byte(
    make_server: Callable[..., Server], storage: str, request: pytest.FixtureRequest
) -> None:
    """On local raw images and on Ceph RBD (a namespace of the test's own: tests/support)."""
    args: tuple[str, ...] = ("--transition-seconds", "0.5")
    if storage == "rbd":
        namespace = request.getfixturevalue("rbd_options")["namespace"]
        args += ("--storage", "rbd", "--rbd-namespace", namespace)
    server = make_server(*args)
    account = world.new_account(server)
    created = world.create_instance(server, account)
    instance_id = created["InstanceId"]
    assert created["InstanceState"] == "RUNNING"
    assert created["SystemDisk"]["DiskSize"] == 1
    for offset in OFFSETS:
        world.disk_write(server, instance_id, offset, PATTERN)
    before = world.disk_sha256(server, instance_id)

    c = world.client(server, account)
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    request.SnapshotName = "nightly"
    response = c.CreateInstanceSnapshot(request)
    snapshot_id = response.SnapshotId
    first = world.snapshot(c, snapshot_id)
    assert first.LatestOperationRequestId == response.RequestId
    assert first.SnapshotState == "CREATING"
    assert first.LatestOperation == "CreateInstanceSnapshot"
    assert first.LatestOperationState == "OPERATING"
    percents = [first.Percent]
    done = world.wait_for(
        lambda: world.snapshot(c, snapshot_id),
        lambda s: percents.append(s.Percent) or s.SnapshotState == "NORMAL",
    )
    assert done.Percent == 100 and done.LatestOperationState == "SUCCESS"
    assert percents == sorted(percents)
    assert done.DiskId == created["SystemDisk"]["DiskId"]
    assert done.SnapshotName == "nightly" and done.DiskSize == 1

    world.disk_write(server, instance_id, 0, b"\xff" * (8 * world.MiB))
    world.disk_write(server, instance_id, 700 * world.MiB, b"ransomware")
    assert world.disk_sha256(server, instance_id) != before

    apply_request = world.apply_snapshot(c, instance_id, snapshot_id)
    rolling = world.snapshot(c, snapshot_id)
    assert rolling.SnapshotState == "ROLLBACKING"
    assert rolling.LatestOperation == "RollbackInstanceSnapshot"
    assert rolling.LatestOperationState == "OPERATING"
    assert rolling.LatestOperationRequestId == apply_request
    assert world.instance(c, instance_id).InstanceState == "STOPPING"

    finished = world.wait_for(
        lambda: world.snapshot(c, snapshot_id), lambda s: s.LatestOperationState != "OPERATING"
    )
    assert finished.LatestOperationState == "SUCCESS"
    assert finished.SnapshotState == "NORMAL" and finished.Percent == 100
    after = world.instance(c, instance_id)
    assert after.InstanceState == "STOPPED"
    assert after.LatestOperation == "ApplyInstanceSnapshot"
    assert after.LatestOperationState == "SUCCESS"
    assert world.disk_sha256(server, instance_id) == before
