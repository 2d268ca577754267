"""Every error code of CreateInstanceSnapshot and ApplyInstanceSnapshot, each produced by a
real cause through the real server and asserted by its exact Code.

Causes that need slow operations share module-scoped servers; the rest use the session's
shared server, with a fresh account (rate limits are per account) and instance per test.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models

from tests.support import world
from tests.support.server import Server, free_port

Client = lighthouse_client.LighthouseClient
UNKNOWN_INSTANCE = "lhins-00000000"
UNKNOWN_SNAPSHOT = "lhsnap-00000000"


# -- helpers ---------------------------------------------------------------------------------


def error(code: str, call: Callable[[], Any]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    assert info.value.code == code, info.value
    return info.value


def create(c: Client, instance_id: str, name: str | None = None) -> Callable[[], Any]:
    def call() -> Any:
        request = models.CreateInstanceSnapshotRequest()
        request.InstanceId = instance_id
        request.SnapshotName = name
        return c.CreateInstanceSnapshot(request)

    return call


def apply(c: Client, instance_id: str, snapshot_id: str) -> Callable[[], Any]:
    return lambda: world.apply_snapshot(c, instance_id, snapshot_id)


def stop(c: Client, instance_id: str) -> None:
    request = models.StopInstancesRequest()
    request.InstanceIds = [instance_id]
    c.StopInstances(request)


def setup(server: Server, *args: str) -> tuple[Client, str, dict[str, Any]]:
    """A fresh account with one 1 GB instance: its client, the instance id, the instance."""
    account = world.new_account(server)
    created = world.create_instance(server, account, "ap-guangzhou", *args)
    return world.client(server, account), created["InstanceId"], created


def snapshotted(server: Server, *args: str) -> tuple[Client, str, str, dict[str, Any]]:
    """As ``setup``, plus a NORMAL snapshot of the instance."""
    c, instance_id, created = setup(server, *args)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    return c, instance_id, snapshot_id, created


def disk_path(server: Server, created: dict[str, Any], suffix: str = "img") -> Path:
    return server.data_dir / "disks" / f"{created['SystemDisk']['DiskId']}.{suffix}"


def snapshot_path(server: Server, snapshot_id: str) -> Path:
    return server.data_dir / "snapshots" / f"{snapshot_id}.img"


def power_record(server: Server, instance_id: str) -> Path:
    return server.data_dir / "compute" / f"{instance_id}.json"


@contextmanager
def flocked(path: Path, flags: int) -> Iterator[None]:
    """Hold an exclusive flock on ``path`` from this (the test) process."""
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def started(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp(name) / "data", free_port(), args)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def slow_ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Create and apply take at least 3 s, so they can be caught in progress."""
    yield from started(
        tmp_path_factory, "slow-ops", "--operation-seconds", "3", "--transition-seconds", "0"
    )


