"""DescribeDisks, DescribeInstancesDiskNum and DescribeDiskConfigs through the official SDK
(issue #18, the read side): the instances' system disks as the SDK's ``Disk``, with filters,
paging, order, the errors of bad input, and isolation between accounts, regions and users."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server

from tests.support.access import allow, policy, sub_user


def describe(c: Any, **fields: Any) -> dict[str, Any]:
    request = models.DescribeDisksRequest()
    for name, value in fields.items():
        setattr(request, name, value)
    answer: dict[str, Any] = json.loads(c.DescribeDisks(request).to_json_string())
    return answer


def flt(name: str, *values: str) -> models.Filter:
    f = models.Filter()
    f.Name, f.Values = name, list(values)
    return f


def refused(call: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as failed:
        call()
    return str(failed.value.code)


@pytest.fixture
def owner(server: Server) -> Account:
    return world.new_account(server, "disks")


def test_system_disks_are_described_as_the_sdks_disk(server: Server, owner: Account) -> None:
    small = world.create_instance(server, owner)
    big = world.create_instance(server, owner, "ap-guangzhou", "--disk-size", "3",
                                "--bundle-type", "STORAGE_BUNDLE")  # fmt: skip
    c = world.client(server, owner)
    answer = describe(c)
    assert answer["TotalCount"] == 2
    by_id = {d["DiskId"]: d for d in answer["DiskSet"]}
    disk = by_id[small["SystemDisk"]["DiskId"]]
    assert set(disk) == {k.lstrip("_") for k in vars(models.Disk())}  # every field, no more
    assert disk["InstanceId"] == small["InstanceId"]
    assert (disk["DiskUsage"], disk["DiskState"], disk["Attached"]) == (
        "SYSTEM_DISK",
        "ATTACHED",
        True,
    )
    assert disk["DiskName"] == f"{small['InstanceId']}-SYSTEM_DISK"
    assert (disk["DiskSize"], disk["DiskType"], disk["DiskChargeType"]) == (
        1,
        "CLOUD_PREMIUM",
        "PREPAID",
    )
    assert disk["ExpiredTime"] == small["ExpiredTime"] and disk["CreatedTime"].endswith("Z")
    assert by_id[big["SystemDisk"]["DiskId"]]["DiskType"] == "CLOUD_SSD"
    assert answer["DiskSet"][0]["DiskId"] == big["SystemDisk"]["DiskId"]  # newest first


def test_filters_paging_and_order(server: Server, owner: Account) -> None:
    made = [world.create_instance(server, owner, "ap-guangzhou", "--disk-size", str(n))
            for n in (3, 1, 2)]  # fmt: skip
    c = world.client(server, owner)
    first = made[0]
    assert [
        d["DiskId"]
        for d in describe(c, Filters=[flt("instance-id", first["InstanceId"])])["DiskSet"]
    ] == [first["SystemDisk"]["DiskId"]]
    name = f"{first['InstanceId']}-SYSTEM_DISK"
    assert describe(c, Filters=[flt("disk-name", name)])["TotalCount"] == 1
    assert describe(c, Filters=[flt("disk-usage", "DATA_DISK")])["TotalCount"] == 0
    assert describe(c, Filters=[flt("disk-state", "ATTACHED")])["TotalCount"] == 3
    assert describe(c, Filters=[flt("zone", made[1]["Zone"])])["TotalCount"] == 3
    ids = [m["SystemDisk"]["DiskId"] for m in made]
    assert describe(c, DiskIds=ids[:2])["TotalCount"] == 2
    sizes = describe(c, OrderField="DISK_SIZE", Order="ASC")["DiskSet"]
    assert [d["DiskSize"] for d in sizes] == [1, 2, 3]
    page = describe(c, Offset=1, Limit=1, OrderField="DISK_SIZE", Order="DESC")
    assert (page["TotalCount"], [d["DiskSize"] for d in page["DiskSet"]]) == (3, [2])


def test_bad_input_gets_the_real_codes(server: Server, owner: Account) -> None:
    c = world.client(server, owner)
    disk_id = world.create_instance(server, owner)["SystemDisk"]["DiskId"]
    cases = {
        "InvalidParameter.ParameterConflict": dict(
            DiskIds=[disk_id], Filters=[flt("disk-usage", "SYSTEM_DISK")]
        ),
        "InvalidParameterValue.InvalidDiskIdMalformed": dict(DiskIds=["lhdisk-BAD"]),
        "InvalidParameterValue.Duplicated": dict(DiskIds=[disk_id, disk_id]),
        "InvalidParameter.InvalidFilterInvalidKey": dict(Filters=[flt("colour", "red")]),
        "InvalidParameterValue.DiskNameTooLong": dict(Filters=[flt("disk-name", "x" * 61)]),
        "InvalidParameterValue.OutOfRange": dict(Limit=101),
        "InvalidParameterValue": dict(OrderField="NAME"),
    }
    for code, fields in cases.items():
        assert refused(lambda f=fields: describe(c, **f)) == code, fields


def test_disks_are_the_accounts_and_the_regions_own(server: Server, owner: Account) -> None:
    mine = world.create_instance(server, owner)["SystemDisk"]["DiskId"]
    other = world.new_account(server, "disks-other")
    world.create_instance(server, other)
    assert describe(world.client(server, other), DiskIds=[mine])["TotalCount"] == 0
    shanghai = world.client(server, owner, "ap-shanghai")
    assert describe(shanghai)["TotalCount"] == 0


def test_instances_disk_num_counts_attached_data_disks(server: Server, owner: Account) -> None:
    instance_id = world.create_instance(server, owner)["InstanceId"]
    c = world.client(server, owner)
    request = models.DescribeInstancesDiskNumRequest()
    request.InstanceIds = [instance_id]
    (detail,) = c.DescribeInstancesDiskNum(request).AttachDetailSet
    assert (detail.InstanceId, detail.AttachedDiskCount, detail.MaxAttachCount) == (
        instance_id,
        0,
        5,
    )
    request.InstanceIds = ["lhins-00000000"]
    assert refused(lambda: c.DescribeInstancesDiskNum(request)) == (
        "ResourceNotFound.InstanceIdNotFound"
    )
    request.InstanceIds = [instance_id]
    stranger = world.client(server, world.new_account(server, "disks-stranger"))
    assert refused(lambda: stranger.DescribeInstancesDiskNum(request)) == (
        "ResourceNotFound.InstanceIdNotFound"
    )
    request.InstanceIds = ["lhins-BAD"]
    assert refused(lambda: c.DescribeInstancesDiskNum(request)) == (
        "InvalidParameterValue.InstanceIdMalformed"
    )


def test_disk_configs_cover_every_zone(server: Server, owner: Account) -> None:
    c = world.client(server, owner)
    configs = c.DescribeDiskConfigs(models.DescribeDiskConfigsRequest()).DiskConfigSet
    zones = [z.Zone for z in c.DescribeZones(models.DescribeZonesRequest()).ZoneInfoSet]
    assert {(x.Zone, x.DiskType) for x in configs} == {
        (z, t) for z in zones for t in ("CLOUD_PREMIUM", "CLOUD_SSD")
    }
    assert all((x.MinDiskSize, x.MaxDiskSize, x.DiskStepSize) == (10, 4000, 10) for x in configs)
    request = models.DescribeDiskConfigsRequest()
    request.Filters = [flt("zone", zones[0])]
    assert {x.Zone for x in c.DescribeDiskConfigs(request).DiskConfigSet} == {zones[0]}
    request.Filters = [flt("zone", "ap-guangzhou-99")]
    assert refused(lambda: c.DescribeDiskConfigs(request)) == "InvalidParameterValue.ZoneInvalid"


def test_a_sub_user_needs_the_describe_permission(
    server: Server, owner: Account, tmp_path: Path
) -> None:
    world.create_instance(server, owner)
    narrow = sub_user(server, owner, "only-instances",
                      policy(allow(["lighthouse:DescribeInstances"], ["*"])), tmp_path)  # fmt: skip
    assert refused(lambda: describe(world.client(server, narrow))) == (
        "UnauthorizedOperation.NoPermission"
    )
    reader = sub_user(server, owner, "reader", policy(allow(["lighthouse:Describe*"], ["*"])),
                      tmp_path)  # fmt: skip
    assert describe(world.client(server, reader))["TotalCount"] == 1
