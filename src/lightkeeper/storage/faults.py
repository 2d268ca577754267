"""Opt-in fault injection for the storage byte movers, for the reliability tests.

Off unless the environment variable ``LIGHTKEEPER_FAULTS`` is set (read once per process)::

    LIGHTKEEPER_FAULTS=storage.copy:eio        # every copy/hash pass fails with EIO
    LIGHTKEEPER_FAULTS=storage.copy:enospc:1   # only the next one fails, with ENOSPC
    LIGHTKEEPER_FAULTS=storage.copy:slow       # every chunk takes 0.1 s longer (no error)
    LIGHTKEEPER_FAULTS=storage.table:kill:1    # SIGKILL this process before its next table

``storage.copy`` is checked after each chunk that a sparse copy or a hash pass (copy.py) has
moved, so the failure happens part-way through a real copy: a raw snapshot copy or restore,
a qcow2 snapshot export or verification. ``storage.table`` is checked just before a driver
writes a snapshot's block table (storage/blocks.py): after the snapshot's data is in place,
before the table that vouches for it is. The error is an ordinary OSError, handled exactly
like one from the disk. ``slow`` raises nothing: it stretches a copy so that tests can act
while it runs. ``kill`` is the crash harness's: the process SIGKILLs itself at that very
point, a moment no outside timer can hit. See docs/reliability.md.

Nothing here is reached unless asked for: the composition root (storage.make_driver) gives
the drivers `hooks()` (their copies' chunk hook, their table hook) only for the points the
setting names, as an httpx client is handed another transport.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import signal
import threading
import time

from .base import ChunkHook

ENV = "LIGHTKEEPER_FAULTS"
POINTS = {"storage.copy": "on_chunk", "storage.table": "on_table"}
"""Each point, and the driver hook (constructor keyword) that reaches it."""
ERRORS = {"eio": errno.EIO, "enospc": errno.ENOSPC}
SLOW, KILL = "slow", "kill"
ACTIONS = {SLOW: None, KILL: -signal.SIGKILL}
"""Actions other than an error, coded as negative numbers beside the errnos."""
SLOW_SECONDS = 0.1

logger = logging.getLogger("lightkeeper.faults")


class _Faults:
    def __init__(self, spec: str) -> None:
        # point -> (errno, or ACTIONS' code; count left)
        self.remaining: dict[str, tuple[int | None, int | None]] = {}
        self.lock = threading.Lock()
        for item in filter(None, (part.strip() for part in spec.split(","))):
            point, _, rest = item.partition(":")
            name, _, count = rest.partition(":")
            known = name in ERRORS or name in ACTIONS
            if point not in POINTS or not known or (count and not count.isdigit()):
                raise ValueError(f"{ENV}: cannot parse {item!r} (e.g. storage.copy:eio[:COUNT])")
            code = ERRORS[name] if name in ERRORS else ACTIONS[name]
            self.remaining[point] = (code, int(count) if count else None)
        if self.remaining:
            logger.warning("fault injection is ON: %s=%s", ENV, spec)

    def check(self, point: str) -> None:
        with self.lock:
            found = self.remaining.get(point)
            if found is None:
                return
            code, left = found
            if left is not None:
                if left <= 0:
                    return
                self.remaining[point] = (code, left - 1)
        if code is None:
            time.sleep(SLOW_SECONDS)
            return
        if code < 0:
            logger.warning("injected fault %s: killing this process", point)
            os.kill(os.getpid(), -code)
        raise OSError(code, f"{os.strerror(code)} (injected fault {point})")


_active: _Faults | None = None
_init = threading.Lock()


def _faults() -> _Faults:
    global _active
    if _active is None:
        with _init:
            if _active is None:
                _active = _Faults(os.environ.get(ENV, ""))
    return _active


def load() -> None:
    """Read the setting now (make_driver calls this): a typo stops the server at start
    instead of silently injecting nothing."""
    _faults()


def check(point: str) -> None:
    """Raise the configured OSError at ``point``, if fault injection asks for one."""
    _faults().check(point)


def hooks() -> dict[str, ChunkHook]:
    """The driver hooks (keyword -> hook) injecting the configured faults; empty when none
    are set. The counts are process-wide (``:1`` means once per process)."""
    return {POINTS[point]: functools.partial(check, point) for point in _faults().remaining}
