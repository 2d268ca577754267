"""A tiny synchronous client of the QEMU guest agent (qemu-ga) over the guest's chardev socket.

The agent runs inside the guest and answers line-delimited JSON on a virtio-serial port that
QEMU exposes here as a unix socket. Unlike QMP it sends no greeting and the socket may hold a
previous client's half-read reply, so every connection starts with ``guest-sync-delimited``:
a 0xFF byte resets the agent's parser, and the reply (itself after a 0xFF) carries back our
random id, so whatever came before it is discarded. Why not a library: as for QMP (qmp.py),
the few commands used here (sync, fsfreeze freeze/thaw/status) are a few lines.
"""

from __future__ import annotations

import json
import secrets
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

_SENTINEL = b"\xff"


class GuestAgentError(Exception):
    """The agent could not be reached, did not answer in time, or answered with an error."""


class GuestAgent:
    def __init__(self, path: Path, timeout: float = 2.0) -> None:
        self._path = path
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def __enter__(self) -> GuestAgent:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self._path))
        except OSError as exc:
            sock.close()
            raise GuestAgentError(f"cannot connect to {self._path}: {exc}") from exc
        self._sock = sock
        try:
            self._sync()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf = b""

    def _send(self, payload: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.sendall(payload)
        except OSError as exc:
            raise GuestAgentError(f"writing {self._path}: {exc}") from exc

    def _fill(self, deadline: float) -> None:
        assert self._sock is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GuestAgentError(f"{self._path}: the guest agent did not answer in time")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(65536)
        except TimeoutError:
            raise GuestAgentError(f"{self._path}: the guest agent did not answer in time") from None
        except OSError as exc:
            raise GuestAgentError(f"reading {self._path}: {exc}") from exc
        if not chunk:
            raise GuestAgentError(f"{self._path}: connection closed")
        self._buf += chunk

    def _line(self, deadline: float) -> dict[str, Any]:
        while b"\n" not in self._buf:
            self._fill(deadline)
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            message = json.loads(line.lstrip(_SENTINEL))
        except ValueError:
            return {}  # a fragment of an earlier client's reply: skipped like any other
        return message if isinstance(message, dict) else {}

    def _sync(self) -> None:
        token = secrets.randbelow(2**31)
        request = {"execute": "guest-sync-delimited", "arguments": {"id": token}}
        self._send(_SENTINEL + json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + self._timeout
        while True:  # everything before our token's reply belongs to someone else
            if self._line(deadline).get("return") == token:
                return

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """Run ``command`` and return its ``return`` value (the agent answers in order)."""
        if self._sock is None:
            raise GuestAgentError("not connected")
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._send(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        while True:
            reply = self._line(deadline)
            if "error" in reply:
                error = reply["error"]
                desc = error.get("desc") if isinstance(error, dict) else error
                raise GuestAgentError(f"{command}: {desc}")
            if "return" in reply:
                return reply["return"]
