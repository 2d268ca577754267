"""Running the server: start-up time, file modes, the banner, signals, metrics, logs and
what an unexpected failure looks like from both sides."""

from __future__ import annotations

import re
import signal
import sqlite3
import stat
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import clients
from testkit.server import Account, Server, access_lines

from tests.support.access import allow, policy, sts, sub_user, token_client


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def stop_within(srv: Server, sig: int, seconds: float) -> int:
    started = time.monotonic()
    code = srv.stop(sig, timeout=seconds)
    assert time.monotonic() - started < seconds
    return code


def test_fresh_data_dir_start_banner_and_signals(make_server: Callable[..., Server]) -> None:
    # From process start to a 200 on /healthz, on an empty data dir (how fast: bench/, never
    # a threshold here, where a busy machine makes it flaky).
    srv = make_server(start=False)
    assert not srv.data_dir.exists()
    srv.start()

    assert mode(srv.data_dir) == 0o700
    database = srv.data_dir / "lightkeeper.db"
    assert mode(database) == 0o600
    for companion in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        if companion.exists():
            assert mode(companion) == 0o600

    first_log = srv.log()
    keys = re.findall(r"SecretKey (\S+)", first_log)
    assert len(keys) == 1
    secret_key = keys[0]
    assert first_log.count("Lightkeeper is listening on") == 1
    assert 'credential.Credential("' in first_log and f'"{secret_key}")' in first_log
    assert stop_within(srv, signal.SIGTERM, 5.0) == 0

    srv.start()
    second_log = srv.log()[len(first_log) :]
    assert "Uvicorn running" in second_log  # this really is the second start's output
    assert "SecretKey" not in second_log and secret_key not in second_log
    assert stop_within(srv, signal.SIGINT, 5.0) == 0
    assert "Aborted" not in srv.log() and "Traceback" not in srv.log()


