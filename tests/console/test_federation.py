"""STS GetFederationToken at /console/sts, the console's sign-in, through the wire: the
temporary credentials work with the official SDK, act as exactly the caller, cannot mint
more, and the endpoint applies the API 3.0 rules (signature, service scope, parameters)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.clients import tc3_headers
from testkit.server import Account, Server

from tests.support.access import allow, policy, sub_user, token_client


def federate(server: Server, who: Account, params: dict[str, Any], **options: Any) -> Any:
    body = json.dumps(params).encode()
    options.setdefault("service", "sts")
    headers = tc3_headers(
        who, server.endpoint, "GetFederationToken", body, None, version="2018-08-13", **options
    )
    reply = httpx.post(f"{server.url}/console/sts", content=body, headers=headers)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    return reply.json()["Response"]


def test_root_gets_working_temporary_credentials(server: Server, account: Account) -> None:
    answer = federate(server, account, {"Name": "console", "DurationSeconds": 600})
    creds = answer["Credentials"]
    assert creds["TmpSecretId"] != account.secret_id and creds["Token"]
    assert answer["Expiration"].endswith("Z") and answer["ExpiredTime"] > 0
    c = token_client(server, creds)
    c.DescribeInstances(models.DescribeInstancesRequest())  # works, as the root
    with pytest.raises(TencentCloudSDKException) as missing:
        token_client(server, creds, token=None).DescribeInstances(models.DescribeInstancesRequest())
    assert missing.value.code.startswith("AuthFailure")

    temporary = Account("tmp", account.uin, account.app_id, creds["TmpSecretId"],
                        creds["TmpSecretKey"])  # fmt: skip
    body = json.dumps({"Name": "again"}).encode()
    headers = tc3_headers(temporary, server.endpoint, "GetFederationToken", body, None,
                          version="2018-08-13", service="sts")  # fmt: skip
    headers["X-TC-Token"] = creds["Token"]
    again = httpx.post(f"{server.url}/console/sts", content=body, headers=headers).json()
    assert again["Response"]["Error"]["Code"] == "UnauthorizedOperation"  # no self-renewal


def test_a_sub_users_credentials_keep_its_policy(server: Server, tmp_path: Path) -> None:
    root = world.new_account(server, "fed")
    instance_id = world.create_instance(server, root)["InstanceId"]
    reader = sub_user(server, root, "reader", policy(allow(["lighthouse:Describe*"], ["*"])),
                      tmp_path)  # fmt: skip
    creds = federate(server, reader, {"Name": "console"})["Credentials"]
    c = token_client(server, creds)
    assert c.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 1
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    with pytest.raises(TencentCloudSDKException) as denied:
        c.CreateInstanceSnapshot(request)
    assert denied.value.code == "UnauthorizedOperation.NoPermission"


def test_the_api_rules_apply(server: Server, account: Account) -> None:
    wrong_scope = federate(server, account, {"Name": "console"}, service="lighthouse")
    assert wrong_scope["Error"]["Code"].startswith("AuthFailure")
    forged = Account("x", account.uin, account.app_id, account.secret_id, "not-the-key")
    assert federate(server, forged, {"Name": "c"})["Error"]["Code"] == (
        "AuthFailure.SignatureFailure"
    )
    for params in ({}, {"Name": "c", "DurationSeconds": 99999}, {"Name": "c", "Bogus": 1}):
        code = federate(server, account, params)["Error"]["Code"]
        assert code.startswith(("MissingParameter", "InvalidParameter", "UnknownParameter")), (
            params,
            code,
        )
