"""Connections that send nothing, or stop halfway, cannot exhaust the server: they time out,
their number is capped below the file-descriptor limit, an idle one makes way for a new one,
and none of it floods the log."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import uvloop
from tencentcloud.lighthouse.v20200324 import models
from testkit import clients, world
from testkit.server import Server, free_port, run_cli

from lightkeeper.cli.http import Server as HttpServer
from lightkeeper.cli.http import (
    Throttle,
    loop_error_handler,
    transport_limits,
    uvicorn_transport,
)

HEAD = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@contextmanager
def server_with(tmp_path: Path, *args: str, nofile: int | None = None) -> Iterator[Server]:
    srv = Server(tmp_path / "data", free_port(), args, nofile=nofile)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def connect(srv: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=60)


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes (True) or the socket's timeout expires (False)."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_idle_sockets_beyond_the_descriptor_limit_lock_nobody_out(tmp_path: Path) -> None:
    """Before: 1,100 silent sockets under ``ulimit -n 1024`` made every client time out and
    wrote 35 MB of EMFILE tracebacks in 10 s."""
    limit = 256
    with server_with(tmp_path, "--idle-timeout", "300", nofile=limit) as srv, ExitStack() as held:
        root = srv.create_account("busy")
        socks = [held.enter_context(connect(srv)) for _ in range(limit + 100)]
        reply = world.client(srv, root).DescribeRegions(models.DescribeRegionsRequest())
        assert reply.TotalCount == 15
        socks += [held.enter_context(connect(srv)) for _ in range(100)]
        assert (
            clients.lighthouse(srv.endpoint, root)
            .DescribeZones(models.DescribeZonesRequest())
            .TotalCount
        )
        # the oldest silent sockets were closed to make room; the newest are still open
        assert closed_by_server(socks[0])
        log = srv.log()
    assert "Too many open files" not in log
    assert "Traceback" not in log
    assert len(log) < 20_000, log[-2000:]
    assert "connection limit reached: closed the longest-idle connection" in log


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # never a byte
        HEAD,  # half a request head, then silence
        HEAD + b"Content-Length: 100\r\n\r\n{",  # a head, then a body that stops
    ],
    ids=["nothing", "partial-head", "stalled-body"],
)
def test_a_silent_connection_is_closed_after_the_idle_timeout(tmp_path: Path, sent: bytes) -> None:
    with server_with(tmp_path, "--idle-timeout", "1") as srv, connect(srv) as sock:
        sock.sendall(sent)
        assert closed_by_server(sock)  # (the socket itself gives up after 60 s)
        log = srv.log()
    assert "Traceback" not in log


def test_a_keep_alive_connection_that_starts_a_request_and_stops_is_closed(
    tmp_path: Path,
) -> None:
    with server_with(tmp_path, "--idle-timeout", "1") as srv, connect(srv) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_reply(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0")  # the next head, never finished
        assert closed_by_server(sock)


async def _healthy(scope: Any, receive: Any, send: Any) -> None:
    """The smallest ASGI app: what is under test is the transport around it."""
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer of ``_healthy`` (its body is ``ok``)."""
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@contextmanager
def transport_only(loop_name: str, idle_timeout: float) -> Iterator[tuple[int, Any]]:
    """``serve``'s transport (cli/http.py: its protocol class and uvicorn settings) around a
    trivial app, on ``loop_name``'s event loop in a thread of this process; yields the port
    and the loop (so a test can hold the loop up, as a stopped process or a paused VM would).
    """
    loop = uvloop.new_event_loop() if loop_name == "uvloop" else asyncio.new_event_loop()
    port = free_port()
    config = uvicorn.Config(
        _healthy,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        **uvicorn_transport(transport_limits(idle_timeout, None)),
    )
    server = HttpServer(config)
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.02)
        assert server.started
        yield port, loop
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        loop.close()


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_request_sent_in_time_is_answered_after_the_loop_was_held_up(loop_name: str) -> None:
    """The next request on a keep-alive connection, sent before the idle timeout while the
    server's event loop could not run (the process stopped or starved past the timeout), is
    answered, not reset. Before: uvloop runs expired timers before it polls again, so the
    idle timer closed a socket holding the unread request and the client got ECONNRESET (as
    the 11 transport errors of a stalled-owner storm under CPU load did: its servers were
    SIGSTOPped for up to ~10 s, with the 10 s idle timeout of then). asyncio reads first."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with transport_only(loop_name, idle_timeout=1.0) as (port, loop):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(request)
            assert read_answer(sock).startswith(b"HTTP/1.1 200")  # idle now: its timer runs
            holding = threading.Event()
            wake, woken = socket.socketpair()

            def hold_up() -> None:  # an I/O callback, as the server's own work mostly is
                loop.remove_reader(woken)
                holding.set()
                time.sleep(1.5)  # past the idle timeout, the loop not running

            loop.call_soon_threadsafe(loop.add_reader, woken, hold_up)
            wake.send(b"!")
            assert holding.wait(10)
            sock.sendall(request)  # in time: well within the idle timeout
            assert read_answer(sock).startswith(b"HTTP/1.1 200")
            wake.close()
            woken.close()


def test_when_every_connection_is_busy_a_new_one_gets_503(tmp_path: Path) -> None:
    with server_with(tmp_path, "--max-connections", "3", "--idle-timeout", "300") as srv:
        root = srv.create_account("busy")
        with ExitStack() as held:
            busy = []
            for _ in range(3):  # each is in the middle of a request: never evicted
                sock = held.enter_context(connect(srv))
                sock.sendall(HEAD + b"Content-Length: 2\r\nExpect: 100-continue\r\n\r\n")
                assert read_reply(sock).startswith(b"HTTP/1.1 100")  # the server has the head
                busy.append(sock)
            with connect(srv) as refused:
                assert read_reply(refused).startswith(b"HTTP/1.1 503 Service Unavailable")
                assert closed_by_server(refused)
            busy[0].sendall(b"{}")  # one request completes: its connection becomes idle...
            reply = read_reply(busy[0])
            assert reply.startswith(b"HTTP/1.1 200") and b"application/json" in reply
            # ...and makes way for a new client
            assert world.client(srv, root).DescribeRegions(models.DescribeRegionsRequest())
            assert closed_by_server(busy[0])
        log = srv.log()
    assert "refused with 503" in log
    assert "Traceback" not in log


def test_max_connections_must_fit_the_descriptor_limit(tmp_path: Path) -> None:
    result = run_cli(
        "serve", "--max-connections", "100000000", data_dir=tmp_path / "data", check=False
    )
    assert result.returncode == 2
    assert result.stderr.startswith("lightkeeper: error: invalid max_connections: 100000000")
    assert "RLIMIT_NOFILE" in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("source", ["env", "toml"])
def test_transport_settings_come_from_every_config_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """(The flags are used above.) An idle timeout of 1 s and a cap of 2 connections."""
    args: tuple[str, ...] = ()
    if source == "env":
        monkeypatch.setenv("LIGHTKEEPER_IDLE_TIMEOUT", "1")
        monkeypatch.setenv("LIGHTKEEPER_MAX_CONNECTIONS", "2")
    else:
        config = tmp_path / "lightkeeper.toml"
        config.write_text("idle_timeout = 1\nmax_connections = 2\n")
        args = ("--config", str(config))
    with server_with(tmp_path, *args) as srv, ExitStack() as held:
        first = held.enter_context(connect(srv))
        assert closed_by_server(first)  # idle timeout
        busy = []
        for _ in range(2):
            sock = held.enter_context(connect(srv))
            sock.sendall(HEAD + b"Content-Length: 2\r\nExpect: 100-continue\r\n\r\n")
            assert read_reply(sock).startswith(b"HTTP/1.1 100")
            busy.append(sock)
        with connect(srv) as refused:
            assert read_reply(refused).startswith(b"HTTP/1.1 503")


def test_failed_accepts_are_logged_once_per_minute_not_once_per_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Should descriptors run out anyway (another process's share of a system-wide limit),
    asyncio reports every failed ``accept()``: 122,110 reports in 10 s before the fix."""
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(loop_error_handler(Throttle()))
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            for _ in range(1000):
                loop.call_exception_handler(
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(errno.EMFILE, "Too many open files"),
                    }
                )
            loop.call_exception_handler({"message": "something else"})
    finally:
        loop.close()
    assert [r.getMessage() for r in caplog.records] == [
        "socket.accept() out of system resource",
        "something else",
    ]
