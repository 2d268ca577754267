"""Per-second rate limits: counted per action, region and principal, in one-second windows.

A burst only proves something if it fits in one second of the server's clock (the same clock
as ours), so every burst starts right after a second begins and is retried when it straddled
a boundary.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from testkit import clients, world
from testkit.server import Account, Server

Request = tuple[Account, str, str | None, str]  # who, action, region, language


def limit_message(count: int, limit: int) -> str:
    return (
        f"Your current request times equals to `{count}` in a second, which exceeds the "
        f"frequency limit `{limit}` for a second. Please reduce the frequency of calls."
    )


def banner_account(server: Server) -> Account:
    """The ``default`` account printed once by the first start."""
    log = server.log()
    found = re.search(r"Account (\S+) \(Uin (\d+), AppId (\d+)\)", log)
    secret_id = re.search(r"SecretId  (\S+)", log)
    secret_key = re.search(r"SecretKey (\S+)", log)
    assert found and secret_id and secret_key, log
    return Account(found[1], found[2], int(found[3]), secret_id[1], secret_key[1])


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:  # one keep-alive connection for a burst
        yield client


def send(
    http: httpx.Client, server: Server, requests: list[Request], body: bytes = b"{}"
) -> list[dict[str, Any]]:
    answers = []
    for account, action, region, language in requests:
        headers = clients.tc3_headers(
            account, server.endpoint, action, body, region=region, language=language
        )
        reply = http.post(f"{server.url}/", content=body, headers=headers)
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        answers.append(reply.json()["Response"])
    return answers


def in_one_second(burst: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run ``burst`` at the start of a fresh second; retry if it did not end in that second."""
    for _ in range(3):
        fresh = int(time.time()) + 1  # never the second of an earlier burst
        while (now := time.time()) < fresh:
            time.sleep(fresh - now)
        started = time.time()
        if started - fresh >= 0.1:  # slept too long: this second is not fresh enough
            continue
        answers = burst()
        if int(time.time()) == int(started):
            return answers
    pytest.fail("three bursts in a row straddled a second boundary")


def codes(answers: list[dict[str, Any]]) -> list[str]:
    return [a["Error"]["Code"] if "Error" in a else "OK" for a in answers]


def test_configured_limit_counts_per_action_region_and_principal(
    make_server: Callable[..., Server], tmp_path: Path, http: httpx.Client
) -> None:
    config = tmp_path / "limits.toml"
    config.write_text("rate_limits = {DescribeRegions = 5}\n")
    srv = make_server("--config", str(config))
    alice = banner_account(srv)
    bob = srv.create_account("bob")
    gz = "ap-guangzhou"
    requests: list[Request] = [(alice, "DescribeRegions", gz, "en-US")] * 7 + [
        (alice, "DescribeRegions", gz, "zh-CN"),
        (alice, "DescribeZones", gz, "en-US"),  # another action
        (alice, "DescribeRegions", "ap-beijing", "en-US"),  # another region
        (alice, "DescribeRegions", None, "en-US"),  # no region is a region of its own
        (bob, "DescribeRegions", gz, "en-US"),  # another principal
    ]
    answers = in_one_second(lambda: send(http, srv, requests))

    assert codes(answers) == ["OK"] * 5 + ["RequestLimitExceeded"] * 3 + ["OK"] * 4
    assert [a["Error"]["Message"] for a in answers[5:8]] == [
        limit_message(6, 5),
        limit_message(7, 5),
        "您当前每秒请求次数为`8`，超过了每秒频率上限`5`，请降低调用频率。",
    ]
    assert answers[5]["Error"]["Message"] == (
        "Your current request times equals to `6` in a second, which exceeds the frequency "
        "limit `5` for a second. Please reduce the frequency of calls."
    )
    assert all(a["TotalCount"] == 15 for a in answers[:5])
    assert answers[8]["TotalCount"] == 4
    assert len({a["RequestId"] for a in answers}) == len(answers)

    # The next second starts a new window.
    again = in_one_second(lambda: send(http, srv, [(alice, "DescribeRegions", gz, "en-US")] * 5))
    assert codes(again) == ["OK"] * 5


def test_default_limit_for_describe_regions_is_10(server: Server, http: httpx.Client) -> None:
    carol = server.create_account("rate-limit-default")
    answers = in_one_second(
        lambda: send(http, server, [(carol, "DescribeRegions", "ap-guangzhou", "en-US")] * 12)
    )
    assert codes(answers) == ["OK"] * 10 + ["RequestLimitExceeded"] * 2
    assert [a["Error"]["Message"] for a in answers[10:]] == [
        limit_message(11, 10),
        limit_message(12, 10),
    ]


def test_no_rate_limit_flag(make_server: Callable[..., Server], http: httpx.Client) -> None:
    srv = make_server("--no-rate-limit")
    alice = banner_account(srv)
    answers = in_one_second(
        lambda: send(http, srv, [(alice, "DescribeRegions", "ap-guangzhou", "en-US")] * 30)
    )
    assert codes(answers) == ["OK"] * 30


def test_rate_limit_environment_variable_off(
    make_server: Callable[..., Server], http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # click reads a boolean flag's variable with its BOOL type: off/0/false/no/n/f disable it.
    monkeypatch.setenv("LIGHTKEEPER_RATE_LIMIT", "off")
    srv = make_server()
    alice = banner_account(srv)
    answers = in_one_second(
        lambda: send(http, srv, [(alice, "DescribeZones", "ap-guangzhou", "en-US")] * 30)
    )
    assert codes(answers) == ["OK"] * 30


def test_toml_rate_limit_false_is_overridden_by_the_flag(
    make_server: Callable[..., Server], tmp_path: Path, http: httpx.Client
) -> None:
    config = tmp_path / "off.toml"
    config.write_text("rate_limit = false\n")
    srv = make_server("--config", str(config), "--rate-limit")
    alice = banner_account(srv)
    answers = in_one_second(
        lambda: send(http, srv, [(alice, "DescribeRegions", "ap-guangzhou", "en-US")] * 11)
    )
    assert codes(answers) == ["OK"] * 10 + ["RequestLimitExceeded"]


def test_a_call_without_region_counts_in_its_instances_region(
    make_server: Callable[..., Server], tmp_path: Path, http: httpx.Client
) -> None:
    """Regression (issue #11, 4): a region-less CreateInstanceSnapshot had a bucket of its own
    (the "" region), worth another full limit per second. It now counts in the bucket of the
    region of the instance it names; only a call whose instance cannot be found (which can
    do nothing but fail) still counts in the no-region bucket."""
    config = tmp_path / "limits.toml"
    config.write_text("rate_limits = {CreateInstanceSnapshot = 3}\n")
    srv = make_server("--config", str(config))
    alice = banner_account(srv)
    instance_id = world.create_instance(srv, alice)["InstanceId"]
    body = json.dumps({"InstanceId": instance_id}).encode()
    create = "CreateInstanceSnapshot"
    requests: list[Request] = [(alice, create, "ap-guangzhou", "en-US")] * 3 + [
        (alice, create, None, "en-US"),  # the instance's region: over the limit
        (alice, create, None, "en-US"),
        (alice, create, "ap-shanghai", "en-US"),  # another region: its own bucket
    ]
    answers = in_one_second(lambda: send(http, srv, requests, body))
    assert codes(answers)[3:] == [
        "RequestLimitExceeded",
        "RequestLimitExceeded",
        "ResourceNotFound.InstanceIdNotFound",
    ]
    assert "RequestLimitExceeded" not in codes(answers)[:3]
