"""DeleteSnapshots, ModifySnapshotAttribute, DescribeSnapshotsDeniedActions, instance deletion."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models
from testkit import world
from testkit.server import Account, Server, free_port

pytestmark = pytest.mark.both_engines  # SQLite and PostgreSQL (tests/conftest.py)

UNKNOWN_ID = "lhsnap-zz9zz9zz"
FAKE_IDS = [f"lhsnap-{i:08d}" for i in range(101)]


def _error(call: Any) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    return info.value


def _delete(c: lighthouse_client.LighthouseClient, snapshot_ids: list[str]) -> None:
    request = models.DeleteSnapshotsRequest()
    request.SnapshotIds = snapshot_ids
    c.DeleteSnapshots(request)


def _rename(c: lighthouse_client.LighthouseClient, snapshot_id: str, name: str) -> None:
    request = models.ModifySnapshotAttributeRequest()
    request.SnapshotId, request.SnapshotName = snapshot_id, name
    c.ModifySnapshotAttribute(request)


def _denied(c: lighthouse_client.LighthouseClient, snapshot_ids: list[str]) -> dict[str, Any]:
    request = models.DescribeSnapshotsDeniedActionsRequest()
    request.SnapshotIds = snapshot_ids
    found = c.DescribeSnapshotsDeniedActions(request).SnapshotDeniedActionSet
    return {
        item.SnapshotId: [(d.Action, d.Code, d.Message) for d in item.DeniedActions]
        for item in found
    }


def _snapshot_quota(c: lighthouse_client.LighthouseClient) -> tuple[int, int]:
    request = models.DescribeGeneralResourceQuotasRequest()
    request.ResourceNames = ["SNAPSHOT"]
    quota = c.DescribeGeneralResourceQuotas(request).GeneralResourceQuotaSet[0]
    return quota.ResourceQuotaAvailable, quota.ResourceQuotaTotal


def _instances(server: Server, account: Account, count: int) -> list[str]:
    with ThreadPoolExecutor(count) as pool:  # each admin call is its own process
        made = pool.map(lambda _: world.create_instance(server, account), range(count))
        return [m["InstanceId"] for m in made]


# -- the shared server: operations finish at once --------------------------------------------


@dataclass
class Owner:
    account: Account
    client: lighthouse_client.LighthouseClient
    instances: list[str]
    kept: str  # a NORMAL snapshot of instances[0] that no test deletes


@pytest.fixture(scope="module")
def owner(server: Server) -> Owner:
    account = world.new_account(server, "manage")
    instances = _instances(server, account, 3)
    c = world.client(server, account)
    kept = world.create_snapshot(c, instances[0], "kept")
    world.wait_normal(c, kept)
    return Owner(account, c, instances, kept)


@pytest.mark.parametrize(
    ("snapshot_ids", "code"),
    [
        (FAKE_IDS[:11], "InvalidParameterValue.LimitExceeded"),
        ([FAKE_IDS[0], FAKE_IDS[1], FAKE_IDS[0]], "InvalidParameterValue.Duplicated"),
    ],
)
def test_delete_rejects_bad_id_lists(owner: Owner, snapshot_ids: list[str], code: str) -> None:
    assert _error(lambda: _delete(owner.client, snapshot_ids)).code == code


def test_delete_with_one_unknown_id_deletes_nothing_then_deletes_and_frees_quota(
    server: Server, owner: Owner
) -> None:
    c = owner.client
    victim = world.create_snapshot(c, owner.instances[1], "victim")
    world.wait_normal(c, victim)
    files = server.data_dir / "snapshots"
    assert (files / f"{victim}.img").is_file()
    available, total = _snapshot_quota(c)
    assert total == 6

    error = _error(lambda: _delete(c, [owner.kept, victim, UNKNOWN_ID]))
    assert error.code == "ResourceNotFound.SnapshotIdNotFound"
    assert world.snapshot(c, owner.kept) is not None
    assert world.snapshot(c, victim) is not None
    assert _snapshot_quota(c) == (available, total)

    _delete(c, [victim])
    assert world.snapshot(c, victim) is None
    assert world.snapshot(c, owner.kept) is not None
    assert _snapshot_quota(c) == (available + 1, total)
    assert not (files / f"{victim}.img").exists()
    assert (files / f"{owner.kept}.img").is_file()
    error = _error(lambda: _delete(c, [victim]))
    assert error.code == "ResourceNotFound.SnapshotIdNotFound"


def test_another_accounts_snapshot_cannot_be_deleted(
    server: Server, account: Account, owner: Owner
) -> None:
    stranger = world.client(server, account)
    assert _error(lambda: _delete(stranger, [owner.kept])).code == (
        "ResourceNotFound.SnapshotIdNotFound"
    )
    assert world.snapshot(owner.client, owner.kept) is not None


def test_rename(owner: Owner) -> None:
    c = owner.client
    _rename(c, owner.kept, "x" * 60)
    assert world.snapshot(c, owner.kept).SnapshotName == "x" * 60
    error = _error(lambda: _rename(c, owner.kept, "y" * 61))
    assert error.code == "InvalidParameterValue.SnapshotNameTooLong"
    assert world.snapshot(c, owner.kept).SnapshotName == "x" * 60
    _rename(c, owner.kept, "kept")
    assert world.snapshot(c, owner.kept).SnapshotName == "kept"


@pytest.mark.parametrize(
    "name", ["a\x00b", "line\r\nbreak", "\u202egnp.exe", "tab\t", "\x85", "\u2066x"]
)
def test_rename_refuses_control_characters(owner: Owner, name: str) -> None:
    """Decision (issue #11): C0/C1 control characters, line separators and bidi embeddings,
    overrides and isolates are refused in names; the name is unchanged."""
    error = _error(lambda: _rename(owner.client, owner.kept, name))
    assert error.code == "InvalidParameterValue"
    assert "`SnapshotName`" in error.message
    assert world.snapshot(owner.client, owner.kept).SnapshotName == "kept"


def test_rename_unknown_snapshot(server: Server, account: Account, owner: Owner) -> None:
    error = _error(lambda: _rename(owner.client, UNKNOWN_ID, "name"))
    assert error.code == "ResourceNotFound.SnapshotIdNotFound"
    stranger = world.client(server, account)
    error = _error(lambda: _rename(stranger, owner.kept, "mine now"))
    assert error.code == "ResourceNotFound.SnapshotIdNotFound"
    assert world.snapshot(owner.client, owner.kept).SnapshotName == "kept"


def test_denied_actions_of_an_idle_normal_snapshot_are_empty(owner: Owner) -> None:
    assert _denied(owner.client, [owner.kept]) == {owner.kept: []}


@pytest.mark.parametrize(
    ("snapshot_ids", "code"),
    [
        (FAKE_IDS, "InvalidParameterValue.LimitExceeded"),
        ([FAKE_IDS[0], FAKE_IDS[0]], "InvalidParameterValue.Duplicated"),
    ],
)
def test_denied_actions_reject_bad_id_lists(
    owner: Owner, snapshot_ids: list[str], code: str
) -> None:
    assert _error(lambda: _denied(owner.client, snapshot_ids)).code == code


def test_denied_actions_accept_100_ids(owner: Owner) -> None:
    assert _denied(owner.client, [owner.kept, *FAKE_IDS[:99]]) == {owner.kept: []}


def test_instance_deletion_deletes_its_snapshots(server: Server, owner: Owner) -> None:
    c = owner.client
    doomed = owner.instances[2]
    snapshot_id = world.create_snapshot(c, doomed, "goes with the instance")
    world.wait_normal(c, snapshot_id)
    assert (server.data_dir / "snapshots" / f"{snapshot_id}.img").is_file()

    result = server.admin("instance", "delete", doomed, "--json")
    assert result == {"InstanceId": doomed, "DeletedSnapshotIds": [snapshot_id]}
    assert world.snapshot(c, snapshot_id) is None
    assert not (server.data_dir / "snapshots" / f"{snapshot_id}.img").exists()
    assert world.snapshot(c, owner.kept) is not None  # another instance's snapshot stays
    by_instance = models.DescribeSnapshotsRequest()
    by_instance.Filters = [models.Filter()]
    by_instance.Filters[0].Name, by_instance.Filters[0].Values = "instance-id", [doomed]
    assert world.patient(lambda: c.DescribeSnapshots(by_instance)).TotalCount == 0


# -- a slow server: create and apply take 3 s, so CREATING and ROLLBACKING are observable ----


@dataclass
class Slow:
    server: Server
    account: Account
    client: lighthouse_client.LighthouseClient
    instances: list[str]
    ready: dict[str, str]  # instance -> a snapshot that becomes NORMAL early on


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slow]:
    data = tmp_path_factory.mktemp("slow") / "data"
    server = Server(data, free_port(), ("--transition-seconds", "0", "--operation-seconds", "3"))
    server.start()
    try:
        account = world.new_account(server, "slow")
        instances = _instances(server, account, 3)
        c = world.client(server, account)
        ready = {i: world.create_snapshot(c, i, "ready") for i in instances[:2]}
        yield Slow(server, account, c, instances, ready)
    finally:
        server.kill()  # a throwaway data dir: no need to wait for the last 3 s operation


def test_creating_snapshot_can_be_renamed_and_denies_rollback_and_delete(slow: Slow) -> None:
    c = slow.client
    snapshot_id = world.create_snapshot(c, slow.instances[2], "before")
    _rename(c, snapshot_id, "after")
    now = world.snapshot(c, snapshot_id)
    assert now.SnapshotState == "CREATING" and now.SnapshotName == "after"

    message = (
        f"The snapshot `{snapshot_id}` is in `CREATING` status and does not support this operation"
    )
    code = "UnsupportedOperation.InvalidSnapshotState"
    assert _denied(c, [snapshot_id]) == {
        snapshot_id: [
            ("RollbackInstanceSnapshot", code, message),
            ("DeleteSnapshots", code, message),
        ]
    }
    zh = world.client(slow.server, slow.account, language="zh-CN")
    zh_message = f"快照 `{snapshot_id}` 处于 `创建中` 状态中，不支持该操作"
    assert _denied(zh, [snapshot_id])[snapshot_id][1] == ("DeleteSnapshots", code, zh_message)
    assert world.snapshot(c, snapshot_id).SnapshotState == "CREATING"  # all seen mid-create


def test_delete_batch_with_a_creating_snapshot_deletes_nothing(slow: Slow) -> None:
    c = slow.client
    first = slow.instances[0]
    normal = world.wait_normal(c, slow.ready[first]).SnapshotId
    creating = world.create_snapshot(c, first, "in progress")
    error = _error(lambda: _delete(c, [normal, creating]))
    assert error.code == "UnsupportedOperation.InvalidSnapshotState"
    assert world.snapshot(c, normal).SnapshotState == "NORMAL"
    assert world.snapshot(c, creating).SnapshotState == "CREATING"
    assert (slow.server.data_dir / "snapshots" / f"{normal}.img").is_file()


def test_rollbacking_snapshot_denies_exactly_the_documented_pair(slow: Slow) -> None:
    c = slow.client
    instance_id = slow.instances[1]
    snapshot_id = world.wait_normal(c, slow.ready[instance_id]).SnapshotId
    disk_id = world.instance(c, instance_id).SystemDisk.DiskId
    world.apply_snapshot(c, instance_id, snapshot_id)

    assert _denied(c, [snapshot_id]) == {
        snapshot_id: [
            (
                "RollbackInstanceSnapshot",
                "UnsupportedOperation.DiskLatestOperationUnfinished",
                f"The disk `{disk_id}` is `rolling back an instance snapshot` "
                "and does not support this operation",
            ),
            (
                "DeleteSnapshots",
                "UnsupportedOperation.InvalidSnapshotState",
                f"The snapshot `{snapshot_id}` is in `ROLLBACKING` status "
                "and does not support this operation",
            ),
        ]
    }
    zh = world.client(slow.server, slow.account, language="zh-CN")
    assert _denied(zh, [snapshot_id]) == {
        snapshot_id: [
            (
                "RollbackInstanceSnapshot",
                "UnsupportedOperation.DiskLatestOperationUnfinished",
                f"磁盘 `{disk_id}` 正在进行 `回滚实例快照` 操作，不支持该操作",
            ),
            (
                "DeleteSnapshots",
                "UnsupportedOperation.InvalidSnapshotState",
                f"快照 `{snapshot_id}` 处于 `回滚中` 状态中，不支持该操作",
            ),
        ]
    }
    assert world.snapshot(c, snapshot_id).SnapshotState == "ROLLBACKING"  # all seen mid-rollback
