"""Faults armed by a test (the control API's ``faults``, like LocalStack's chaos API): the next
``count`` calls of an action, or the next ``count`` of its jobs, fail with a given error code,
or (``delay``) are held that long first, so a client's timeout fires.

One registry of armed faults keyed by a name; the API front end takes the call faults of an
action before running it, the job worker takes the job faults of the action that queued the
job. Nothing is armed unless a test arms it, and taking from an empty registry is one
dictionary lookup.
"""

from __future__ import annotations

import string
import threading
import time
from dataclasses import dataclass
from typing import Literal

from lightkeeper.errors import LANGUAGES, ApiError, catalogue

Target = Literal["call", "job"]


@dataclass(frozen=True)
class Fault:
    code: str | None
    """The error code answered (a catalogue code); None: only ``delay``."""
    delay: float = 0.0
    """Seconds the call is held before it is answered or run."""

    def strike(self, request_id: str = "") -> None:
        """Hold the caller ``delay`` seconds, then raise the error, if any."""
        if self.delay:
            time.sleep(self.delay)
        if self.code is not None:
            raise injected_error(self.code, request_id)


def injected_error(code: str, request_id: str = "") -> ApiError:
    """``code`` with its catalogue message; the template's parameters (but the RequestId)
    say it was injected."""
    entry = catalogue()[code]
    fields = {
        name
        for language in LANGUAGES
        for _, name, _, _ in string.Formatter().parse(entry.get(language, ""))
        if name
    }
    params = dict.fromkeys(fields, "(injected fault)")
    if "request_id" in params and request_id:
        params["request_id"] = request_id
    return ApiError(code, **params)


class FaultError(ValueError):
    """A fault that cannot be armed (unknown code, bad count)."""


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[tuple[Target, str], list[Fault]] = {}

    def arm(
        self,
        target: Target,
        action: str,
        code: str | None,
        count: int = 1,
        delay: float = 0.0,
    ) -> None:
        if code is not None and code not in catalogue():
            raise FaultError(f"{code!r} is not an error code of the catalogue")
        if code is None and delay <= 0:
            raise FaultError("a fault needs an error code, a delay, or both")
        if not 1 <= count <= 10_000 or not 0 <= delay <= 3600:
            raise FaultError("count must be 1..10000 and delay 0..3600 seconds")
        with self._lock:
            self._armed.setdefault((target, action), []).extend([Fault(code, delay)] * count)

    def take(self, target: Target, action: str) -> Fault | None:
        """The next armed fault of ``action`` (used up), or None."""
        if not self._armed:
            return None
        with self._lock:
            queue = self._armed.get((target, action))
            if not queue:
                return None
            fault = queue.pop(0)
            if not queue:
                del self._armed[(target, action)]
            return fault

    def armed(self) -> bool:
        return bool(self._armed)

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def listing(self) -> list[dict[str, object]]:
        with self._lock:
            return [
                {"target": target, "action": action, "code": f.code, "delay": f.delay}
                for (target, action), queue in self._armed.items()
                for f in queue
            ]
