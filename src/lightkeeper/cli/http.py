"""The uvicorn server ``serve`` runs (imported lazily: admin commands never need it), and the
transport limits uvicorn lacks.

uvicorn arms no timer on a connection until it has answered a request, and a keep-alive
connection that then sends a few bytes of its next request head waits forever; it also accepts
connections until the process runs out of file descriptors, and asyncio logs every failed
``accept()`` (EMFILE) with a traceback, thousands per second. So:

- a connection that does not deliver a complete request head within ``idle_timeout`` seconds
  (from connecting, or from the end of its previous response), or that sends nothing for
  ``idle_timeout`` seconds in the middle of a request body, is closed;
- at most ``max_connections`` are open, a number kept below ``RLIMIT_NOFILE``. A connection
  over the cap closes the connection that has been idle (waiting for a request head) longest,
  so idle sockets cannot lock answerable clients out; when every connection has a request in
  flight, the new one is answered a plain ``503`` and closed;
- errors the event loop reports (failed ``accept()`` among them) are logged once per kind per
  minute, with a count of the repeats.
"""

from __future__ import annotations

import asyncio
import logging
import math
import resource
import socket
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from lightkeeper.config import ConfigError
from lightkeeper.sockets import has_input

logger = logging.getLogger("lightkeeper.transport")

# Descriptors kept for the server itself: database files and the connection pool, disk images
# being copied, drivers' sockets, logs (an idle server holds 13).
RESERVE = 128
# asyncio accepts up to ``backlog`` connections per loop iteration, and a connection reaches
# ``connection_made`` (where the cap is applied) two iterations after its accept, the socket it
# displaces closes one iteration later: meanwhile up to this many backlogs more are accepted.
ACCEPTS_IN_FLIGHT = 4
# An idle timer that finds a request unread looks again this much later, when the loop has read it.
READ_GRACE = 0.05
LISTEN_QUEUE = 2048  # connections waiting to be accepted cost no descriptor (uvicorn's default)
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 22\r\n\r\nToo many connections.\n"
)


@dataclass(frozen=True)
class Transport:
    idle_timeout: float
    max_connections: int
    # what asyncio calls backlog: how many connections it accepts per loop iteration (and
    # the listen() queue, which ``Server`` deepens to LISTEN_QUEUE once listening)
    backlog: int


