"""Open the database and bring its schema to the newest migration.

SQLite is the embedded default (WAL, a busy timeout, foreign keys on); any SQLAlchemy URL
works, e.g. ``postgresql+psycopg://`` for several servers sharing one database.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).with_name("migrations")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'lightkeeper.db'}"


DEFAULT_LOCK_TIMEOUT = 10.0


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite would defer it).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """``BEGIN IMMEDIATE`` for writers: they serialise at BEGIN (across processes too), so a
    check-then-insert such as the snapshot quota can never interleave with another one.

    Sent on the DBAPI connection, and the busy timeout only when it changes (remembered in
    the pooled connection's ``info``): this runs once per transaction, reads included, and
    two SQLAlchemy statements here were 14 % of a DescribeSnapshots.
    """
    options = conn.get_execution_options()
    timeout_ms = int(float(options.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)) * 1000)
    pooled = conn.connection
    raw = pooled.dbapi_connection
    assert raw is not None  # a connection inside "begin" is always checked out
    if pooled.info.get("busy_timeout_ms") != timeout_ms:
        raw.execute(f"PRAGMA busy_timeout={timeout_ms}")
        pooled.info["busy_timeout_ms"] = timeout_ms
    statement = "BEGIN IMMEDIATE" if options.get("write") else "BEGIN"
    try:
        raw.execute(statement)
    except sqlite3.OperationalError as exc:
        # SQLAlchemy wraps driver errors only around its own statements; callers catch its
        # OperationalError (a lock timeout here is the quota lock timing out).
        raise OperationalError(statement, None, exc) from exc


# The writers' queue of each SQLite engine (see ``write``), made with the engine.
_WRITERS: WeakKeyDictionary[Engine, threading.RLock] = WeakKeyDictionary()


def open_engine(url: str) -> Engine:
    """An engine with the pragmas and transaction behaviour every connection needs."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": DEFAULT_LOCK_TIMEOUT}
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        _WRITERS[engine] = threading.RLock()
        return engine
    return create_engine(url, pool_pre_ping=True)


@contextmanager
def write(engine: Engine, lock_timeout: float | None = None) -> Iterator[Connection]:
    """A write transaction that holds the database write lock from its first statement.

    On SQLite, a process's writers first queue on a lock of their own: SQLite's busy handler
    polls with sleeps of up to 100 ms, so threads of one process that all wait at BEGIN
    IMMEDIATE waste most of the lock's free time (creates at saturation: p99 in seconds).
    The thread lock hands over at once; SQLite's lock still orders processes. The time spent
    waiting for it counts against ``lock_timeout``.
    """
    timeout = DEFAULT_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    lock = _WRITERS.get(engine)
    if lock is None:  # not SQLite: the database's own lock wait hands over
        with _transaction(engine, timeout) as conn:
            yield conn
        return
    remaining = timeout  # unchanged when the lock is free: the busy timeout stays as it was
    if not lock.acquire(blocking=False):
        started = time.monotonic()
        if not lock.acquire(timeout=timeout):
            locked = sqlite3.OperationalError("database is locked")
            raise OperationalError("BEGIN IMMEDIATE", None, locked)
        remaining = max(timeout - (time.monotonic() - started), 0.001)
    try:
        with _transaction(engine, remaining) as conn:
            yield conn
    finally:
        lock.release()


@contextmanager
def _transaction(engine: Engine, lock_timeout: float) -> Iterator[Connection]:
    options = {"write": True, "lock_timeout": lock_timeout}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        yield conn


def is_lock_timeout(exc: BaseException) -> bool:
    """SQLite's "database is locked" / PostgreSQL's lock_not_available."""
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "lock" in text)


def head_revision() -> str:
    """Revisions are numbered files (``0002_….py``), so the head is the highest number."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except DBAPIError:  # no table yet
        return None


def migrate(engine: Engine) -> None:
    """Apply every pending Alembic migration (idempotent, safe while a server runs).

    Alembic is imported only when there is something to do: it costs ~0.2 s of start-up.
    """
    if current_revision(engine) == head_revision():
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with write(engine) as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def secure_file(path: Path) -> None:
    """Database files hold SecretKeys: owner-only."""
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if candidate.exists():
            os.chmod(candidate, 0o600)
