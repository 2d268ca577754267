"""Rate-limit counts and v1 nonces kept in the database, for the nodes of one PostgreSQL
database to count together: a limit of 20 a second then means 20 whichever nodes the
requests reach, and a v1 request replayed to another node is refused there too.

Each is one statement on a pooled connection, outside the database's write lock (the
upsert is atomic by itself) and in its own short transaction. Rows of past seconds and
expired nonces are deleted by whichever node comes by first after a while.
"""

from __future__ import annotations

import hashlib
import threading

from sqlalchemy import Connection, Engine, delete
from sqlalchemy.dialects.postgresql import insert

from lightkeeper.store.tables import rate_counts, replay_nonces

KEEP_SECONDS = 5  # rows of older seconds are deleted
NONCE_PRUNE_SECONDS = 10.0


class _Every:
    """True at most once per ``interval`` (of whatever clock the caller passes): which
    request of this node also deletes the rows that ran out."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last = 0.0
        self._lock = threading.Lock()

    def due(self, now: float) -> bool:
        with self._lock:
            if now - self._last < self._interval:
                return False
            self._last = now
            return True


class DatabaseCounts:
    """``api.ratelimit.Counts`` in ``rate_counts``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._prune = _Every(KEEP_SECONDS)

    def add(self, key: tuple[str, str, str], second: int) -> int:
        action, region, principal = key
        row = insert(rate_counts).values(
            second=second, action=action, region=region, principal=principal, count=1
        )
        statement = row.on_conflict_do_update(
            index_elements=[c.name for c in rate_counts.primary_key.columns],
            set_={"count": rate_counts.c.count + 1},
        ).returning(rate_counts.c.count)
        with _autonomous(self._engine) as conn:
            count = int(conn.execute(statement).scalar_one())
            if self._prune.due(second):
                conn.execute(
                    delete(rate_counts).where(rate_counts.c.second < second - KEEP_SECONDS)
                )
            conn.commit()
        return count


class DatabaseNonces:
    """``api.auth.Nonces`` in ``replay_nonces`` (keyed by a digest: nonces have no length
    limit of their own)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._prune = _Every(NONCE_PRUNE_SECONDS)

    def first_use(self, key: tuple[str, str, str], expires: float, now: float) -> bool:
        digest = hashlib.sha256("\0".join(key).encode()).hexdigest()
        row = insert(replay_nonces).values(digest=digest, expires_at=expires)
        statement = row.on_conflict_do_update(
            index_elements=[replay_nonces.c.digest],
            set_={"expires_at": expires},
            where=replay_nonces.c.expires_at <= now,  # a nonce seen long ago may come again
        ).returning(replay_nonces.c.digest)
        with _autonomous(self._engine) as conn:
            first = conn.execute(statement).first() is not None
            if self._prune.due(now):
                conn.execute(delete(replay_nonces).where(replay_nonces.c.expires_at <= now))
            conn.commit()
        return first


def _autonomous(engine: Engine) -> Connection:
    """A pooled connection whose transaction takes neither the write lock nor a snapshot
    (store/database.py: ``autonomous``)."""
    return engine.connect().execution_options(autonomous=True)


def shared_counters(engine: Engine) -> tuple[DatabaseCounts, DatabaseNonces] | None:
    """What the nodes of this database count together, or None where one node counts in
    memory (SQLite: the embedded, single-node store)."""
    if engine.dialect.name != "postgresql":
        return None
    return DatabaseCounts(engine), DatabaseNonces(engine)
