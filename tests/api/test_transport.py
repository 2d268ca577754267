"""The official SDK and tccli reach the server with every sign method and transport."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import clients
from testkit.server import Account, Server

MODES = [
    ("TC3-HMAC-SHA256", "POST"),
    ("TC3-HMAC-SHA256", "GET"),
    ("HmacSHA256", "GET"),
    ("HmacSHA256", "POST"),
    ("HmacSHA1", "POST"),
    ("HmacSHA1", "GET"),
]


@pytest.mark.parametrize(("sign_method", "method"), MODES)
def test_describe_regions_and_zones_with_every_sign_method(
    server: Server, sign_method: str, method: str
) -> None:
    account = server.create_account(f"signer-{sign_method}-{method}")
    client = clients.lighthouse(server.endpoint, account, sign_method=sign_method, method=method)
    regions = client.DescribeRegions(models.DescribeRegionsRequest())
    assert regions.TotalCount == 15 == len(regions.RegionSet)
    by_code = {r.Region: r for r in regions.RegionSet}
    assert by_code["ap-guangzhou"].RegionName == "Guangzhou"
    assert by_code["ap-guangzhou"].IsChinaMainland is True
    assert by_code["ap-singapore"].IsChinaMainland is False
    assert {r.RegionState for r in regions.RegionSet} == {"AVAILABLE"}
    assert uuid.UUID(regions.RequestId).version == 4

    zones = client.DescribeZones(models.DescribeZonesRequest())
    assert [z.Zone for z in zones.ZoneInfoSet] == [
        "ap-guangzhou-3",
        "ap-guangzhou-4",
        "ap-guangzhou-6",
        "ap-guangzhou-7",
    ]
    assert zones.TotalCount == 4
    assert zones.ZoneInfoSet[0].ZoneName == "Guangzhou Zone 3"


def test_zones_follow_order_and_language(server: Server, account: Account) -> None:
    client = clients.lighthouse(server.endpoint, account, region="ap-beijing", language="zh-CN")
    request = models.DescribeZonesRequest()
    request.Order = "DESC"
    zones = client.DescribeZones(request)
    assert [z.Zone for z in zones.ZoneInfoSet] == [
        "ap-beijing-7",
        "ap-beijing-6",
        "ap-beijing-5",
        "ap-beijing-3",
    ]
    assert zones.ZoneInfoSet[-1].ZoneName == "北京三区"


def test_region_names_follow_language(server: Server, account: Account) -> None:
    client = clients.lighthouse(server.endpoint, account, language="zh-CN")
    regions = client.DescribeRegions(models.DescribeRegionsRequest())
    assert {r.Region: r.RegionName for r in regions.RegionSet}["ap-hongkong"] == "中国香港"


def test_unsigned_payload_is_accepted(server: Server, account: Account) -> None:
    client = clients.lighthouse(server.endpoint, account)
    client.profile.unsignedPayload = True
    assert client.DescribeRegions(models.DescribeRegionsRequest()).TotalCount == 15


def test_response_content_type_is_exactly_application_json(
    server: Server, account: Account
) -> None:
    ok = clients.tc3_post(server.endpoint, account, "DescribeRegions", {})
    bad = clients.tc3_post(server.endpoint, account, "NoSuchAction", {})
    for response in (ok, bad):
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
    assert "Error" not in ok.json()["Response"]
    assert bad.json()["Response"]["Error"]["Code"] == "InvalidAction"


def _tccli(
    server: Server, account: Account, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return clients.tccli(server.url, account, tmp_path, *args)


def test_tccli_describe_regions(server: Server, account: Account, tmp_path: Path) -> None:
    """tccli signs ``Host: http://127.0.0.1:PORT`` (scheme included); it must verify."""
    result = _tccli(server, account, tmp_path, "DescribeRegions", "--region", "ap-guangzhou")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["TotalCount"] == 15
    assert "ap-guangzhou" in {r["Region"] for r in data["RegionSet"]}


def test_tccli_reports_api_errors(server: Server, account: Account, tmp_path: Path) -> None:
    result = _tccli(
        server, account, tmp_path, "DescribeZones", "--region", "xx-nowhere", "--language", "en-US"
    )
    assert result.returncode == 255
    assert "code:UnsupportedRegion" in result.stderr


def test_keep_alive_connection_serves_many_requests(server: Server, account: Account) -> None:
    with httpx.Client() as http:
        for _ in range(5):
            body = b"{}"
            headers = clients.tc3_headers(account, server.endpoint, "DescribeRegions", body)
            reply = http.post(f"{server.url}/", content=body, headers=headers)
            assert reply.json()["Response"]["TotalCount"] == 15
