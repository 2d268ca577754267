"""Every common API 3.0 error, produced by a real cause and asserted by exact Code and message."""

from __future__ import annotations

import time
import urllib.parse
import uuid
from typing import Any

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import clients
from testkit.server import Account, Server


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()["Response"]
    assert uuid.UUID(body["RequestId"]).version == 4
    return dict(body["Error"])


def sdk_error(call: Any) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    assert uuid.UUID(info.value.requestId).version == 4
    return info.value


def test_signature_expire(server: Server, account: Account) -> None:
    stale = int(time.time()) - 301
    error = error_of(
        clients.tc3_post(server.endpoint, account, "DescribeRegions", {}, timestamp=stale)
    )
    assert error == {
        "Code": "AuthFailure.SignatureExpire",
        "Message": "The signature is expired, please request again.",
    }


def test_signature_expire_in_chinese(server: Server, account: Account) -> None:
    future = int(time.time()) + 400
    error = error_of(
        clients.tc3_post(
            server.endpoint, account, "DescribeRegions", {}, timestamp=future, language="zh-CN"
        )
    )
    assert error == {"Code": "AuthFailure.SignatureExpire", "Message": "签名过期，请重新请求。"}


def test_signature_failure_with_wrong_key(server: Server, account: Account) -> None:
    wrong = Account(account.name, account.uin, account.app_id, account.secret_id, "x" * 32)
    client = clients.lighthouse(server.endpoint, wrong)
    error = sdk_error(lambda: client.DescribeRegions(models.DescribeRegionsRequest()))
    assert error.code == "AuthFailure.SignatureFailure"
    assert error.message == (
        "The provided credentials could not be validated. Please check your signature is correct."
    )


def test_signature_failure_when_body_changes_after_signing(
    server: Server, account: Account
) -> None:
    headers = clients.tc3_headers(account, server.endpoint, "DescribeZones", b"{}")
    reply = httpx.post(f"{server.url}/", content=b'{"Order":"DESC"}', headers=headers)
    assert error_of(reply)["Code"] == "AuthFailure.SignatureFailure"


def test_secret_id_not_found(server: Server, account: Account) -> None:
    stranger = Account("x", "1", 1, "AKID" + "0" * 32, "k" * 32)
    error = sdk_error(
        lambda: clients.lighthouse(server.endpoint, stranger).DescribeRegions(
            models.DescribeRegionsRequest()
        )
    )
    assert error.code == "AuthFailure.SecretIdNotFound"
    assert error.message == (
        "The SecretId is not found, please ensure that your SecretId is correct."
    )


def test_secret_id_not_found_in_chinese(server: Server) -> None:
    stranger = Account("x", "1", 1, "AKID" + "1" * 32, "k" * 32)
    client = clients.lighthouse(server.endpoint, stranger, language="zh-CN")
    error = sdk_error(lambda: client.DescribeRegions(models.DescribeRegionsRequest()))
    assert (error.code, error.message) == (
        "AuthFailure.SecretIdNotFound",
        "SecretId不存在，请输入正确的密钥。",
    )


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "TC3-HMAC-SHA256 Credential=AKIDx/2026-01-01/lighthouse, SignedHeaders=content-type;host"
        ", Signature=00",
        "TC3-HMAC-SHA256 Credential=AKIDx/2026-01-01/lighthouse/tc3_request, SignedHeaders=host"
        ", Signature=00",
        "TC3-HMAC-SHA256 garbage",
    ],
)
def test_invalid_authorization(server: Server, account: Account, authorization: str) -> None:
    headers = clients.tc3_headers(account, server.endpoint, "DescribeRegions", b"{}")
    headers["Authorization"] = authorization
    error = error_of(httpx.post(f"{server.url}/", content=b"{}", headers=headers))
    assert error["Code"] == "AuthFailure.InvalidAuthorization"
    assert error["Message"].startswith("Authorization in the request header is invalid: ")


def test_missing_action(server: Server, account: Account) -> None:
    headers = clients.tc3_headers(account, server.endpoint, "DescribeRegions", b"{}")
    del headers["X-TC-Action"]
    error = error_of(httpx.post(f"{server.url}/", content=b"{}", headers=headers))
    assert error == {
        "Code": "MissingParameter",
        "Message": "The request is missing a required parameter `Action`.",
    }


def test_missing_timestamp_in_chinese(server: Server, account: Account) -> None:
    headers = clients.tc3_headers(
        account, server.endpoint, "DescribeRegions", b"{}", language="zh-CN"
    )
    del headers["X-TC-Timestamp"]
    error = error_of(httpx.post(f"{server.url}/", content=b"{}", headers=headers))
    assert error == {"Code": "MissingParameter", "Message": "缺少必要参数`Timestamp`。"}


def test_missing_region(server: Server, account: Account) -> None:
    client = clients.lighthouse(server.endpoint, account, region="")
    error = sdk_error(lambda: client.DescribeZones(models.DescribeZonesRequest()))
    assert (error.code, error.message) == (
        "MissingParameter",
        "The request is missing a required parameter `Region`.",
    )


def test_region_is_optional_for_describe_regions(server: Server, account: Account) -> None:
    client = clients.lighthouse(server.endpoint, account, region="")
    assert client.DescribeRegions(models.DescribeRegionsRequest()).TotalCount == 15