def descriptor_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def transport_limits(idle_timeout: float, max_connections: int | None) -> Transport:
    """The limits for this process's ``RLIMIT_NOFILE``: the connections, the ones being
    accepted and the reserve must fit, so ``accept()`` does not fail with EMFILE. Raises
    ``ConfigError``."""
    soft = descriptor_limit()
    backlog = min(512, max(16, soft // 32))  # 32 for ulimit -n 1024; nginx's default is 511
    ceiling = soft - RESERVE - ACCEPTS_IN_FLIGHT * backlog
    if ceiling < 1:
        raise ConfigError(f"RLIMIT_NOFILE is {soft}: too few file descriptors (raise ulimit -n)")
    if max_connections is not None and max_connections > ceiling:
        raise ConfigError(
            f"invalid max_connections: {max_connections} connections do not fit RLIMIT_NOFILE "
            f"{soft} ({RESERVE} descriptors are kept for the server and "
            f"{ACCEPTS_IN_FLIGHT * backlog} for connections being accepted: at most {ceiling}); "
            "raise ulimit -n"
        )
    return Transport(idle_timeout, max_connections or ceiling, backlog)


class Throttle:
    """At most one log line per ``interval`` seconds for each recurring message, saying how
    often it recurred meanwhile: a flood of connections must not become a flood of log lines
    (issue #11: 85,112 tracebacks, 35 MB, in 10 s)."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._state: dict[str, tuple[float, int]] = {}  # message -> (quiet until, repeats)

    def due(self, message: str) -> int | None:
        """None while ``message`` is to be kept quiet, else the repeats not yet reported."""
        now = time.monotonic()
        until, repeats = self._state.get(message, (0.0, 0))
        if now < until:
            self._state[message] = (until, repeats + 1)
            return None
        if len(self._state) > 1000:  # distinct messages are few; never grow without bound
            self._state.clear()
        self._state[message] = (now + self.interval, 0)
        return repeats


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the idle timeout and the connection cap; ``limits``,
    ``idle`` and ``throttle`` are set per server by ``protocol_class``.

    The timer runs while the connection waits for its client: for a request head it is one
    deadline (bytes trickling in do not extend it); for a request body it restarts with each
    chunk received. While a request is being handled or answered, no timer runs."""

    limits: ClassVar[Transport]
    # Connections waiting for a request head, oldest first (a dict keeps insertion order).
    idle: ClassVar[dict[LimitedH11Protocol, None]]
    throttle: ClassVar[Throttle]
    _timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections and not self._evict_idle():
            self._report("connection limit reached, every connection busy: refused with 503")
            transport.write(REFUSAL)
            transport.close()
            return
        self._await_head()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_flight():
            self._await_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start the next, pipelined, request
        if self.transport.is_closing():
            return
        if self._in_flight():
            self._await_body()
        else:
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        self.idle.pop(self, None)
        super().connection_lost(exc)

    def _in_flight(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _await_head(self) -> None:
        self.idle.pop(self, None)
        self.idle[self] = None  # now the most recently idle
        self._start_timer()

    def _await_body(self) -> None:
        self.idle.pop(self, None)
        if self.conn.their_state is h11.SEND_BODY:
            self._start_timer()
        else:  # the whole request is in: the application has it
            self._stop_timer()

    def _start_timer(self) -> None:
        self._stop_timer()
        self._timer = self.loop.call_later(self.limits.idle_timeout, self._timed_out)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        if self._in_flight() and self.conn.their_state is not h11.SEND_BODY:
            return
        if self._in_flight() and self.flow.read_paused:  # we stopped reading, not the client
            self._start_timer()
            return
        if self._unread():  # it came in time: the loop, held up, has not read it yet
            self._timer = self.loop.call_later(READ_GRACE, self._timed_out)
            return
        self.idle.pop(self, None)
        self.transport.close()  # the application, if reading a body, sees a disconnect

    def _unread(self) -> bool:
        """Whether bytes (or the client's close) wait in the socket unread. An event loop held
        up past a deadline (the process stopped or starved) runs the expired timer before it
        reads what the client sent meanwhile (uvloop: timers come before the next poll), and
        closing a socket with unread bytes resets the connection under a request sent in time.
        """
        sock = self.transport.get_extra_info("socket")
        return sock is not None and has_input(sock.fileno())

    def timeout_keep_alive_handler(self) -> None:
        """uvicorn's keep-alive timer does nothing: ``_timed_out`` runs whenever the
        connection waits for its client, and knows a request read from one sent in time."""

    def _evict_idle(self) -> bool:
        """Close the connection idle longest (never one with a request in flight)."""
        oldest = next(iter(self.idle), None)
        if oldest is None:
            return False
        self.idle.pop(oldest)
        oldest._stop_timer()
        oldest.transport.close()
        self._report("connection limit reached: closed the longest-idle connection")
        return True

    def _report(self, message: str) -> None:
        repeats = self.throttle.due(message)
        if repeats is not None:
            since = f"; {repeats} more since the last report" if repeats else ""
            logger.warning("%s (max-connections %d%s)", message, self.limits.max_connections, since)


def protocol_class(limits: Transport) -> type[LimitedH11Protocol]:
    """A protocol class of its own per server: its idle registry is that server's."""
    attributes = {"limits": limits, "idle": {}, "throttle": Throttle()}
    return type("ServerH11Protocol", (LimitedH11Protocol,), attributes)


def uvicorn_transport(limits: Transport) -> dict[str, Any]:
    return {
        "http": protocol_class(limits),
        "backlog": limits.backlog,
        # (its timer, still scheduled, does nothing: LimitedH11Protocol's closes them)
        "timeout_keep_alive": math.ceil(limits.idle_timeout),
    }


def loop_error_handler(throttle: Throttle) -> Any:
    """The loop's default report (with traceback), once per message per interval."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        repeats = throttle.due(str(context.get("message", "")))
        if repeats is None:
            return
        if repeats:
            context = {**context, "repeats since the last report": repeats}
        loop.default_exception_handler(context)

    return handle


class Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it once it has shut down, which ends the
    process with -SIGTERM, or with click's "Aborted!" and status 1 for SIGINT. A requested stop
    is a clean one: exit status 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        getattr(self, "_captured_signals", []).clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(loop_error_handler(Throttle()))
        await super().startup(sockets)
        self._deepen_listen_queues()

    def _deepen_listen_queues(self) -> None:
        """asyncio's ``backlog`` is both the listen() queue and the number of connections it
        accepts per loop iteration. The latter is part of the descriptor budget and kept
        small; a connection waiting in the kernel's queue costs none, so that queue is made
        deep again (on Linux, listen() on a listening socket resizes its queue): a burst of
        connects is then queued rather than dropped and retried by the clients a second later.
        """
        for server in getattr(self, "servers", []):
            for listener in server.sockets:
                with socket.fromfd(listener.fileno(), listener.family, listener.type) as sock:
                    sock.listen(LISTEN_QUEUE)
