"""Locks shared by every node of a Ceph pool: RADOS objects held under a lease (storage/rbd.py).

A lock is an object created with ``CREATE_EXCLUSIVE``; its content is the holder's token on
the first line, then who holds it (host, pid and start of the process, its Ceph client) and
until when. A thread renews every lock this process holds (compare-and-write on the token)
a third of a lease before it runs out; release is compare-and-remove, so a lock that was
broken and taken by another is never removed by its old holder.

A lock is broken when its holder is a dead process of this host (at once, as a dead
process's flock vanishes) or its lease ran out (a dead or stalled node). Breaking first
blocklists the old holder's Ceph client on the OSDs, so a stalled holder that wakes up can
change nothing any more: the same fencing Ceph's own exclusive lock uses. Host clocks are
assumed within a few seconds of each other (NTP); the lease is much longer than that.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .base import StorageError

logger = logging.getLogger("lightkeeper.storage.rbd")

LEASE_SECONDS = 15.0
BLOCKLIST_SECONDS = 3600


def process_start(pid: int) -> str:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat): a pid reused
    by a later process does not look like the holder."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid())}"


def dead_here(holder: str) -> bool:
    """``holder`` (host:pid:start) is a process of this host that is gone."""
    host, _, rest = holder.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return process_start(int(pid)) != start


class LeasedLocks:
    def __init__(
        self,
        rados: Any,
        ioctx: Callable[[], Any],
        cluster: Callable[[], Any],
        lease: float = LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``ioctx``/``cluster``: the connected pool and client, asked at each use."""
        self._rados = rados
        self._ioctx = ioctx
        self._cluster = cluster
        self._lease = lease
        self._clock = clock
        self._holder = this_process()
        self._held: dict[str, bytes] = {}  # key -> token
        self._guard = threading.Lock()
        self._renewer: threading.Thread | None = None

    def _content(self, token: bytes) -> bytes:
        about = {
            "holder": self._holder,
            "client": str(self._cluster().get_addrs()),
            "expires": self._clock() + self._lease,
        }
        return token + b"\n" + json.dumps(about).encode()

    def take(self, key: str, busy: StorageError) -> bytes:
        """Hold lock ``key`` (``busy`` raised if a live holder has it); returns its token."""
        rados = self._rados
        token = uuid.uuid4().hex.encode()
        for attempt in range(2):
            try:
                with rados.WriteOpCtx() as op:
                    op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
                    op.write_full(self._content(token))
                    self._ioctx().operate_write_op(op, key)
                break
            except rados.ObjectExists:
                try:
                    found = bytes(self._ioctx().read(key, 4096))
                except rados.ObjectNotFound:
                    continue  # released meanwhile
                if attempt or not self._break_if_stale(key, found):
                    raise busy from None
        else:
            raise busy
        with self._guard:
            self._held[key] = token
            if self._renewer is None or not self._renewer.is_alive():
                self._renewer = threading.Thread(
                    target=self._renew, name="rbd-lock-renewal", daemon=True
                )
                self._renewer.start()
        return token

    def _break_if_stale(self, key: str, found: bytes) -> bool:
        old_token, _, rest = found.partition(b"\n")
        try:
            about = json.loads(rest)
            holder, client, expires = about["holder"], about["client"], float(about["expires"])
        except (ValueError, KeyError, TypeError):
            return False  # not a lock of ours: never broken
        if not dead_here(holder) and self._clock() <= expires:
            return False
        if client and client != str(self._cluster().get_addrs()):
            with suppress(self._rados.Error):
                self._cluster().blocklist_add(client, BLOCKLIST_SECONDS)
        logger.warning("broke lock %s of %s (client %s): holder gone", key, holder, client)
        self.drop(key, old_token, forget=False)
        return True

    def drop(self, key: str, token: bytes, *, forget: bool = True) -> None:
        """Remove lock object ``key`` only if it still holds ``token``."""
        rados = self._rados
        if forget:
            with self._guard:
                if self._held.get(key) == token:
                    del self._held[key]
        with suppress(rados.Error), rados.WriteOpCtx() as op:
            op.cmpext(token + b"\n", 0)
            op.remove()
            self._ioctx().operate_write_op(op, key)

    @contextmanager
    def held(self, key: str, busy: StorageError) -> Iterator[None]:
        token = self.take(key, busy)
        try:
            yield
        finally:
            self.drop(key, token)

    def _renew(self) -> None:
        while True:
            time.sleep(self._lease / 3)
            with self._guard:
                held = dict(self._held)
            if not held:
                continue
            for key, token in held.items():
                self._renew_one(key, token)

    def _renew_one(self, key: str, token: bytes) -> None:
        rados = self._rados
        try:
            with rados.WriteOpCtx() as op:
                op.cmpext(token + b"\n", 0)
                op.write_full(self._content(token))
                self._ioctx().operate_write_op(op, key)
        except rados.Error as exc:  # broken by another (we were stalled) or Ceph is away
            with self._guard:
                still = self._held.get(key) == token
            if still:
                logger.error("lock %s could not be renewed: %s", key, exc)
