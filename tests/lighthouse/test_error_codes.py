"""Every error code of CreateInstanceSnapshot and ApplyInstanceSnapshot, each produced by a
real cause through the real server and asserted by its exact Code.

Causes that need slow operations share module-scoped servers; the rest use this module's
shared server, with a fresh account (rate limits are per account) and instance per test —
one on raw disk images and one on Ceph RBD (issue #15: every code, on both), whose
storage-specific causes (a disk removed, held, a snapshot's data replaced) are done behind
the server's back by tests/support/sabotage.py. The world is built with the real
``lightkeeper admin`` commands, run in this process (``Server.admin``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from tencentcloud.lighthouse.v20200324.lighthouse_client import LighthouseClient as Client
from testkit import clients, world
from testkit.server import Account, Server, free_port

from tests.support.sabotage import sabotage

pytestmark = pytest.mark.both_engines  # SQLite and PostgreSQL (tests/conftest.py)

UNKNOWN_INSTANCE = "lhins-00000000"
UNKNOWN_SNAPSHOT = "lhsnap-00000000"


# -- helpers ---------------------------------------------------------------------------------

_names = itertools.count(1)


def admin(server: Server, *args: str) -> Any:
    """``lightkeeper admin ARGS`` on the server's data dir (``Server.admin``, in-process)."""
    return server.admin(*args)


def new_account(server: Server) -> Account:
    return world.new_account(server, f"err-{next(_names)}")


def create_instance(server: Server, account: Account, *args: str) -> dict[str, Any]:
    """A 1 GB instance in ap-guangzhou."""
    return world.create_instance(server, account, "ap-guangzhou", *args)


disk_sha256 = world.disk_sha256


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


def delete(c: Client, snapshot_id: str) -> Callable[[], Any]:
    request = models.DeleteSnapshotsRequest()
    request.SnapshotIds = [snapshot_id]
    return lambda: c.DeleteSnapshots(request)


def stop(c: Client, instance_id: str) -> None:
    request = models.StopInstancesRequest()
    request.InstanceIds = [instance_id]
    c.StopInstances(request)


def setup(server: Server, *args: str) -> tuple[Client, str, dict[str, Any]]:
    """A fresh account with one 1 GB instance: its client, the instance id, the instance."""
    account = new_account(server)
    created = create_instance(server, account, *args)
    return world.client(server, account), created["InstanceId"], created


def snapshotted(server: Server, *args: str) -> tuple[Client, str, str, dict[str, Any]]:
    """As ``setup``, plus a NORMAL snapshot of the instance."""
    c, instance_id, created = setup(server, *args)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    return c, instance_id, snapshot_id, created


def disk_of(created: dict[str, Any]) -> str:
    return str(created["SystemDisk"]["DiskId"])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "server" in metafunc.fixturenames:
        metafunc.parametrize("storage", ["raw", "rbd"], scope="module")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    engine: str,
    storage: str,
    request: pytest.FixtureRequest,
) -> Iterator[Server]:
    """This module's shared server: raw images, or Ceph RBD in a namespace of its own."""
    from testkit import ceph

    from tests.conftest import _database

    args: tuple[str, ...] = ("--transition-seconds", "0")
    with ExitStack() as stack:
        if storage == "rbd":
            conf = request.getfixturevalue("ceph_conf")
            name = f"err{os.getpid()}{engine[0]}"
            namespace = stack.enter_context(ceph.namespace(conf, name))
            args += ("--storage", "rbd", "--rbd-namespace", namespace)
        srv = Server(
            tmp_path_factory.mktemp(f"errors-{storage}") / "data",
            free_port(),
            args,
            database=_database(request, engine),
        )
        srv.start()
        srv.storage = storage  # type: ignore[attr-defined]
        stack.callback(srv.stop)
        yield srv


def broken(server: Server) -> Any:
    return sabotage(server, server.storage)  # type: ignore[attr-defined]


