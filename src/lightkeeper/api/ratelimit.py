"""Per-second request counting, scoped as Tencent scopes it: Action + region + principal.

Counted by second of arrival (a fixed one-second window), so a client that sends 25 calls in
one second sees exactly ``limit`` succeed and the rest get ``RequestLimitExceeded``.
"""

from __future__ import annotations

import threading

from lightkeeper.errors import ApiError


class RateLimiter:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._second = -1
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()

    def hit(self, action: str, region: str, principal: str, limit: int, now: float) -> None:
        """Count one request; raise ``RequestLimitExceeded`` once ``limit`` is passed."""
        if not self.enabled:
            return
        second = int(now)
        key = (action, region, principal)
        with self._lock:
            if second > self._second:
                self._second = second
                self._counts = {}
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
        if count > limit:
            raise ApiError("RequestLimitExceeded", count=count, limit=limit)
