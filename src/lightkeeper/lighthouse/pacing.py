"""How long snapshot operations last, changeable while the server runs (the control API's
``timing``): at least ``operation_seconds`` (paced), or *manual*, where an operation's Percent
advances only when a test says so (``advance``, ``complete``), like moto's state manager.

An operation keeps the mode it started in; a manual one waits at the Percent it was allowed
and commits its final state only once allowed 100.
"""

from __future__ import annotations

import threading


class Pacing:
    def __init__(self, operation_seconds: float = 0.0) -> None:
        self.operation_seconds = operation_seconds
        self.manual = False
        self._allowed: dict[str, int] = {}
        self._changed = threading.Condition()

    def set(self, operation_seconds: float | None = None, manual: bool | None = None) -> None:
        if operation_seconds is not None:
            if not 0 <= operation_seconds <= 3600:
                raise ValueError("operation_seconds must be 0..3600")
            self.operation_seconds = operation_seconds
        if manual is not None:
            self.manual = manual

    def allowed(self, snapshot_id: str) -> int:
        return self._allowed.get(snapshot_id, 0)

    def advance(self, snapshot_id: str, percent: int) -> None:
        """Let ``snapshot_id``'s manual operation show up to ``percent`` (100: finish)."""
        if not 0 <= percent <= 100:
            raise ValueError("percent must be 0..100")
        with self._changed:
            self._allowed[snapshot_id] = max(percent, self.allowed(snapshot_id))
            self._changed.notify_all()

    def wait(self, snapshot_id: str, above: int, timeout: float) -> int:
        """Wait up to ``timeout`` s for the allowance to pass ``above``; return it."""
        with self._changed:
            self._changed.wait_for(lambda: self.allowed(snapshot_id) > above, timeout)
            return self.allowed(snapshot_id)

    def forget(self, snapshot_id: str) -> None:
        with self._changed:
            self._allowed.pop(snapshot_id, None)

    def clear(self) -> None:
        """Back to the defaults (a reset): waiting operations wake and find their jobs gone."""
        with self._changed:
            self._allowed.clear()
            self._changed.notify_all()