def power_record(server: Server, instance_id: str) -> Path:
    return server.data_dir / "compute" / f"{instance_id}.json"


def started(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp(name) / "data", free_port(), args)
    try:
        srv.start()
        yield srv
    finally:
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


def test_create_instance_id_malformed(server: Server) -> None:
    c = world.client(server, new_account(server))
    for instance_id in ("ins-123", "lhins-ABC", "lhins-ABCDEFGH", "lhins-0000000", ""):
        error("InvalidParameterValue.InstanceIdMalformed", create(c, instance_id))


def test_create_snapshot_name_too_long(server: Server) -> None:
    c, instance_id, _ = setup(server)
    failure = error("InvalidParameterValue.SnapshotNameTooLong", create(c, instance_id, "n" * 61))
    assert failure.message == (
        "Invalid parametric value: the length of the snapshot name exceeds the upper limit."
    )
    snapshot_id = create(c, instance_id, "n" * 60)().SnapshotId
    assert world.wait_normal(c, snapshot_id).SnapshotName == "n" * 60


@pytest.mark.parametrize("name", ["a\x00b", "line\r\nbreak", "\u202egnp.exe", "\x7f", "\u2028"])
def test_create_snapshot_name_with_control_characters(server: Server, name: str) -> None:
    """Decision (issue #11): C0/C1 controls, line separators and bidi controls are refused
    (``InvalidParameterValue`` naming the parameter); other Unicode is a fine name."""
    c, instance_id, _ = setup(server)
    failure = error("InvalidParameterValue", create(c, instance_id, name))
    assert "`SnapshotName`" in failure.message
    snapshot_id = create(c, instance_id, "快照 ☃ é")().SnapshotId
    assert world.wait_normal(c, snapshot_id).SnapshotName == "快照 ☃ é"


def tag_list(pairs: list[tuple[str, str]]) -> list[models.Tag]:
    tags = []
    for key, value in pairs:
        tag = models.Tag()
        tag.Key, tag.Value = key, value
        tags.append(tag)
    return tags


def create_tagged(c: Client, instance_id: str, pairs: list[tuple[str, str]]) -> Callable[[], Any]:
    def call() -> Any:
        request = models.CreateInstanceSnapshotRequest()
        request.InstanceId, request.Tags = instance_id, tag_list(pairs)
        return c.CreateInstanceSnapshot(request)

    return call


@pytest.mark.parametrize(
    ("pairs", "code", "named"),
    [
        ([(f"k{i}", "v") for i in range(11)], "InvalidParameterValue.LimitExceeded", None),
        ([("k" * 128, "v")], "InvalidParameterValue.TooLong", "Tags.0.Key"),
        ([("ok", "v"), ("k" * 100_000, "v")], "InvalidParameterValue.TooLong", "Tags.1.Key"),
        ([("ok", "v" * 256)], "InvalidParameterValue.TooLong", "Tags.0.Value"),
        ([("", "v")], "InvalidParameterValue", "Tags.0.Key"),
        ([("qcloud:env", "v")], "InvalidParameterValue", "Tags.0.Key"),
        ([("Tencent-team", "v")], "InvalidParameterValue", "Tags.0.Key"),
        ([("project", "v")], "InvalidParameterValue", "Tags.0.Key"),
        ([("a\nb", "v")], "InvalidParameterValue", "Tags.0.Key"),
        ([("a\u202eb", "v")], "InvalidParameterValue", "Tags.0.Key"),
        ([("a!b", "v")], "InvalidParameterValue", "Tags.0.Key"),
        ([("env", "x\x00y")], "InvalidParameterValue", "Tags.0.Value"),
        ([("env", "a"), ("env", "b")], "InvalidParameterValue", "Tags.1.Key"),
    ],
)
def test_create_tag_limits(
    server: Server, pairs: list[tuple[str, str]], code: str, named: str | None
) -> None:
    """Regression (issue #11, 9): any number of tags of any size was stored (40,000 tags,
    9.3 MB, then in every DescribeSnapshots page). Tencent's limits are enforced now."""
    c, instance_id, _ = setup(server)
    failure = error(code, create_tagged(c, instance_id, pairs))
    if named is not None:
        assert f"`{named}`" in failure.message
    assert c.DescribeSnapshots(models.DescribeSnapshotsRequest()).TotalCount == 0


