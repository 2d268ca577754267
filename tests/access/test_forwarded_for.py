"""The client address CAM's ``qcs:ip`` sees: the TCP peer, unless the peer is a configured
trusted proxy; then the right-most untrusted ``X-Forwarded-For`` entry. An address that cannot
be parsed fails closed: ip deny conditions apply to it, ip allow conditions do not."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from testkit import clients, world
from testkit.server import Account, Server, free_port, run_cli

from tests.support.access import allow, deny, policy, sub_user

NO_PERMISSION = "UnauthorizedOperation.NoPermission"
POLICIES: dict[str, dict[str, Any]] = {
    # allowed only from 10.0.0.0/8
    "allow-10": policy(
        allow(
            ["lighthouse:DescribeRegions"], ["*"], condition={"ip_equal": {"qcs:ip": "10.0.0.0/8"}}
        )
    ),
    # allowed, except from 127.0.0.1
    "deny-local": policy(
        allow(["*"], ["*"]),
        deny(["*"], ["*"], condition={"ip_equal": {"qcs:ip": ["127.0.0.1/32"]}}),
    ),
    # allowed, except from outside 10.0.0.0/8
    "deny-outside-10": policy(
        allow(["*"], ["*"]),
        deny(["*"], ["*"], condition={"ip_not_equal": {"qcs:ip": ["10.0.0.0/8"]}}),
    ),
}


def ask(server: Server, who: Account, forwarded: str | None) -> tuple[str, str]:
    """DescribeRegions with this ``X-Forwarded-For``: (error code or "", RequestId)."""
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    try:
        reply = clients.common(server.endpoint, who).call_json("DescribeRegions", {}, headers)
    except TencentCloudSDKException as error:
        return str(error.code), str(error.requestId)
    return "", str(reply["Response"]["RequestId"])


def logged(server: Server, request_id: str) -> dict[str, Any]:
    lines = [line for line in server.access_log() if line["request_id"] == request_id]
    assert len(lines) == 1, lines
    return lines[0]


def users(server: Server, tmp: Path) -> dict[str, Account]:
    """One sub-user per policy of ``POLICIES``, named after it."""
    root = world.new_account(server, "xff")
    return {name: sub_user(server, root, name, doc, tmp) for name, doc in POLICIES.items()}


@pytest.fixture(scope="module")
def direct(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Account]:
    """The users, on the shared server (which trusts no proxy)."""
    return users(server, tmp_path_factory.mktemp("direct"))


@pytest.fixture(scope="module")
def behind_proxy(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, Account]]]:
    """A server that trusts 127.0.0.1 (the tests' own address) as its reverse proxy."""
    srv = Server(
        tmp_path_factory.mktemp("proxy") / "data",
        free_port(),
        ("--trusted-proxy", "127.0.0.1/32", "--no-rate-limit"),
    )
    srv.start()
    yield srv, users(srv, tmp_path_factory.mktemp("policies"))
    srv.stop()


@pytest.mark.parametrize(
    ("user", "forwarded"),
    [
        ("allow-10", "10.0.0.5"),  # an allow limited to 10/8 was passed with a forged address
        ("deny-local", "8.8.8.8"),  # a deny on 127.0.0.1 was escaped
        ("deny-outside-10", "10.0.0.5"),
        ("deny-outside-10", "garbage"),  # an unparsable address made the deny not apply
        ("deny-outside-10", "10.0.0.5, 127.0.0.1"),
    ],
)
def test_an_untrusted_peer_cannot_choose_its_address(
    server: Server, direct: dict[str, Account], user: str, forwarded: str
) -> None:
    code, request_id = ask(server, direct[user], forwarded)
    assert code == NO_PERMISSION
    line = logged(server, request_id)
    assert line["client"] == "127.0.0.1"
    assert "peer" not in line


@pytest.mark.parametrize(
    ("user", "forwarded", "code", "client"),
    [
        ("allow-10", "10.0.0.5", "", "10.0.0.5"),
        ("allow-10", None, NO_PERMISSION, "127.0.0.1"),  # no header: the peer itself
        # the client wrote 10.0.0.5, the proxy appended the address it really came from
        ("allow-10", "10.0.0.5, 8.8.8.8", NO_PERMISSION, "8.8.8.8"),
        # trusted hops are skipped from the right
        ("allow-10", "192.0.2.9, 10.0.0.5,127.0.0.1", "", "10.0.0.5"),
        ("allow-10", "[::ffff:10.1.2.3]:4711", "", "10.1.2.3"),
        ("allow-10", "10.0.0.5:4711", "", "10.0.0.5"),
        ("deny-local", "8.8.8.8", "", "8.8.8.8"),
        ("deny-outside-10", "10.0.0.5", "", "10.0.0.5"),
        ("deny-outside-10", "8.8.8.8", NO_PERMISSION, "8.8.8.8"),
        # unparsable: no allow condition holds, every deny condition does
        ("allow-10", "garbage", NO_PERMISSION, "unknown"),
        ("deny-local", "garbage", NO_PERMISSION, "unknown"),
        ("deny-outside-10", "garbage", NO_PERMISSION, "unknown"),
        ("deny-outside-10", "10.0.0.5, 10.0.0.300", NO_PERMISSION, "unknown"),
    ],
)
def test_a_trusted_proxy_names_the_client(
    behind_proxy: tuple[Server, dict[str, Account]],
    user: str,
    forwarded: str | None,
    code: str,
    client: str,
) -> None:
    srv, by_policy = behind_proxy
    answer, request_id = ask(srv, by_policy[user], forwarded)
    assert answer == code
    line = logged(srv, request_id)
    assert line["client"] == client
    assert line.get("peer", "127.0.0.1") == "127.0.0.1"


def test_several_forwarded_for_headers_are_one_list(
    behind_proxy: tuple[Server, dict[str, Account]],
) -> None:
    """Header fields of one name are one comma-joined list (RFC 9110 §5.3), so a second
    ``X-Forwarded-For`` line cannot replace what the proxy appended in the first."""
    srv, by_policy = behind_proxy
    headers = clients.tc3_headers(by_policy["allow-10"], srv.endpoint, "DescribeRegions", b"{}")
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw += [(b"X-Forwarded-For", b"10.0.0.5"), (b"X-Forwarded-For", b"8.8.8.8")]
    reply = httpx.post(f"{srv.url}/", content=b"{}", headers=raw, timeout=30).json()["Response"]
    assert reply["Error"]["Code"] == NO_PERMISSION  # 10.0.0.5 alone would be allowed
    assert logged(srv, reply["RequestId"])["client"] == "8.8.8.8"


@pytest.mark.parametrize("source", ["flag", "env", "toml"])
def test_trusted_proxies_come_from_every_config_source(
    make_server: Callable[..., Server],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
) -> None:
    args: tuple[str, ...] = ()
    if source == "flag":
        args = ("--trusted-proxy", "192.0.2.1", "--trusted-proxy", "127.0.0.1")
    elif source == "env":
        monkeypatch.setenv("LIGHTKEEPER_TRUSTED_PROXY", "192.0.2.1, 127.0.0.0/8 ::1")
    else:
        config = tmp_path / "lightkeeper.toml"
        config.write_text('trusted_proxy = ["192.0.2.1", "127.0.0.0/8"]\n')
        args = ("--config", str(config))
    srv = make_server(*args)
    root = world.new_account(srv, "xff")
    code, request_id = ask(srv, root, "203.0.113.7")
    assert code == ""
    assert logged(srv, request_id)["client"] == "203.0.113.7"


def test_an_invalid_trusted_proxy_is_refused_at_start(tmp_path: Path) -> None:
    result = run_cli(
        "serve", "--trusted-proxy", "10.0.0.0/33", data_dir=tmp_path / "data", check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("lightkeeper: error: invalid trusted_proxy")
    assert len(result.stderr.splitlines()) == 1
