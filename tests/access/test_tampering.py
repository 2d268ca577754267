"""Property: a request signed with temporary credentials, changed in one byte of anything
that is signed or checked (body, timestamp, region, action, signature, token), never succeeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testkit import clients, world
from testkit.server import Account, Server, free_port

from tests.support.access import sts

ACTIONS: dict[str, Any] = {
    "DescribeSnapshots": st.fixed_dictionaries({"Limit": st.integers(1, 100)}),
    "DescribeInstances": st.fixed_dictionaries({"Offset": st.integers(0, 50)}),
    "DescribeZones": st.fixed_dictionaries(
        {}, optional={"Order": st.sampled_from(["ASC", "DESC"])}
    ),
    "DescribeGeneralResourceQuotas": st.fixed_dictionaries(
        {
            "ResourceNames": st.lists(
                st.sampled_from(["SNAPSHOT", "GENERAL_BUNDLE_INSTANCE"]),
                min_size=1,
                max_size=2,
                unique=True,
            )
        }
    ),
}
FIELDS = ("body", "X-TC-Timestamp", "X-TC-Region", "X-TC-Action", "signature", "X-TC-Token")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Account, str]]:
    server = Server(
        tmp_path_factory.mktemp("tamper") / "data",
        free_port(),
        ("--no-rate-limit", "--transition-seconds", "0"),
    )
    server.start()
    root = world.new_account(server, "tamper")
    creds = sts(server, root, Path(tmp_path_factory.mktemp("sts")))
    temporary = Account(
        root.name, root.uin, root.app_id, creds["TmpSecretId"], creds["TmpSecretKey"]
    )
    yield server, temporary, creds["Token"]
    server.stop()


@st.composite
def tampered(draw: st.DrawFn) -> dict[str, Any]:
    action = draw(st.sampled_from(sorted(ACTIONS)))
    return {
        "action": action,
        "params": draw(ACTIONS[action]),
        "region": draw(st.sampled_from(["ap-guangzhou", "ap-shanghai", "na-ashburn"])),
        "field": draw(st.sampled_from(FIELDS)),
        "position": draw(st.integers(0, 10_000)),
        "byte": draw(st.one_of(st.integers(0x21, 0x7E), st.integers(0x80, 0xFF))),
    }


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=tampered())
def test_one_changed_byte_never_succeeds(
    session: tuple[Server, Account, str], case: dict[str, Any]
) -> None:
    server, temporary, token = session
    body = json.dumps(case["params"]).encode()
    headers = clients.tc3_headers(
        temporary, server.endpoint, case["action"], body, region=case["region"]
    )
    headers["X-TC-Token"] = token
    with httpx.Client(base_url=server.url, timeout=30) as http:
        valid = http.post("/", content=body, headers=headers).json()["Response"]
        assert "Error" not in valid, valid

        field = case["field"]
        if field == "body":
            position = case["position"] % len(body)
            changed = bytearray(body)
            changed[position] = case["byte"] if case["byte"] != body[position] else 0x00
            body = bytes(changed)
        else:
            name = "Authorization" if field == "signature" else field
            text = headers[name]
            start = text.rindex("Signature=") + len("Signature=") if field == "signature" else 0
            position = start + case["position"] % (len(text) - start)
            byte = case["byte"] if case["byte"] != ord(text[position]) else 0xE9
            headers[name] = text[:position] + chr(byte) + text[position + 1 :]
        wire = {k.encode(): v.encode("latin-1") for k, v in headers.items()}  # bytes as sent
        answer = http.post("/", content=body, headers=wire)
    assert answer.headers["content-type"] == "application/json"
    response = answer.json()["Response"]
    assert "Error" in response, (field, response)
    assert response["Error"]["Code"] != "InternalError"