def test_metrics_and_access_log(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    user = srv.create_account("metered")
    ok = clients.tc3_post(srv.endpoint, user, "DescribeRegions", {}).json()["Response"]
    bad_region = clients.tc3_post(
        srv.endpoint, user, "DescribeZones", {}, region="mars-north-1"
    ).json()["Response"]
    unknown = clients.tc3_post(srv.endpoint, user, "DescribeUnicorns", {}).json()["Response"]
    garbage = httpx.post(
        f"{srv.url}/", content=b"[1]", headers={"Content-Type": "application/json"}
    ).json()["Response"]
    assert "Error" not in ok
    assert bad_region["Error"]["Code"] == "UnsupportedRegion"
    assert unknown["Error"]["Code"] == "InvalidAction"
    assert garbage["Error"]["Code"] == "InvalidParameter"

    metrics = httpx.get(f"{srv.url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'lightkeeper_requests_total{action="DescribeRegions",code=""} 1.0' in text
    assert 'lightkeeper_requests_total{action="DescribeZones",code="UnsupportedRegion"} 1.0' in text
    # Unknown actions share one label value, so clients cannot grow the label set.
    assert 'lightkeeper_requests_total{action="-",code="InvalidAction"} 1.0' in text
    assert 'lightkeeper_requests_total{action="-",code="InvalidParameter"} 1.0' in text
    assert "DescribeUnicorns" not in text
    assert 'lightkeeper_request_seconds_bucket{action="DescribeRegions",le="+Inf"} 1.0' in text
    assert 'lightkeeper_request_seconds_count{action="DescribeZones"} 1.0' in text
    assert re.search(r'lightkeeper_request_seconds_sum\{action="DescribeRegions"\} \d', text)
    # The node's own writes (its registration, heartbeats): each committed write counted,
    # and the real commits that held them (group commit: never more commits than writes).
    values = dict(re.findall(r"^(lightkeeper_database_\w+_total) (\S+)$", text, re.M))
    commits = float(values["lightkeeper_database_commits_total"])
    writes = float(values["lightkeeper_database_committed_writes_total"])
    assert 1 <= commits <= writes

    log = srv.log()
    assert user.secret_key not in log
    lines = access_lines(log)
    assert len(lines) == 4  # one per API request; /healthz and /metrics are not logged
    by_id = {line["request_id"]: line for line in lines}
    expected = {
        ok["RequestId"]: ("DescribeRegions", "ap-guangzhou", "metered", ""),
        # signed: refused after authentication, so the account is named
        bad_region["RequestId"]: ("DescribeZones", "mars-north-1", "metered", "UnsupportedRegion"),
        unknown["RequestId"]: ("DescribeUnicorns", "ap-guangzhou", "", "InvalidAction"),
        garbage["RequestId"]: ("-", "", "", "InvalidParameter"),
    }
    assert set(by_id) == set(expected)
    for request_id, (action, region, account, code) in expected.items():
        line = by_id[request_id]
        assert (line["action"], line["region"], line["account"], line["code"]) == (
            action,
            region,
            account,
            code,
        )
        assert isinstance(line["ms"], (int, float)) and line["ms"] >= 0
        assert line["client"] == "127.0.0.1"
        assert not any("Secret" in key for key in line)


def test_access_log_names_the_principal_of_every_authenticated_request(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    """Also when the request is refused after authentication (CAM, rate limit, parameters),
    with the sub-user and the SecretId; never with a SecretKey or a token."""
    config = tmp_path / "limits.toml"
    config.write_text("rate_limits = { DescribeZones = 1 }\n")
    srv = make_server("--config", str(config))
    root = srv.create_account("logged")
    robot = sub_user(
        srv, root, "robot", policy(allow(["lighthouse:DescribeRegions"], ["*"])), tmp_path
    )
    creds = sts(srv, root, tmp_path, user="robot")
    as_robot = clients.lighthouse(srv.endpoint, robot)

    def refused(call: Callable[[], object]) -> str:
        with pytest.raises(TencentCloudSDKException) as info:
            call()
        return str(info.value.requestId)

    answered = as_robot.DescribeRegions(models.DescribeRegionsRequest()).RequestId
    by_cam = refused(lambda: as_robot.DescribeInstances(models.DescribeInstancesRequest()))
    by_session = refused(
        lambda: token_client(srv, creds).DescribeInstances(models.DescribeInstancesRequest())
    )
    invalid = clients.tc3_post(srv.endpoint, root, "DescribeInstances", {"Limit": "x"}).json()
    forged = Account(root.name, root.uin, root.app_id, root.secret_id, "x" * 32)
    unverified = refused(
        lambda: clients.lighthouse(srv.endpoint, forged).DescribeRegions(
            models.DescribeRegionsRequest()
        )
    )
    zones = clients.lighthouse(srv.endpoint, root)
    limited = ""
    for _ in range(20):  # limit 1/s: one of two calls in the same second is refused
        try:
            zones.DescribeZones(models.DescribeZonesRequest())
        except TencentCloudSDKException as error:
            limited = str(error.requestId)
            break
    assert limited

    log = srv.log()
    by_id = {line["request_id"]: line for line in access_lines(log)}
    expected = {
        answered: ("logged", "robot", robot.secret_id, ""),
        by_cam: ("logged", "robot", robot.secret_id, "UnauthorizedOperation.NoPermission"),
        by_session: ("logged", "robot", creds["TmpSecretId"], "UnauthorizedOperation.NoPermission"),
        invalid["Response"]["RequestId"]: ("logged", "", root.secret_id, "InvalidParameter"),
        limited: ("logged", "", root.secret_id, "RequestLimitExceeded"),
        unverified: ("", "", "", "AuthFailure.SignatureFailure"),
    }
    for request_id, (account, user, key, code) in expected.items():
        line = by_id[request_id]
        assert (line["account"], line["user"], line["key"], line["code"]) == (
            account,
            user,
            key,
            code,
        )
    for secret in (root.secret_key, robot.secret_key, creds["TmpSecretKey"], creds["Token"]):
        assert secret not in log


def test_unexpected_failure_is_an_internal_error(make_server: Callable[..., Server]) -> None:
    srv = make_server()
    user = srv.create_account("doomed")
    client = clients.lighthouse(srv.endpoint, user)
    assert client.DescribeRegions(models.DescribeRegionsRequest()).TotalCount == 15

    with sqlite3.connect(srv.data_dir / "lightkeeper.db") as db:
        db.execute("DROP TABLE api_keys")

    with pytest.raises(TencentCloudSDKException) as info:
        client.DescribeRegions(models.DescribeRegionsRequest())
    error = info.value
    request_id = error.requestId
    assert uuid.UUID(request_id).version == 4
    assert error.code == "InternalError"
    assert request_id in error.message
    for leak in ("sqlite", "OperationalError", "api_keys", "no such table", "Traceback", ".py"):
        assert leak not in error.message

    raw = clients.tc3_post(srv.endpoint, user, "DescribeZones", {})
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    body = raw.json()["Response"]
    assert body["Error"]["Code"] == "InternalError"
    assert body["RequestId"] in body["Error"]["Message"]
    assert b"no such table" not in raw.content and b"Traceback" not in raw.content

    log = srv.log()
    failure = log[log.index(f"internal error in request {request_id}") :]
    assert "Traceback (most recent call last)" in failure
    assert "no such table: api_keys" in failure
    internal = [line for line in access_lines(log) if line["code"] == "InternalError"]
    assert [line["request_id"] for line in internal] == [request_id, body["RequestId"]]
    assert httpx.get(f"{srv.url}/healthz").status_code == 200  # the process itself lives on
