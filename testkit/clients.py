"""Official-SDK clients and SDK-signed raw requests for the tests.

Raw requests are signed with the SDK's own ``Sign`` helpers, so the tests never share the
server's signature code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.sign import Sign
from tencentcloud.lighthouse.v20200324 import lighthouse_client

from testkit.server import Account

VERSION = "2020-03-24"


def profile(
    endpoint: str,
    sign_method: str = "TC3-HMAC-SHA256",
    method: str = "POST",
    language: str = "en-US",
) -> ClientProfile:
    http = HttpProfile(protocol="http", endpoint=endpoint, reqMethod=method, reqTimeout=30)
    return ClientProfile(signMethod=sign_method, httpProfile=http, language=language)


def lighthouse(
    endpoint: str, account: Account, region: str | None = "ap-guangzhou", **options: str
) -> lighthouse_client.LighthouseClient:
    cred = credential.Credential(account.secret_id, account.secret_key)
    return lighthouse_client.LighthouseClient(cred, region, profile(endpoint, **options))


def common(
    endpoint: str,
    account: Account,
    region: str | None = "ap-guangzhou",
    version: str = VERSION,
    **options: str,
) -> CommonClient:
    cred = credential.Credential(account.secret_id, account.secret_key)
    return CommonClient("lighthouse", version, cred, region, profile(endpoint, **options))


def tccli(
    endpoint_url: str, account: Account, home: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the real tccli against the server, with HOME pointed away from the user's."""
    command = [
        str(Path(sys.executable).with_name("tccli")),
        "lighthouse",
        *args,
        "--endpoint",
        endpoint_url,
        "--secretId",
        account.secret_id,
        "--secretKey",
        account.secret_key,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(home)}
    )


def tc3_headers(
    account: Account,
    host: str,
    action: str,
    body: bytes,
    region: str | None = "ap-guangzhou",
    *,
    timestamp: int | None = None,
    language: str = "en-US",
    content_type: str = "application/json",
    version: str = VERSION,
    service: str = "lighthouse",
) -> dict[str, str]:
    """Headers for a TC3 POST exactly as the SDK builds them."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    date = dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d")
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    string_to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            f"{date}/{service}/tc3_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    signature = Sign.sign_tc3(account.secret_key, date, service, string_to_sign)
    headers = {
        "Content-Type": content_type,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": version,
        "X-TC-Language": language,
        "Authorization": (
            f"TC3-HMAC-SHA256 Credential={account.secret_id}/{date}/{service}/tc3_request, "
            f"SignedHeaders=content-type;host, Signature={signature}"
        ),
    }
    if region:
        headers["X-TC-Region"] = region
    return headers


def tc3_post(
    endpoint: str, account: Account, action: str, params: dict[str, Any], **options: Any
) -> httpx.Response:
    body = json.dumps(params).encode()
    headers = tc3_headers(account, endpoint, action, body, **options)
    return httpx.post(f"http://{endpoint}/", content=body, headers=headers, timeout=30)


def v1_params(
    account: Account,
    host: str,
    action: str,
    params: dict[str, str],
    *,
    method: str = "POST",
    sign_method: str = "HmacSHA256",
    nonce: int = 12345,
    timestamp: int | None = None,
    language: str = "en-US",
) -> dict[str, str]:
    """Common parameters plus ``Signature``, as ``_build_req_with_old_signature`` makes them."""
    full = {
        **params,
        "Action": action,
        "Nonce": str(nonce),
        "Timestamp": str(int(time.time()) if timestamp is None else timestamp),
        "Version": VERSION,
        "Region": "ap-guangzhou",
        "SecretId": account.secret_id,
        "SignatureMethod": sign_method,
        "Language": language,
    }
    return v1_signed(account, host, full, method=method, sign_method=sign_method)


def v1_signed(
    account: Account,
    host: str,
    params: dict[str, str],
    *,
    method: str = "POST",
    sign_method: str = "HmacSHA256",
) -> dict[str, str]:
    """``params`` (common ones included, any values) plus their ``Signature``."""
    full = {k: v for k, v in params.items() if k != "Signature"}
    text = "&".join(f"{k}={full[k]}" for k in sorted(full))
    full["Signature"] = Sign.sign(account.secret_key, f"{method}{host}/?{text}", sign_method)
    return full


def v1_post(
    endpoint: str, account: Account, action: str, params: dict[str, str], **options: Any
) -> httpx.Response:
    body = urllib.parse.urlencode(v1_params(account, endpoint, action, params, **options))
    return httpx.post(
        f"http://{endpoint}/",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
