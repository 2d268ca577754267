"""The control API over HTTP: never on by default, refused without its token, clear errors
for bad requests, and the same Settings in flag, variable and TOML file."""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import httpx
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server

TOKEN = "t0ken-for-the-control-api-tests"


def control(server: Server, method: str, path: str, token: str | None = TOKEN, **kw: object):
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return httpx.request(method, f"{server.url}/lightkeeper-api{path}", headers=headers, **kw)  # type: ignore[arg-type]


def count_instances(server: Server, account: Account) -> int:
    c = world.client(server, account)
    return int(c.DescribeInstances(models.DescribeInstancesRequest()).TotalCount)


def test_off_by_default_the_path_is_just_the_api(make_server: Callable[..., Server]) -> None:
    server = make_server("--transition-seconds", "0")
    account = world.new_account(server, "plain")
    world.create_instance(server, account)
    reply = control(server, "POST", "/reset")
    assert reply.status_code == 200
    assert "Error" in reply.json()["Response"]  # an API 3.0 refusal, nothing reset
    assert count_instances(server, account) == 1


def test_refused_without_the_token_and_bad_requests_are_400(
    make_server: Callable[..., Server],
) -> None:
    server = make_server("--control-api", "--control-token", TOKEN)
    account = world.new_account(server, "kept")
    world.create_instance(server, account)
    for token in (None, "wrong-token-wrong-token", TOKEN + "x"):
        reply = control(server, "POST", "/reset", token=token)
        assert reply.status_code == 401, token
    assert count_instances(server, account) == 1  # untouched

    bad = [
        ("POST", "/faults", {"content": b"{not json"}),
        ("POST", "/faults", {"json": {"Action": "DescribeInstances", "Code": "NoSuchCode"}}),
        ("POST", "/faults", {"json": {"Action": "DescribeInstances", "Count": 0}}),
        ("POST", "/timing", {"json": {"OperationSeconds": -1}}),
        ("POST", "/timing", {"json": {"Manual": "yes"}}),
        ("POST", "/advance", {"json": {"SnapshotId": "lhsnap-00000000", "Percent": 50}}),
        ("POST", "/seed", {"json": {"Seed": "forty-two"}}),
        ("POST", "/state", {"json": {"Version": 99}}),
        ("POST", "/instances", {"json": {"Account": "nobody", "Region": "ap-guangzhou"}}),
    ]
    for method, path, kwargs in bad:
        reply = control(server, method, path, **kwargs)
        assert reply.status_code == 400, (path, kwargs, reply.text)
        assert reply.json()["Error"] and "Traceback" not in reply.text
    assert control(server, "GET", "/nowhere").status_code == 404

    reset = control(server, "POST", "/reset")
    assert reset.status_code == 200 and reset.json()["Instances"] == 1
    assert control(server, "GET", "/faults").json() == {"Faults": []}


def test_the_token_is_printed_at_start_and_the_settings_come_from_toml_too(
    make_server: Callable[..., Server], tmp_path: os.PathLike[str]
) -> None:
    server = make_server("--control-api")  # no token given: one is made and printed
    match = re.search(r"Authorization: Bearer (\S+)\)", server.log())
    assert match, server.log()[-2000:]
    assert control(server, "GET", "/timing", token=match.group(1)).status_code == 200

    config = f"{tmp_path}/lightkeeper.toml"
    with open(config, "w") as handle:
        handle.write(f'control_api = true\ncontrol_token = "{TOKEN}"\n')
    from_toml = make_server("--config", config)
    assert control(from_toml, "GET", "/timing").json()["OperationSeconds"] == 0