def test_create_tag_flood_is_refused_at_once(server: Server) -> None:
    account = new_account(server)
    instance_id = create_instance(server, account)["InstanceId"]
    tags = [{"Key": f"k{i}", "Value": "v" * 200} for i in range(40_000)]
    reply = clients.tc3_post(
        server.endpoint,
        account,
        "CreateInstanceSnapshot",
        {"InstanceId": instance_id, "Tags": tags},
    )
    assert reply.json()["Response"]["Error"]["Code"] == "InvalidParameterValue.LimitExceeded"


def test_create_tags_at_the_limits_are_kept(server: Server) -> None:
    c, instance_id, _ = setup(server)
    pairs = [("k" * 127, "v" * 255), ("环境", "生产"), ("a+b-c=d.e_f:g/h@i j", ""), ("(x)[y]", "z")]
    pairs += [(f"tag{i}", str(i)) for i in range(10 - len(pairs))]
    snapshot_id = create_tagged(c, instance_id, pairs)().SnapshotId
    kept = world.wait_normal(c, snapshot_id)
    assert sorted((t.Key, t.Value) for t in kept.Tags) == sorted(pairs)


def test_create_instance_not_found(server: Server) -> None:
    c, instance_id, _ = setup(server)
    error("ResourceNotFound.InstanceIdNotFound", create(c, UNKNOWN_INSTANCE))
    stranger = world.client(server, new_account(server))
    error("ResourceNotFound.InstanceIdNotFound", create(stranger, instance_id))


def test_create_instance_in_another_region_is_not_found(server: Server) -> None:
    account = new_account(server)
    instance_id = create_instance(server, account)["InstanceId"]
    shanghai = world.client(server, account, region="ap-shanghai")
    error("ResourceNotFound.InstanceIdNotFound", create(shanghai, instance_id))


def test_create_for_storage_bundle_denied(server: Server) -> None:
    c, instance_id, _ = setup(server, "--bundle-type", "STORAGE_BUNDLE")
    error("OperationDenied.OperationDeniedCreateSnapshotForStorageBundle", create(c, instance_id))


def test_create_for_restricted_instance_denied(server: Server) -> None:
    c, instance_id, _ = setup(server)
    admin(server, "instance", "restrict", instance_id, "--json")
    error("OperationDenied.OperationDeniedCreateSnapshot", create(c, instance_id))
    admin(server, "instance", "restrict", instance_id, "--lift", "--json")
    world.wait_normal(c, create(c, instance_id)().SnapshotId)


def test_create_after_blueprint_deleted(server: Server) -> None:
    blueprint_id = admin(server, "blueprint", "create", "--name", "x", "--json")["BlueprintId"]
    c, instance_id, _ = setup(server, "--blueprint", blueprint_id)
    admin(server, "blueprint", "delete", blueprint_id)
    error("ResourceNotFound.BlueprintIdNotFound", create(c, instance_id))


def test_create_disk_not_found(server: Server) -> None:
    c, instance_id, created = setup(server)
    broken(server).remove_disk(disk_of(created))
    failure = error("ResourceNotFound.DiskNotFound", create(c, instance_id))
    assert failure.message == "The disk does not exist."


def test_create_disk_busy(server: Server) -> None:
    c, instance_id, created = setup(server)
    with broken(server).hold_disk(disk_of(created)):
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


def test_create_power_record_unreadable(server: Server) -> None:
    account = new_account(server)
    c = world.client(server, account)
    for garbage in ('{"power": "BROKEN"}', "not json", "[]"):
        instance_id = create_instance(server, account)["InstanceId"]
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


