"""CAM policies for sub-users, evaluated as CAM does, through the real server and SDK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server

from tests.support.access import (
    allow,
    deny,
    instance_resource,
    policy,
    snapshot_resource,
    sub_user,
)


def refused(call: object) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        call()  # type: ignore[operator]
    return info.value


def _setup(server: Server) -> tuple[Account, str, str, str]:
    root = world.new_account(server, "cam")
    first = world.create_instance(server, root)["InstanceId"]
    second = world.create_instance(server, root)["InstanceId"]
    c = world.client(server, root)
    existing = world.create_snapshot(c, second)
    world.wait_normal(c, existing)
    return root, first, second, existing


def test_backup_robot_may_only_snapshot_its_instance(server: Server, tmp_path: Path) -> None:
    root, mine, other, others_snapshot = _setup(server)
    robot = sub_user(
        server,
        root,
        "robot",
        policy(
            allow(
                ["lighthouse:CreateInstanceSnapshot"],
                [
                    instance_resource(root, mine),
                    f"qcs::lighthouse:ap-guangzhou:uin/{root.uin}:snapshot/*",
                ],
            ),
            allow(["lighthouse:DescribeSnapshots"], ["*"]),
        ),
        tmp_path,
    )
    c = world.client(server, robot)
    snapshot_id = world.create_snapshot(c, mine)
    assert world.wait_normal(c, snapshot_id).SnapshotState == "NORMAL"

    error = refused(lambda: world.apply_snapshot(c, mine, snapshot_id))
    assert error.code == "UnauthorizedOperation.NoPermission"
    assert error.message == (
        "you are not authorized to perform operation (lighthouse:ApplyInstanceSnapshot)\n"
        f"resource ({instance_resource(root, mine)}) has no permission"
    )
    delete = models.DeleteSnapshotsRequest()
    delete.SnapshotIds = [snapshot_id]
    error = refused(lambda: c.DeleteSnapshots(delete))
    assert error.code == "UnauthorizedOperation.NoPermission"
    assert snapshot_resource(root, snapshot_id) in error.message

    error = refused(lambda: world.create_snapshot(c, other))
    assert error.code == "UnauthorizedOperation.NoPermission"
    assert instance_resource(root, other) in error.message
    error = refused(lambda: c.DescribeInstances(models.DescribeInstancesRequest()))
    assert (error.code, "resource (*)" in error.message) == (
        "UnauthorizedOperation.NoPermission",
        True,
    )
    assert others_snapshot  # still there, untouched by the robot
    assert world.snapshot(world.client(server, root), others_snapshot) is not None


def test_explicit_deny_beats_a_wildcard_allow(server: Server, tmp_path: Path) -> None:
    root, mine, _, snapshot_id = _setup(server)
    user = sub_user(
        server,
        root,
        "careful",
        policy(
            allow(["lighthouse:*"], ["*"]),
            deny(["lighthouse:Delete*"], ["*"]),
        ),
        tmp_path,
    )
    c = world.client(server, user)
    assert c.DescribeSnapshots(models.DescribeSnapshotsRequest()).TotalCount == 1
    delete = models.DeleteSnapshotsRequest()
    delete.SnapshotIds = [snapshot_id]
    assert refused(lambda: c.DeleteSnapshots(delete)).code == "UnauthorizedOperation.NoPermission"
    assert world.create_snapshot(c, mine).startswith("lhsnap-")


def test_no_policy_means_no_permission_in_both_languages(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "cam")
    user = sub_user(server, root, "nobody", None, tmp_path)
    en = refused(
        lambda: world.client(server, user).DescribeRegions(models.DescribeRegionsRequest())
    )
    assert en.code == "UnauthorizedOperation.NoPermission"
    assert en.message.startswith(
        "you are not authorized to perform operation (lighthouse:DescribeRegions)"
    )
    zh = refused(
        lambda: world.client(server, user, language="zh-CN").DescribeRegions(
            models.DescribeRegionsRequest()
        )
    )
    assert zh.message.startswith("您没有执行操作 (lighthouse:DescribeRegions) 的权限")


@pytest.mark.parametrize(
    ("condition", "allowed"),
    [
        ({"ip_equal": {"qcs:ip": ["127.0.0.1/32"]}}, True),
        ({"ip_equal": {"qcs:ip": "10.0.0.0/8"}}, False),
        ({"ip_not_equal": {"qcs:ip": ["127.0.0.0/8"]}}, False),
        ({"ip_not_equal": {"qcs:ip": ["192.168.0.0/16"]}}, True),
    ],
)
def test_ip_conditions(
    server: Server, tmp_path: Path, condition: dict[str, object], allowed: bool
) -> None:
    root = world.new_account(server, "cam")
    user = sub_user(
        server,
        root,
        "ip",
        policy(allow(["lighthouse:Describe*"], ["*"], condition=condition)),
        tmp_path,
    )
    c = world.client(server, user)
    if allowed:
        assert c.DescribeRegions(models.DescribeRegionsRequest()).TotalCount == 15
    else:
        error = refused(lambda: c.DescribeRegions(models.DescribeRegionsRequest()))
        assert error.code == "UnauthorizedOperation.NoPermission"


def test_empty_region_segment_matches_every_region(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "cam")
    beijing = world.create_instance(server, root, "ap-beijing")["InstanceId"]
    user = sub_user(
        server,
        root,
        "anywhere",
        policy(
            allow(["lighthouse:StopInstances"], [f"qcs::lighthouse::uin/{root.uin}:instance/*"]),
            allow(
                ["lighthouse:StartInstances"],
                [f"qcs::lighthouse:ap-guangzhou:uin/{root.uin}:instance/*"],
            ),
        ),
        tmp_path,
    )
    c = world.client(server, user, region="ap-beijing")
    stop = models.StopInstancesRequest()
    stop.InstanceIds = [beijing]
    c.StopInstances(stop)
    world.wait_for(
        lambda: world.instance(world.client(server, root, "ap-beijing"), beijing),
        lambda i: i.InstanceState == "STOPPED",
    )
    start = models.StartInstancesRequest()
    start.InstanceIds = [beijing]
    assert refused(lambda: c.StartInstances(start)).code == "UnauthorizedOperation.NoPermission"


def test_operation_level_action_is_not_granted_by_a_named_resource(
    server: Server, tmp_path: Path
) -> None:
    root, mine, _, _ = _setup(server)
    user = sub_user(
        server,
        root,
        "narrow",
        policy(allow(["lighthouse:DescribeInstances"], [instance_resource(root, mine)])),
        tmp_path,
    )
    error = refused(
        lambda: world.client(server, user).DescribeInstances(models.DescribeInstancesRequest())
    )
    assert error.code == "UnauthorizedOperation.NoPermission"


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ({"version": "1.0", "statement": [allow(["*"], ["*"])]}, '"version" must be "2.0"'),
        (policy({"effect": "maybe", "action": ["*"], "resource": ["*"]}), "effect"),
        (policy({"effect": "allow", "action": ["*"]}), "statement[0].resource"),
        (policy(allow(["CreateInstanceSnapshot"], ["*"])), 'is not "service:Action"'),
        (policy(allow(["*"], ["lhins-abcdefgh"])), "resource"),
        (
            policy(allow(["*"], ["*"], condition={"ip_like": {"qcs:ip": "1.2.3.4"}})),
            'operator "ip_like"',
        ),
        (
            policy(allow(["*"], ["*"], condition={"ip_equal": {"qcs:ip": "1.2.3.400"}})),
            "not an IP or CIDR",
        ),
        ({"version": "2.0", "statement": []}, "non-empty list"),
    ],
)
def test_invalid_policies_are_rejected_at_attach_time(
    server: Server, tmp_path: Path, document: dict[str, object], complaint: str
) -> None:
    root = world.new_account(server, "cam")
    server.admin("user", "create", root.name, "bad", "--json")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    result = server.admin(
        "user", "attach-policy", root.name, "bad", "--file", str(path), check=False
    )
    assert result.returncode == 1
    assert result.stderr.startswith("lightkeeper: error: invalid policy: ")
    assert complaint in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sub_user_keys_are_limited_and_listed(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "cam")
    sub_user(server, root, "twokeys", None, tmp_path)
    server.admin("key", "create", "--account", root.name, "--user", "twokeys", "--json")
    third = server.admin("key", "create", "--account", root.name, "--user", "twokeys", check=False)
    assert third.returncode == 1 and "already has 2 keys" in third.stderr
    listed = server.admin("key", "list", "--account", root.name, "--json")
    assert sorted(k["User"] for k in listed) == ["(root)", "twokeys", "twokeys"]


def test_region_deny_holds_when_region_is_left_out(server: Server, tmp_path: Path) -> None:
    """Regression (issue #11, 4): a region-less CreateInstanceSnapshot was evaluated with
    ``qcs:requested_region`` = "" and so slipped past a deny on the instance's region. It is
    now evaluated as if the instance's region had been requested."""
    root = world.new_account(server, "cam")
    shanghai = world.create_instance(server, root, "ap-shanghai")["InstanceId"]
    guangzhou = world.create_instance(server, root)["InstanceId"]
    user = sub_user(
        server,
        root,
        "notshanghai",
        policy(
            allow(["*"], ["*"]),
            deny(
                ["lighthouse:CreateInstanceSnapshot"],
                ["*"],
                condition={"string_equal": {"qcs:requested_region": ["ap-shanghai"]}},
            ),
        ),
        tmp_path,
    )
    denied = f"resource ({instance_resource(root, shanghai, 'ap-shanghai')}) has no permission"
    for region in ("ap-shanghai", ""):
        c = world.client(server, user, region=region)
        error = refused(lambda: world.create_snapshot(c, shanghai))  # noqa: B023
        assert (error.code, error.message.endswith(denied)) == (
            "UnauthorizedOperation.NoPermission",
            True,
        ), region
    there = world.client(server, root, "ap-shanghai")
    assert there.DescribeSnapshots(models.DescribeSnapshotsRequest()).TotalCount == 0
    assert world.create_snapshot(world.client(server, user, region=""), guangzhou)
