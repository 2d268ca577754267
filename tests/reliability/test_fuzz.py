"""Hostile input through the real HTTP interface (the engine is ``testkit/fuzz.py``;
``tools/fuzz.py`` runs it for thousands of examples). Every category asserts that every
answer is a well-formed envelope with a documented code and never InternalError; at the end,
the server is still healthy, its /metrics count no InternalError and its log has no traceback.
Also: a client trickling its body must not stall the others."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from testkit import fuzz
from testkit.server import Server
from testkit.storm import envelope_problem, signed_request, tc3_headers

CI_EXAMPLES = {  # a few hundred in all, ~60 s
    "json-params": 120,
    "flat-params": 50,
    "json-numbers": 60,
    "tag-flood": 30,
    "duplicate-keys": 40,
    "sign-mixups": 50,
    "truncated": 30,
    "raw-garbage": 40,
}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fuzz.Target]:
    server: Server = fuzz.fuzz_server(tmp_path_factory.mktemp("fuzz") / "data")
    server.start()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        target = fuzz.make_target(server, http)
        yield target
        print("fuzz cases:", dict(sorted(target.counts.items())), "codes:", dict(target.codes))
    server.stop()


@pytest.mark.parametrize("category", list(CI_EXAMPLES))
def test_fuzz_category(target: fuzz.Target, category: str) -> None:
    before = sum(n for name, n in target.counts.items() if name.startswith(category[:9]))
    fuzz.run_category(target, category, CI_EXAMPLES[category])
    after = sum(n for name, n in target.counts.items() if name.startswith(category[:9]))
    assert after - before >= CI_EXAMPLES[category] // 2  # the cases really ran


def test_truncated_body_is_not_an_internal_error(target: fuzz.Target) -> None:
    """Regression: a client that closed before sending Content-Length bytes made Starlette
    raise ClientDisconnect, answered (to nobody) and counted as InternalError with a logged
    traceback. It is now an unparseable body (``InvalidParameter``)."""
    body = b'{"InstanceIds": ["lhins-00000000"]}'
    headers = tc3_headers(target.account, target.server.endpoint, "StartInstances", body, None)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    for close_early in (False, True):
        payload = f"POST / HTTP/1.1\r\n{head}Content-Length: 1000\r\n\r\n".encode() + body[:10]
        fuzz._exchange(target, payload, close_early=close_early)
    time.sleep(0.5)  # the server notices the disconnect asynchronously
    metrics = target.http.get("/metrics").text
    assert 'code="InternalError"' not in metrics
    assert 'lightkeeper_requests_total{action="-",code="InvalidParameter"}' in metrics
    assert "ClientDisconnect" not in target.server.log()


def test_server_survives_the_fuzz(target: fuzz.Target) -> None:
    assert fuzz.server_problems(target) == []


def test_a_slow_client_does_not_stall_the_others(target: fuzz.Target) -> None:
    """One client trickles a 40-byte body one byte per 100 ms (4 s); meanwhile 50 normal
    requests complete before it is done, and the trickler still gets its envelope at the end."""
    body = json.dumps({"Limit": 1, "Offset": 0, "X": "xxxxx"}).encode()[:40]
    body = body if len(body) == 40 else body.ljust(40)
    headers = tc3_headers(
        target.account, target.server.endpoint, "DescribeZones", body, "ap-guangzhou"
    )
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    answer: list[bytes] = []
    finished_at: list[float] = []

    def trickle() -> None:
        with socket.create_connection(("127.0.0.1", target.server.port), timeout=30) as sock:
            sock.sendall(f"POST / HTTP/1.1\r\n{head}Content-Length: 40\r\n\r\n".encode())
            for byte in body:
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            answer.append(b"".join(chunks))
            finished_at.append(time.monotonic())

    slow = threading.Thread(target=trickle)
    slow.start()
    time.sleep(0.3)  # the trickle has begun
    for _ in range(50):  # (how fast they are is bench/'s business: ``python -m bench``)
        reply = signed_request(
            target.http, target.account, target.server.endpoint, "DescribeRegions", {}, None
        )
        assert envelope_problem(reply) is None and "RegionSet" in reply.json()["Response"]
    done = time.monotonic()
    slow.join(30)
    assert not slow.is_alive()
    assert finished_at and finished_at[0] > done  # the trickler was still sending meanwhile
    response = fuzz._parse_raw(answer[0])
    assert envelope_problem(response) is None, answer[0][:300]