def test_create_quota_lock_timeout(make_server: Callable[..., Server]) -> None:
    srv = make_server("--quota-lock-timeout", "0.5", "--transition-seconds", "0")
    c, instance_id, _ = setup(srv)
    with srv.write_lock():  # the quota lock is the database write lock
        failure = error("InternalError.GetSnapshotAllocQuotaLockError", create(c, instance_id))
    assert failure.message == "Failed to get the snapshot quota lock."
    world.wait_normal(c, create(c, instance_id)().SnapshotId)  # released: accepted again


# -- ApplyInstanceSnapshot -------------------------------------------------------------------


def test_apply_ids_malformed(server: Server) -> None:
    c = world.client(server, new_account(server))
    for instance_id in ("ins-123", "lhins-ABC"):
        error("InvalidParameterValue.InstanceIdMalformed", apply(c, instance_id, UNKNOWN_SNAPSHOT))
    # The instance ID is checked first: both malformed is InstanceIdMalformed.
    error("InvalidParameterValue.InstanceIdMalformed", apply(c, "ins-123", "snap-123"))
    for snapshot_id in ("snap-123", "lhsnap-ABCDEFGH", "lhsnap-0000000"):
        error("InvalidParameterValue.SnapshotIdMalformed", apply(c, UNKNOWN_INSTANCE, snapshot_id))


def test_apply_instance_not_found(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    error("ResourceNotFound.InstanceIdNotFound", apply(c, UNKNOWN_INSTANCE, snapshot_id))
    stranger = world.client(server, new_account(server))
    error("ResourceNotFound.InstanceIdNotFound", apply(stranger, instance_id, snapshot_id))


def test_apply_snapshot_id_not_found(server: Server) -> None:
    c, instance_id, _ = setup(server)
    error("ResourceNotFound.SnapshotIdNotFound", apply(c, instance_id, UNKNOWN_SNAPSHOT))
    _, _, foreign_snapshot, _ = snapshotted(server)
    error("ResourceNotFound.SnapshotIdNotFound", apply(c, instance_id, foreign_snapshot))


def test_apply_snapshot_of_another_instance(server: Server) -> None:
    account = new_account(server)
    first = create_instance(server, account)["InstanceId"]
    second = create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, first)
    world.wait_normal(c, snapshot_id)
    error("ResourceNotFound.SnapshotNotFound", apply(c, second, snapshot_id))