@pytest.fixture(scope="module")
def slow_power(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Start/Stop/Reboot take 3 s."""
    yield from started(tmp_path_factory, "slow-power", "--transition-seconds", "3")


# -- CreateInstanceSnapshot ------------------------------------------------------------------


@pytest.mark.parametrize("instance_id", ["ins-123", "lhins-ABC", "lhins-ABCDEFGH", ""])
def test_create_instance_id_malformed(server: Server, instance_id: str) -> None:
    c = world.client(server, world.new_account(server))
    error("InvalidParameterValue.InstanceIdMalformed", create(c, instance_id))


def test_create_snapshot_name_too_long(server: Server) -> None:
    c, instance_id, _ = setup(server)
    failure = error("InvalidParameterValue.SnapshotNameTooLong", create(c, instance_id, "n" * 61))
    assert failure.message == (
        "Invalid parametric value: the length of the snapshot name exceeds the upper limit."
    )
    snapshot_id = create(c, instance_id, "n" * 60)().SnapshotId
    assert world.wait_normal(c, snapshot_id).SnapshotName == "n" * 60


def test_create_instance_not_found(server: Server) -> None:
    c, instance_id, _ = setup(server)
    error("ResourceNotFound.InstanceIdNotFound", create(c, UNKNOWN_INSTANCE))
    stranger = world.client(server, world.new_account(server))
    error("ResourceNotFound.InstanceIdNotFound", create(stranger, instance_id))
    elsewhere = world.client(server, world.new_account(server), region="ap-shanghai")
    error("ResourceNotFound.InstanceIdNotFound", create(elsewhere, UNKNOWN_INSTANCE))


def test_create_instance_in_another_region_is_not_found(server: Server) -> None:
    account = world.new_account(server)
    instance_id = world.create_instance(server, account, "ap-guangzhou")["InstanceId"]
    shanghai = world.client(server, account, region="ap-shanghai")
    error("ResourceNotFound.InstanceIdNotFound", create(shanghai, instance_id))


def test_create_for_storage_bundle_denied(server: Server) -> None:
    c, instance_id, _ = setup(server, "--bundle-type", "STORAGE_BUNDLE")
    error("OperationDenied.OperationDeniedCreateSnapshotForStorageBundle", create(c, instance_id))


def test_create_for_restricted_instance_denied(server: Server) -> None:
    c, instance_id, _ = setup(server)
    server.admin("instance", "restrict", instance_id, "--json")
    error("OperationDenied.OperationDeniedCreateSnapshot", create(c, instance_id))
    server.admin("instance", "restrict", instance_id, "--lift", "--json")
    world.wait_normal(c, create(c, instance_id)().SnapshotId)


def test_create_after_blueprint_deleted(server: Server) -> None:
    blueprint_id = server.admin("blueprint", "create", "--name", "x", "--json")["BlueprintId"]
    c, instance_id, _ = setup(server, "--blueprint", blueprint_id)
    server.admin("blueprint", "delete", blueprint_id)
    error("ResourceNotFound.BlueprintIdNotFound", create(c, instance_id))


def test_create_disk_not_found(server: Server) -> None:
    c, instance_id, created = setup(server)
    disk_path(server, created).unlink()
    failure = error("ResourceNotFound.DiskNotFound", create(c, instance_id))
    assert failure.message == "The disk does not exist."


def test_create_disk_busy(server: Server) -> None:
    c, instance_id, created = setup(server)
    with flocked(disk_path(server, created, "lock"), os.O_RDWR | os.O_CREAT):
        failure = error("UnsupportedOperation.DiskBusy", create(c, instance_id))
    assert failure.message == "The disk is busy."
    world.wait_normal(c, create(c, instance_id)().SnapshotId)  # released: accepted again


def test_create_invalid_instance_state(server: Server) -> None:
    c, instance_id, _ = setup(server, "--state", "SHUTDOWN")
    error("UnsupportedOperation.InvalidInstanceState", create(c, instance_id))


def test_create_quota_exceeded(server: Server) -> None:
    c, instance_id, _ = setup(server)
    for _ in range(2):
        world.wait_normal(c, create(c, instance_id)().SnapshotId)
    failure = error("LimitExceeded.SnapshotQuotaLimitExceeded", create(c, instance_id))
    assert failure.message == "The snapshot quota is exceeded."
    request = models.DescribeGeneralResourceQuotasRequest()
    request.ResourceNames = ["SNAPSHOT"]
    (quota,) = c.DescribeGeneralResourceQuotas(request).GeneralResourceQuotaSet
    assert (quota.ResourceQuotaTotal, quota.ResourceQuotaAvailable) == (2, 0)


def test_create_power_record_missing(server: Server) -> None:
    c, instance_id, _ = setup(server)
    power_record(server, instance_id).unlink()
    error("FailedOperation.DescribeInstanceStatus", create(c, instance_id))


@pytest.mark.parametrize("garbage", ['{"power": "BROKEN"}', "not json"])
def test_create_power_record_unreadable(server: Server, garbage: str) -> None:
    c, instance_id, _ = setup(server)
    power_record(server, instance_id).write_text(garbage)
    error("InternalError.DescribeInstanceStatus", create(c, instance_id))


def test_create_while_creating(slow_ops: Server) -> None:
    c, instance_id, _ = setup(slow_ops)
    first = create(c, instance_id)().SnapshotId
    assert world.snapshot(c, first).SnapshotState == "CREATING"
    error("UnsupportedOperation.DiskLatestOperationUnfinished", create(c, instance_id))


def test_create_while_stopping(slow_power: Server) -> None:
    c, instance_id, _ = setup(slow_power)
    stop(c, instance_id)
    assert world.instance(c, instance_id).InstanceState == "STOPPING"
    error("UnsupportedOperation.LatestOperationUnfinished", create(c, instance_id))


def test_create_quota_lock_timeout(tmp_path_factory: pytest.TempPathFactory) -> None:
    for srv in started(
        tmp_path_factory, "quota-lock", "--quota-lock-timeout", "0.5", "--transition-seconds", "0"
    ):
        c, instance_id, _ = setup(srv)
        db = sqlite3.connect(srv.data_dir / "lightkeeper.db", isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            failure = error("InternalError.GetSnapshotAllocQuotaLockError", create(c, instance_id))
            db.execute("ROLLBACK")
        finally:
            db.close()
        assert failure.message == "Failed to get the snapshot quota lock."
        world.wait_normal(c, create(c, instance_id)().SnapshotId)


# -- ApplyInstanceSnapshot -------------------------------------------------------------------


@pytest.mark.parametrize("instance_id", ["ins-123", "lhins-ABC"])
def test_apply_instance_id_malformed(server: Server, instance_id: str) -> None:
    c = world.client(server, world.new_account(server))
    error("InvalidParameterValue.InstanceIdMalformed", apply(c, instance_id, UNKNOWN_SNAPSHOT))


@pytest.mark.parametrize("snapshot_id", ["snap-123", "lhsnap-ABCDEFGH", "lhsnap-0000000"])
def test_apply_snapshot_id_malformed(server: Server, snapshot_id: str) -> None:
    c, instance_id, _ = setup(server)
    error("InvalidParameterValue.SnapshotIdMalformed", apply(c, instance_id, snapshot_id))


def test_apply_instance_not_found(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    error("ResourceNotFound.InstanceIdNotFound", apply(c, UNKNOWN_INSTANCE, snapshot_id))
    stranger = world.client(server, world.new_account(server))
    error("ResourceNotFound.InstanceIdNotFound", apply(stranger, instance_id, snapshot_id))


def test_apply_snapshot_id_not_found(server: Server) -> None:
    c, instance_id, _ = setup(server)
    error("ResourceNotFound.SnapshotIdNotFound", apply(c, instance_id, UNKNOWN_SNAPSHOT))
    _, _, foreign_snapshot, _ = snapshotted(server)
    error("ResourceNotFound.SnapshotIdNotFound", apply(c, instance_id, foreign_snapshot))


def test_apply_snapshot_of_another_instance(server: Server) -> None:
    account = world.new_account(server)
    first = world.create_instance(server, account)["InstanceId"]
    second = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, first)
    world.wait_normal(c, snapshot_id)
    error("ResourceNotFound.SnapshotNotFound", apply(c, second, snapshot_id))


def test_apply_while_pending(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    server.admin("instance", "set-state", instance_id, "--state", "PENDING", "--json")
    error("OperationDenied.InstanceCreating", apply(c, instance_id, snapshot_id))


def test_apply_while_shutdown(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    shown = server.admin("instance", "set-state", instance_id, "--state", "SHUTDOWN", "--json")
    assert shown["InstanceState"] == "SHUTDOWN"
    error("UnsupportedOperation.InvalidInstanceState", apply(c, instance_id, snapshot_id))


def test_apply_while_stopping(slow_power: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(slow_power)
    stop(c, instance_id)
    error("UnsupportedOperation.LatestOperationUnfinished", apply(c, instance_id, snapshot_id))


def test_apply_while_applying(slow_ops: Server) -> None:
    c, instance_id, first, _ = snapshotted(slow_ops)
    second = world.create_snapshot(c, instance_id)
    world.wait_normal(c, second)
    apply(c, instance_id, first)()
    assert world.snapshot(c, first).SnapshotState == "ROLLBACKING"
    error("OperationDenied.InstanceOperationInProgress", apply(c, instance_id, second))


def test_apply_while_creating(slow_ops: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(slow_ops)
    creating = world.create_snapshot(c, instance_id)
    error("UnsupportedOperation.DiskLatestOperationUnfinished", apply(c, instance_id, snapshot_id))
    # A CREATING snapshot can only be of this instance's disk, so the disk check answers
    # first: InvalidSnapshotState is unreachable through Apply. DeleteSnapshots reports it.
    error("UnsupportedOperation.DiskLatestOperationUnfinished", apply(c, instance_id, creating))
    request = models.DeleteSnapshotsRequest()
    request.SnapshotIds = [creating]
    error("UnsupportedOperation.InvalidSnapshotState", lambda: c.DeleteSnapshots(request))


def test_apply_corrupt_snapshot(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    before = world.disk_sha256(server, instance_id)
    path = snapshot_path(server, snapshot_id)
    path.chmod(0o600)
    with path.open("r+b") as handle:
        handle.write(b"bit rot")
    apply(c, instance_id, snapshot_id)()
    failed = world.wait_for(
        lambda: world.snapshot(c, snapshot_id), lambda s: s.LatestOperationState != "OPERATING"
    )
    assert (failed.LatestOperationState, failed.SnapshotState) == ("FAILED", "NORMAL")
    assert world.instance(c, instance_id).LatestOperationState == "FAILED"
    assert world.disk_sha256(server, instance_id) == before
    failure = error("FailedOperation.SnapshotOperationFailed", apply(c, instance_id, snapshot_id))
    assert failure.message == "Failed to manipulate the snapshot."


def test_apply_snapshot_data_missing(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    snapshot_path(server, snapshot_id).unlink()
    error("FailedOperation.SnapshotOperationFailed", apply(c, instance_id, snapshot_id))


def test_apply_after_disk_resized(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    server.admin("instance", "resize-disk", instance_id, "--size", "2", "--json")
    failure = error("InvalidParameterValue.DiskSizeNotMatch", apply(c, instance_id, snapshot_id))
    assert failure.message == "The disk size has changed."


def test_apply_disk_busy(server: Server) -> None:
    c, instance_id, snapshot_id, created = snapshotted(server)
    with flocked(disk_path(server, created, "lock"), os.O_RDWR | os.O_CREAT):
        error("UnsupportedOperation.DiskBusy", apply(c, instance_id, snapshot_id))


def test_apply_snapshot_busy(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    with flocked(snapshot_path(server, snapshot_id), os.O_RDONLY):
        failure = error("UnsupportedOperation.SnapshotBusy", apply(c, instance_id, snapshot_id))
    assert failure.message == "The snapshot is busy."


def test_apply_system_busy(make_server: Callable[..., Server]) -> None:
    srv = make_server("--max-queued-jobs", "1", "--operation-seconds", "3")
    account = world.new_account(srv)
    a = world.create_instance(srv, account)["InstanceId"]
    b = world.create_instance(srv, account)["InstanceId"]
    c = world.client(srv, account)
    snapshot_id = world.create_snapshot(c, b)
    world.wait_normal(c, snapshot_id)
    world.create_snapshot(c, a)  # the one job the queue may hold
    failure = error("UnsupportedOperation.SystemBusy", apply(c, b, snapshot_id))
    assert failure.message == "System busy."


def test_apply_power_record_missing(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    power_record(server, instance_id).unlink()
    error("FailedOperation.DescribeInstanceStatus", apply(c, instance_id, snapshot_id))


def test_apply_power_record_unreadable(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    power_record(server, instance_id).write_text('{"power": "BROKEN"}')
    error("InternalError.DescribeInstanceStatus", apply(c, instance_id, snapshot_id))


def test_apply_disk_not_found(server: Server) -> None:
    c, instance_id, snapshot_id, created = snapshotted(server)
    disk_path(server, created).unlink()
    error("ResourceNotFound.DiskNotFound", apply(c, instance_id, snapshot_id))
