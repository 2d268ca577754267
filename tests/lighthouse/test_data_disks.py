"""Data disks through the official SDK (issue #18): CreateDisks, AttachDisks, DetachDisks,
IsolateDisks, TerminateDisks, ModifyDisksAttribute and ResizeDisks, with their async states,
their data on the storage driver, the real error codes and CAM on ``disk/`` resources."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server

from lightkeeper.testing import LighthouseServer
from tests.support.access import allow, policy, sub_user

MiB = 1024 * 1024


def create_disks(c: Any, count: int = 1, size: int = 10, zone: str = "ap-guangzhou-3",
                 **fields: Any) -> list[str]:  # fmt: skip
    request = models.CreateDisksRequest()
    request.Zone, request.DiskSize, request.DiskType = zone, size, "CLOUD_PREMIUM"
    prepaid = models.DiskChargePrepaid()
    prepaid.Period = 1
    request.DiskChargePrepaid = prepaid
    request.DiskCount = count
    for name, value in fields.items():
        setattr(request, name, value)
    return list(c.CreateDisks(request).DiskIdSet)


def disks(c: Any, disk_ids: list[str]) -> dict[str, Any]:
    request = models.DescribeDisksRequest()
    request.DiskIds = disk_ids
    return {d.DiskId: d for d in c.DescribeDisks(request).DiskSet}


def wait_state(c: Any, disk_ids: list[str], state: str) -> dict[str, Any]:
    return world.wait_for(
        lambda: disks(c, disk_ids),
        lambda found: all(d.DiskState == state and d.LatestOperationState != "OPERATING"
                          for d in found.values()) and len(found) == len(disk_ids),
        timeout=30,
    )  # fmt: skip


def block_checksum(size: int, blocks: dict[int, bytes]) -> str:
    """The b1m-sha256 checksum (storage/checksum.py) of a disk of zeros but ``blocks``."""
    zero = hashlib.sha256(bytes(MiB)).digest()
    digests = b"".join(
        hashlib.sha256(blocks[n]).digest() if n in blocks else zero for n in range(size // MiB)
    )
    return "b1m-sha256:" + hashlib.sha256(digests + size.to_bytes(8, "big")).hexdigest()


def call(c: Any, action: str, **fields: Any) -> Any:
    request = getattr(models, f"{action}Request")()
    for name, value in fields.items():
        setattr(request, name, value)
    return getattr(c, action)(request)


def code_of(c: Any, action: str, **fields: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as failed:
        call(c, action, **fields)
    return str(failed.value.code)


@pytest.fixture
def owner(server: Server) -> Account:
    return world.new_account(server, "data")


def test_the_life_of_a_data_disk(server: Server, owner: Account) -> None:
    c = world.client(server, owner)
    instance = world.create_instance(server, owner)  # RUNNING
    instance_id = instance["InstanceId"]
    made = create_disks(c, count=2, size=10, DiskName="scratch")
    assert len(made) == 2 and all(d.startswith("lhdisk-") for d in made)
    shown = wait_state(c, made, "UNATTACHED")
    first = shown[made[0]]
    assert (first.DiskUsage, first.DiskName, first.DiskSize, first.Attached) == (
        "DATA_DISK",
        "scratch",
        10,
        False,
    )
    assert (first.LatestOperation, first.LatestOperationState) == ("CreateDisks", "SUCCESS")

    call(c, "AttachDisks", DiskIds=made, InstanceId=instance_id)
    attached = wait_state(c, made, "ATTACHED")
    assert {d.InstanceId for d in attached.values()} == {instance_id}
    assert all(d.Attached and d.LatestOperation == "AttachDisks" for d in attached.values())
    (detail,) = call(c, "DescribeInstancesDiskNum", InstanceIds=[instance_id]).AttachDetailSet
    assert detail.AttachedDiskCount == 2

    pattern = bytes(range(256)) * 4096  # 1 MiB, written through the disk's own id
    server.admin("disk", "write", made[0], "--offset", str(3 * MiB), input_bytes=pattern)
    checksum = server.admin("disk", "checksum", made[0]).stdout.strip()
    assert checksum == block_checksum(10 * 1024 * MiB, {3: pattern})  # 10 GB, one block written

    call(c, "ModifyDisksAttribute", DiskIds=[made[0]], DiskName="database")
    call(c, "ResizeDisks", DiskIds=[made[0]], DiskSize=20)
    grown = disks(c, [made[0]])[made[0]]
    assert (grown.DiskName, grown.DiskSize) == ("database", 20)
    assert (
        server.admin(
            "disk",
            "read",
            made[0],
            "--offset",
            str(3 * MiB),
            "--length",
            "4",
        ).stdout
        == "\x00\x01\x02\x03"
    )  # fmt: skip (the data stays)

    call(c, "DetachDisks", DiskIds=made)
    detached = wait_state(c, made, "UNATTACHED")
    assert all(d.InstanceId == "" for d in detached.values())
    call(c, "IsolateDisks", DiskIds=made)
    assert {d.DiskState for d in wait_state(c, made, "SHUTDOWN").values()} == {"SHUTDOWN"}
    call(c, "TerminateDisks", DiskIds=made)
    assert disks(c, made) == {}
    gone = server.admin("disk", "sha256", made[0], check=False)
    assert gone.returncode == 1  # its data went with it


def test_bad_requests_get_the_real_codes(server: Server, owner: Account) -> None:
    c = world.client(server, owner)
    instance = world.create_instance(server, owner)
    cases = [
        ("InvalidParameterValue.InvalidZone", dict(zone="ap-guangzhou-99")),
        ("InvalidParameterValue", dict(size=15)),
        ("InvalidParameterValue", dict(count=31)),
        ("InvalidParameterValue.DiskNameTooLong", dict(DiskName="x" * 61)),
        ("InvalidParameterValue.InvalidDiskType", dict(DiskType="CLOUD_BASIC")),
    ]
    for code, fields in cases:
        with pytest.raises(TencentCloudSDKException) as failed:
            create_disks(c, **fields)
        assert failed.value.code == code, fields
    mount = models.AutoMountConfiguration()
    mount.InstanceId, mount.MountPoint = instance["InstanceId"], "/data"
    with pytest.raises(TencentCloudSDKException) as no_agent:
        create_disks(c, AutoMountConfiguration=mount)
    assert no_agent.value.code == "UnsupportedOperation.TatAgentNotOnline"

    made = create_disks(c, count=6)
    wait_state(c, made, "UNATTACHED")
    with pytest.raises(TencentCloudSDKException) as quota:
        create_disks(c, count=15)  # 6 + 15 > 20 in the region
    assert quota.value.code == "LimitExceeded.DiskQuotaLimitExceeded"
    instance_id = instance["InstanceId"]
    assert code_of(c, "AttachDisks", DiskIds=made, InstanceId=instance_id) == (
        "LimitExceeded.AttachDataDiskQuotaLimitExceeded"  # 6 > 5 per instance
    )
    elsewhere = create_disks(c, zone="ap-guangzhou-4")
    wait_state(c, elsewhere, "UNATTACHED")
    assert code_of(c, "AttachDisks", DiskIds=elsewhere, InstanceId=instance_id) == (
        "InvalidParameterValue.DiskInstanceZoneNotMatch"
    )
    system = instance["SystemDisk"]["DiskId"]
    for action, fields in (
        ("AttachDisks", dict(DiskIds=[system], InstanceId=instance_id)),
        ("DetachDisks", dict(DiskIds=[system])),
        ("ResizeDisks", dict(DiskIds=[system], DiskSize=50)),
    ):
        assert code_of(c, action, **fields) == "OperationDenied.DiskUsageNotSupportOperation"
    one = made[:1]
    assert code_of(c, "DetachDisks", DiskIds=one) == "UnsupportedOperation.InvalidDiskState"
    assert code_of(c, "TerminateDisks", DiskIds=one) == "UnsupportedOperation.InvalidDiskState"
    assert code_of(c, "ResizeDisks", DiskIds=one, DiskSize=10) == (
        "UnsupportedOperation.SameWithOldConfig"
    )
    assert code_of(c, "ResizeDisks", DiskIds=one, DiskSize=15) == (
        "InvalidParameterValue.InvalidDiskSize"
    )
    call(c, "ResizeDisks", DiskIds=one, DiskSize=30)
    assert code_of(c, "ResizeDisks", DiskIds=one, DiskSize=20) == (
        "InvalidParameterValue.DiskSizeSmallerThanCurrentDiskSize"
    )
    assert code_of(c, "AttachDisks", DiskIds=["lhdisk-00000000"], InstanceId=instance_id) == (
        "ResourceNotFound.DiskIdNotFound"
    )
    assert code_of(c, "IsolateDisks", DiskIds=["lhdisk-BAD"]) == (
        "InvalidParameterValue.InvalidDiskIdMalformed"
    )
    call(c, "AttachDisks", DiskIds=one, InstanceId=instance_id)
    again = code_of(c, "AttachDisks", DiskIds=one, InstanceId=instance_id)
    assert again in (
        "OperationDenied.DiskOperationInProgress",
        "UnsupportedOperation.InvalidDiskState",
    )


def test_disks_are_isolated_between_accounts_and_users(
    server: Server, owner: Account, tmp_path: Path
) -> None:
    c = world.client(server, owner)
    mine, other = create_disks(c, count=2)
    wait_state(c, [mine, other], "UNATTACHED")
    stranger = world.client(server, world.new_account(server, "data-stranger"))
    assert disks(stranger, [mine]) == {}
    assert code_of(stranger, "IsolateDisks", DiskIds=[mine]) == "ResourceNotFound.DiskIdNotFound"
    resource = f"qcs::lighthouse:ap-guangzhou:uin/{owner.uin}:disk/{mine}"
    document = policy(allow(["lighthouse:ModifyDisksAttribute"], [resource]))
    keeper = sub_user(server, owner, "keeper", document, tmp_path)
    k = world.client(server, keeper)
    call(k, "ModifyDisksAttribute", DiskIds=[mine], DiskName="mine")
    assert code_of(k, "ModifyDisksAttribute", DiskIds=[other], DiskName="x") == (
        "UnauthorizedOperation.NoPermission"
    )


def test_failed_disk_jobs_leave_nothing_half_done() -> None:
    with LighthouseServer() as server:
        c = server.client()
        instance_id = server.create_instance()["InstanceId"]
        server.fail_next("CreateDisks", job=True)
        failed = create_disks(c)
        world.wait_for(lambda: disks(c, failed), lambda found: found == {}, timeout=30)
        made = create_disks(c)  # the quota was given back, the next one works
        wait_state(c, made, "UNATTACHED")
        server.fail_next("AttachDisks", job=True)
        call(c, "AttachDisks", DiskIds=made, InstanceId=instance_id)
        back = wait_state(c, made, "UNATTACHED")[made[0]]
        assert (back.InstanceId, back.LatestOperation, back.LatestOperationState) == (
            "",
            "AttachDisks",
            "FAILED",
        )
        call(c, "AttachDisks", DiskIds=made, InstanceId=instance_id)
        assert wait_state(c, made, "ATTACHED")[made[0]].InstanceId == instance_id


def test_denied_actions_follow_the_same_rules(server: Server, owner: Account) -> None:
    c = world.client(server, owner)
    system = world.create_instance(server, owner)["SystemDisk"]["DiskId"]
    (made,) = create_disks(c)
    wait_state(c, [made], "UNATTACHED")
    answer = call(
        c,
        "DescribeDisksDeniedActions",
        DiskIds=[made, system],
    )
    denied = {
        entry.DiskId: {a.Action: a.Code for a in entry.DeniedActions}
        for entry in answer.DiskDeniedActionSet
    }
    assert denied[made] == {
        "DetachDisks": "UnsupportedOperation.InvalidDiskState",
        "TerminateDisks": "UnsupportedOperation.InvalidDiskState",
    }
    assert set(denied[system].values()) == {"OperationDenied.DiskUsageNotSupportOperation"}
    assert len(denied[system]) == 10
    for action, code in denied[made].items():  # what it says is what the action answers
        assert code_of(c, action, DiskIds=[made]) == code
    zh = world.client(server, owner, language="zh-CN")
    (entry,) = call(zh, "DescribeDisksDeniedActions", DiskIds=[made]).DiskDeniedActionSet
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in a.Message) for a in entry.DeniedActions)