def test_invalid_action(server: Server, account: Account) -> None:
    client = clients.common(server.endpoint, account)
    error = sdk_error(lambda: client.call_json("DescribeUnicorns", {}))
    assert (error.code, error.message) == (
        "InvalidAction",
        "The request `Action` is invalid or not found.",
    )


def test_no_such_version(server: Server, account: Account) -> None:
    client = clients.common(server.endpoint, account, version="2017-03-12")
    error = sdk_error(lambda: client.call_json("DescribeRegions", {}))
    assert error.code == "NoSuchVersion"
    assert "`2017-03-12`" in error.message and "`DescribeRegions`" in error.message


def test_unsupported_region(server: Server, account: Account) -> None:
    client = clients.lighthouse(server.endpoint, account, region="mars-north-1")
    error = sdk_error(lambda: client.DescribeZones(models.DescribeZonesRequest()))
    assert (error.code, error.message) == (
        "UnsupportedRegion",
        "The `DescribeZones` action does not support the region `mars-north-1`.",
    )


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_unsupported_protocol(server: Server, method: str) -> None:
    error = error_of(httpx.request(method, f"{server.url}/", content=b"{}"))
    assert error["Code"] == "UnsupportedProtocol"
    assert f"`{method}`" in error["Message"]


def test_get_over_32_kb_is_too_large(server: Server) -> None:
    query = urllib.parse.urlencode({"Action": "DescribeRegions", "Pad": "x" * 33000})
    error = error_of(httpx.get(f"{server.url}/?{query}"))
    assert error["Code"] == "RequestSizeLimitExceeded"


def test_v1_post_over_1_mb_is_too_large(server: Server) -> None:
    body = b"Action=DescribeRegions&Pad=" + b"x" * (1024 * 1024)
    reply = httpx.post(
        f"{server.url}/",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert error_of(reply)["Code"] == "RequestSizeLimitExceeded"


def test_v3_post_may_exceed_1_mb_but_not_10_mb(server: Server, account: Account) -> None:
    medium = clients.tc3_post(
        server.endpoint, account, "DescribeRegions", {"Pad": "x" * (2 * 1024 * 1024)}
    )
    assert error_of(medium)["Code"] == "UnknownParameter"  # read, verified, then validated
    huge = b'{"Pad": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    headers = clients.tc3_headers(account, server.endpoint, "DescribeRegions", huge)
    error = error_of(httpx.post(f"{server.url}/", content=huge, headers=headers, timeout=60))
    assert error["Code"] == "RequestSizeLimitExceeded"


def test_unknown_parameter(server: Server, account: Account) -> None:
    client = clients.common(server.endpoint, account)
    error = sdk_error(lambda: client.call_json("DescribeRegions", {"InCharge": 1}))
    assert (error.code, error.message) == (
        "UnknownParameter",
        "The parameter `InCharge` is not recognized.",
    )


def test_unknown_parameter_in_chinese(server: Server, account: Account) -> None:
    client = clients.common(server.endpoint, account, language="zh-CN")
    error = sdk_error(lambda: client.call_json("DescribeZones", {"Colour": "red"}))
    assert (error.code, error.message) == ("UnknownParameter", "参数`Colour`未定义。")


def test_invalid_parameter_type(server: Server, account: Account) -> None:
    client = clients.common(server.endpoint, account)
    error = sdk_error(lambda: client.call_json("DescribeZones", {"Order": 5}))
    assert (error.code, error.message) == ("InvalidParameter", "Parameter `Order` type error.")


def test_invalid_parameter_value(server: Server, account: Account) -> None:
    client = clients.common(server.endpoint, account)
    error = sdk_error(lambda: client.call_json("DescribeZones", {"Order": "SIDEWAYS"}))
    assert (error.code, error.message) == (
        "InvalidParameterValue",
        "Invalid value `SIDEWAYS` for parameter `Order`.",
    )


def test_v1_nonce_must_be_an_integer(server: Server, account: Account) -> None:
    params = clients.v1_params(account, server.endpoint, "DescribeRegions", {})
    params["Nonce"] = "abc"
    reply = httpx.post(
        f"{server.url}/",
        content=urllib.parse.urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert error_of(reply) == {
        "Code": "InvalidParameter",
        "Message": "Parameter `Nonce` type error.",
    }


def test_v1_exact_replay_is_rejected(server: Server, account: Account) -> None:
    params = clients.v1_params(
        account, server.endpoint, "DescribeRegions", {}, nonce=int(time.time() * 1000) + 7
    )
    body = urllib.parse.urlencode(params)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    first = httpx.post(f"{server.url}/", content=body, headers=headers)
    assert first.json()["Response"]["TotalCount"] == 15
    error = error_of(httpx.post(f"{server.url}/", content=body, headers=headers))
    assert error["Code"] == "AuthFailure.SignatureFailure"
    assert "Nonce" in error["Message"]


def test_disabled_key_is_not_found_and_enabling_restores_it(server: Server) -> None:
    bob = server.create_account("bob-keys")
    client = clients.lighthouse(server.endpoint, bob)
    assert client.DescribeRegions(models.DescribeRegionsRequest()).TotalCount == 15
    server.admin("key", "disable", bob.secret_id, "--account", "bob-keys")
    error = sdk_error(lambda: client.DescribeRegions(models.DescribeRegionsRequest()))
    assert error.code == "AuthFailure.SecretIdNotFound"
    server.admin("key", "enable", bob.secret_id, "--account", "bob-keys")
    assert client.DescribeRegions(models.DescribeRegionsRequest()).TotalCount == 15