def test_apply_while_pending(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    admin(server, "instance", "set-state", instance_id, "--state", "PENDING", "--json")
    error("OperationDenied.InstanceCreating", apply(c, instance_id, snapshot_id))


def test_apply_while_shutdown(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    shown = admin(server, "instance", "set-state", instance_id, "--state", "SHUTDOWN", "--json")
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
    error("UnsupportedOperation.InvalidSnapshotState", apply(c, instance_id, first))
    error("UnsupportedOperation.InvalidSnapshotState", delete(c, first))


def test_apply_while_creating(slow_ops: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(slow_ops)
    world.create_snapshot(c, instance_id)
    error("UnsupportedOperation.DiskLatestOperationUnfinished", apply(c, instance_id, snapshot_id))


def test_invalid_snapshot_state(slow_ops: Server) -> None:
    """Applying a snapshot that is still CREATING is refused for the snapshot's state (checked
    before its busy disk); DeleteSnapshots reports the same for it."""
    c, instance_id, _ = setup(slow_ops)
    creating = world.create_snapshot(c, instance_id)
    error("UnsupportedOperation.InvalidSnapshotState", apply(c, instance_id, creating))
    error("UnsupportedOperation.InvalidSnapshotState", delete(c, creating))


def corrupted(server: Server) -> tuple[Client, str, str, str]:
    """A snapshot whose data was damaged and found so by a rollback (now marked corrupt):
    the client, the instance, the snapshot, and the disk's sha256 from before the attempt."""
    c, instance_id, snapshot_id, created = snapshotted(server)
    before = disk_sha256(server, instance_id)
    broken(server).corrupt_snapshot(disk_of(created), snapshot_id)
    apply(c, instance_id, snapshot_id)()
    failed = world.wait_for(
        lambda: world.snapshot(c, snapshot_id), lambda s: s.LatestOperationState != "OPERATING"
    )
    assert (failed.LatestOperationState, failed.SnapshotState) == ("FAILED", "NORMAL")
    return c, instance_id, snapshot_id, before


def test_apply_corrupt_snapshot(server: Server) -> None:
    c, instance_id, snapshot_id, before = corrupted(server)
    assert world.instance(c, instance_id).LatestOperationState == "FAILED"
    assert disk_sha256(server, instance_id) == before
    failure = error("FailedOperation.SnapshotOperationFailed", apply(c, instance_id, snapshot_id))
    assert failure.message == "Failed to manipulate the snapshot."


def test_corrupt_snapshot_denies_rollback(server: Server) -> None:
    """Regression (issue #11): a snapshot marked corrupt listed no denied action although
    ApplyInstanceSnapshot refuses it. It now denies RollbackInstanceSnapshot with the code
    Apply answers; DeleteSnapshots (the way out) stays allowed."""
    c, _, snapshot_id, _ = corrupted(server)
    request = models.DescribeSnapshotsDeniedActionsRequest()
    request.SnapshotIds = [snapshot_id]
    messages = {}
    for language in ("en-US", "zh-CN"):
        profile = clients.profile(server.endpoint, language=language)
        client = Client(c.credential, "ap-guangzhou", profile)
        (found,) = client.DescribeSnapshotsDeniedActions(request).SnapshotDeniedActionSet
        assert [(d.Action, d.Code) for d in found.DeniedActions] == [
            ("RollbackInstanceSnapshot", "FailedOperation.SnapshotOperationFailed")
        ]
        messages[language] = found.DeniedActions[0].Message
    assert messages == {
        "en-US": f"The snapshot `{snapshot_id}` failed its data check and cannot be rolled back to",
        "zh-CN": f"快照 `{snapshot_id}` 数据校验失败，不支持回滚",
    }


def test_apply_snapshot_data_missing(server: Server) -> None:
    c, instance_id, snapshot_id, created = snapshotted(server)
    broken(server).remove_snapshot(disk_of(created), snapshot_id)
    error("FailedOperation.SnapshotOperationFailed", apply(c, instance_id, snapshot_id))


def test_apply_after_disk_resized(server: Server) -> None:
    c, instance_id, snapshot_id, _ = snapshotted(server)
    admin(server, "instance", "resize-disk", instance_id, "--size", "2", "--json")
    failure = error("InvalidParameterValue.DiskSizeNotMatch", apply(c, instance_id, snapshot_id))
    assert failure.message == "The disk size has changed."


def test_apply_disk_busy(server: Server) -> None:
    c, instance_id, snapshot_id, created = snapshotted(server)
    with broken(server).hold_disk(disk_of(created)):
        error("UnsupportedOperation.DiskBusy", apply(c, instance_id, snapshot_id))


def test_apply_snapshot_busy(server: Server) -> None:
    c, instance_id, snapshot_id, created = snapshotted(server)
    with broken(server).hold_snapshot(disk_of(created), snapshot_id):
        failure = error("UnsupportedOperation.SnapshotBusy", apply(c, instance_id, snapshot_id))
    assert failure.message == "The snapshot is busy."


def test_apply_system_busy(make_server: Callable[..., Server]) -> None:
    srv = make_server(
        "--max-queued-jobs", "1", "--operation-seconds", "3", "--transition-seconds", "0"
    )
    account = new_account(srv)
    a = create_instance(srv, account)["InstanceId"]
    b = create_instance(srv, account)["InstanceId"]
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
    broken(server).remove_disk(disk_of(created))
    error("ResourceNotFound.DiskNotFound", apply(c, instance_id, snapshot_id))
