"""A tiny synchronous QMP client: one connection, one command at a time, over a unix socket.

Why not PyPI ``qemu.qmp``: it is asyncio-only (its sync wrapper is marked legacy), while the
compute drivers are synchronous and run on the job worker's threads; the handful of commands
the driver needs (status, powerdown, reset, quit, internal snapshot) are a few lines of
line-delimited JSON. QEMU serves one QMP client at a time, so callers connect per operation
and close promptly; a second client simply waits for the greeting, hence the timeouts.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import TracebackType
from typing import Any


class QMPError(Exception):
    """The monitor could not be reached or spoke something other than QMP."""


class QMPCommandError(QMPError):
    """QEMU answered a command with an error object."""

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"{command}: {error_class}: {desc}")
        self.error_class = error_class
        self.desc = desc


class QMPClient:
    def __init__(self, path: Path, timeout: float = 5.0) -> None:
        self._path = path
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._next_id = 0

    def __enter__(self) -> QMPClient:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect, read the greeting and leave capabilities negotiation mode."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self._timeout)
        try:
            sock.connect(str(self._path))
        except OSError as exc:
            sock.close()
            raise QMPError(f"cannot connect to {self._path}: {exc}") from exc
        self._sock = sock
        try:
            greeting = self._read()
            if "QMP" not in greeting:
                raise QMPError(f"not a QMP greeting: {greeting!r}")
            self.execute("qmp_capabilities")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf = b""

    def _read(self) -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except OSError as exc:  # includes socket.timeout
                raise QMPError(f"reading {self._path}: {exc or 'timed out'}") from exc
            if not chunk:
                raise QMPError(f"{self._path}: connection closed by QEMU")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise QMPError(f"{self._path}: not JSON: {line[:200]!r}") from exc
        if not isinstance(message, dict):
            raise QMPError(f"{self._path}: unexpected message {message!r}")
        return message

    def execute(self, command: str, arguments: dict[str, Any] | None = None) -> Any:
        """Run ``command`` and return its ``return`` value; asynchronous events are skipped."""
        if self._sock is None:
            raise QMPError("not connected")
        self._next_id += 1
        request: dict[str, Any] = {"execute": command, "id": self._next_id}
        if arguments:
            request["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except OSError as exc:
            raise QMPError(f"writing {self._path}: {exc}") from exc
        while True:
            reply = self._read()
            if "event" in reply or reply.get("id") != self._next_id:
                continue
            if "error" in reply:
                error = reply["error"]
                raise QMPCommandError(command, str(error.get("class")), str(error.get("desc")))
            return reply.get("return")
