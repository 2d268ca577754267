"""Whether the store can take writes: what ``/healthz`` and ``lightkeeper_store_writable``
report.

``/healthz`` is polled, so the answer must be cheap and must never wait for a lock. It is made
of three checks, each a syscall or a memory read:

* the database file is still the one the engine opened (one ``stat``; see ``StoreState``);
* the data dir's filesystem is writable and has at least ``MIN_FREE_BYTES`` left (one
  ``statvfs``: a commit needs room for a few WAL pages, a snapshot far more);
* the last database write did not fail for a reason other than a lock timeout (remembered by
  ``database.write``). Once one has failed, a background probe (a one-row write to
  ``store_probe``, at most once per ``PROBE_INTERVAL``) finds out when writes work again, so
  a server that is not written to still recovers its health.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from sqlalchemy import Engine, update
from sqlalchemy.exc import SQLAlchemyError

from lightkeeper.store.database import StoreUnavailable, store_state, write
from lightkeeper.store.tables import store_probe

MIN_FREE_BYTES = 1024 * 1024
PROBE_INTERVAL = 1.0
PROBE_LOCK_TIMEOUT = 1.0


class StoreHealth:
    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self._state = store_state(engine)
        self._probing = threading.Lock()
        self._last_probe = 0.0

    def problem(self) -> str | None:
        """Why the store cannot take writes now, or None."""
        state = self._state
        found = state.file_problem() or self._space_problem()
        if found is not None:
            return found
        if state.failure is None:
            return None
        self._probe_soon()
        return f"the last database write failed: {state.failure}"

    def writable(self) -> float:
        """The ``lightkeeper_store_writable`` gauge: 1 or 0."""
        return 0.0 if self.problem() else 1.0

    def _space_problem(self) -> str | None:
        try:
            fs = os.statvfs(self.data_dir)
        except OSError as exc:
            return f"data dir {self.data_dir} cannot be checked: {exc.strerror}"
        if fs.f_flag & os.ST_RDONLY:
            return f"data dir {self.data_dir} is on a read-only filesystem"
        # root may use the blocks a filesystem reserves for it; everyone else may not
        blocks = fs.f_bfree if os.geteuid() == 0 else fs.f_bavail
        free = blocks * fs.f_frsize
        if free < MIN_FREE_BYTES:
            return f"no space left on the data dir's filesystem ({free} bytes free)"
        return None

    def _probe_soon(self) -> None:
        now = time.monotonic()
        if now - self._last_probe < PROBE_INTERVAL or not self._probing.acquire(blocking=False):
            return
        self._last_probe = now
        threading.Thread(target=self._probe, name="store-probe", daemon=True).start()

    def _probe(self) -> None:
        """One tiny real write; ``database.write`` records its outcome either way."""
        try:
            with write(self.engine, PROBE_LOCK_TIMEOUT) as conn:
                conn.execute(update(store_probe).values(probed_at=time.time()))
        except (SQLAlchemyError, StoreUnavailable):
            pass  # recorded (a lock timeout is not: busy is not broken)
        finally:
            self._probing.release()
