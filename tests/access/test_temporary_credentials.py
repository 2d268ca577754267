"""Temporary credentials: valid with their token until they expire, never more than the
user's policy and the session policy together allow."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import clients, world
from testkit.server import Account, Server

from tests.support.access import allow, policy, sts, sub_user, token_client


def code_of(call: object) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        call()  # type: ignore[operator]
    return str(info.value.code)


def regions(c: object) -> int:
    return int(c.DescribeRegions(models.DescribeRegionsRequest()).TotalCount)  # type: ignore[attr-defined]


def test_credentials_work_until_expiry_then_fail_with_token_failure(
    server: Server, tmp_path: Path
) -> None:
    root = world.new_account(server, "sts")
    creds = sts(server, root, tmp_path, duration=3)
    assert set(creds) == {"TmpSecretId", "TmpSecretKey", "Token", "ExpiredTime", "Expiration"}
    assert creds["ExpiredTime"] - time.time() <= 3
    for sign_method, method in [("TC3-HMAC-SHA256", "POST"), ("HmacSHA256", "GET")]:
        c = token_client(server, creds, sign_method=sign_method, method=method)
        assert regions(c) == 15
    time.sleep(max(0.0, creds["ExpiredTime"] - time.time()) + 0.5)
    assert code_of(lambda: regions(token_client(server, creds))) == "AuthFailure.TokenFailure"


def test_missing_or_wrong_token_is_token_failure(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "sts")
    creds = sts(server, root, tmp_path)
    assert code_of(lambda: regions(token_client(server, creds, token=None))) == (
        "AuthFailure.TokenFailure"
    )
    wrong = creds["Token"][:-1] + ("A" if creds["Token"][-1] != "A" else "B")
    assert code_of(lambda: regions(token_client(server, creds, token=wrong))) == (
        "AuthFailure.TokenFailure"
    )


def test_v1_requests_carry_the_token_parameter(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "sts")
    creds = sts(server, root, tmp_path)
    temporary = Account(
        root.name, root.uin, root.app_id, creds["TmpSecretId"], creds["TmpSecretKey"]
    )
    params = clients.v1_params(
        temporary,
        server.endpoint,
        "DescribeRegions",
        {"Token": creds["Token"]},
        nonce=int(time.time() * 1000),
    )
    reply = httpx.post(
        f"{server.url}/",
        content=urllib.parse.urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.json()["Response"]["TotalCount"] == 15


def test_a_bad_signature_is_reported_before_the_token(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "sts")
    creds = sts(server, root, tmp_path)
    forged = {**creds, "TmpSecretKey": "x" * 32}
    assert code_of(lambda: regions(token_client(server, forged, token=None))) == (
        "AuthFailure.SignatureFailure"
    )


def test_effective_permission_is_the_intersection(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "sts")
    instance_id = world.create_instance(server, root)["InstanceId"]
    sub_user(
        server,
        root,
        "ops",
        policy(allow(["lighthouse:Describe*", "lighthouse:CreateInstanceSnapshot"], ["*"])),
        tmp_path,
    )
    creds = sts(
        server,
        root,
        tmp_path,
        user="ops",
        session_policy=policy(
            allow(["lighthouse:DescribeSnapshots", "lighthouse:DeleteSnapshots"], ["*"])
        ),
    )
    c = token_client(server, creds)
    assert c.DescribeSnapshots(models.DescribeSnapshotsRequest()).TotalCount == 0
    # the user may create snapshots, the session may not
    assert code_of(lambda: world.create_snapshot(c, instance_id)) == (
        "UnauthorizedOperation.NoPermission"
    )
    # the session may delete, the user may not
    snapshot_id = world.create_snapshot(world.client(server, root), instance_id)
    world.wait_normal(world.client(server, root), snapshot_id)
    delete = models.DeleteSnapshotsRequest()
    delete.SnapshotIds = [snapshot_id]
    assert code_of(lambda: c.DeleteSnapshots(delete)) == "UnauthorizedOperation.NoPermission"
    # the user may describe instances, the session may not
    assert code_of(lambda: c.DescribeInstances(models.DescribeInstancesRequest())) == (
        "UnauthorizedOperation.NoPermission"
    )


def test_root_session_policy_narrows_the_root(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "sts")
    creds = sts(
        server, root, tmp_path, session_policy=policy(allow(["lighthouse:DescribeZones"], ["*"]))
    )
    c = token_client(server, creds)
    assert c.DescribeZones(models.DescribeZonesRequest()).TotalCount == 4
    assert code_of(lambda: regions(c)) == "UnauthorizedOperation.NoPermission"


def test_invalid_duration_and_session_policy_are_refused(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "sts")
    too_long = server.admin(
        "sts", "issue", "--account", root.name, "--duration", "50000", check=False
    )
    assert too_long.returncode == 1 and "duration" in too_long.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "2.0"}')
    refused = server.admin(
        "sts", "issue", "--account", root.name, "--policy", str(bad), check=False
    )
    assert refused.returncode == 1 and "invalid policy" in refused.stderr
