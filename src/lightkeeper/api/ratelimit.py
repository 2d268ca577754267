"""Per-second request counting, scoped as Tencent scopes it: Action + region + principal.

Counted by second of arrival (a fixed one-second window), so a client that sends 25 calls in
one second sees exactly ``limit`` succeed and the rest get ``RequestLimitExceeded``. Where
the counts live is injected (``Counts``): in this process, or in the database every node
shares (store/shared.py), so that the limit holds whichever node a request reaches.
"""

from __future__ import annotations

import threading
from typing import Protocol

from lightkeeper.errors import ApiError

Key = tuple[str, str, str]  # (action, region, principal)


class Counts(Protocol):
    def add(self, key: Key, second: int) -> int:
        """Count one request of ``key`` in ``second``; return the count including it."""


class LocalCounts:
    """The counts of this process only (one node; SQLite)."""

    def __init__(self) -> None:
        self._second = -1
        self._counts: dict[Key, int] = {}
        self._lock = threading.Lock()

    def add(self, key: Key, second: int) -> int:
        with self._lock:
            if second > self._second:
                self._second = second
                self._counts = {}
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
        return count


class RateLimiter:
    def __init__(self, enabled: bool = True, counts: Counts | None = None) -> None:
        self.enabled = enabled
        self._counts = counts if counts is not None else LocalCounts()

    def hit(self, action: str, region: str, principal: str, limit: int, now: float) -> None:
        """Count one request; raise ``RequestLimitExceeded`` once ``limit`` is passed."""
        if not self.enabled:
            return
        count = self._counts.add((action, region, principal), int(now))
        if count > limit:
            raise ApiError("RequestLimitExceeded", count=count, limit=limit)
