"""Open the database and bring its schema to the newest migration.

SQLite is the embedded default (WAL, a busy timeout, foreign keys on); PostgreSQL
(``postgresql+psycopg://``, psycopg 3) lets several servers share one database. Both give
the transactions the same meaning, which is what the rules rely on:

* a write transaction holds the database's one write lock from its start to its commit
  (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-scoped advisory lock taken first),
  so a check-then-insert such as the snapshot quota never interleaves with another, on any
  node; waiting for it is bounded by the caller's lock timeout;
* a read transaction sees one snapshot (SQLite's deferred transaction; PostgreSQL's
  REPEATABLE READ), so a count and the page it describes agree.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from lightkeeper.sockets import has_input
from lightkeeper.store.group_commit import QueueTimeout, WriterGroup

MIGRATIONS = Path(__file__).with_name("migrations")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'lightkeeper.db'}"


class UnsupportedDatabase(ValueError):
    """A database URL of an engine Lightkeeper does not run on."""


_EXPECTED = "use sqlite:///PATH or postgresql://USER@HOST/DATABASE"


def normalise_url(url: str) -> str:
    """``sqlite:///path`` or ``postgresql+psycopg://...``; plain ``postgresql://`` and
    ``postgres://`` mean psycopg 3, the one PostgreSQL driver installed."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UnsupportedDatabase(f"not a database URL ({_EXPECTED})") from None
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return url
    raise UnsupportedDatabase(f"unsupported database {parsed.drivername!r} ({_EXPECTED})")


def shown_url(url: str) -> str:
    """A database URL as logs and errors may show it: its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparsable URL)"


DEFAULT_LOCK_TIMEOUT = 10.0


class StoreUnavailable(Exception):
    """The database file the engine opened is no longer the one at its path (deleted or
    replaced under a running process): a write committed now would be lost, so it is refused."""


@dataclass
class StoreState:
    """What one SQLite engine knows about its file and its writes, for ``write`` and health."""

    path: Path | None = None  # None: not a file database (PostgreSQL, :memory:)
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file first opened
    failure: str | None = None  # why the last write failed (not a lock timeout), if it did
    failed_at: float = 0.0

    def remember_file(self) -> None:
        if self.path is not None and self.identity is None:
            found = os.stat(self.path)
            self.identity = (found.st_dev, found.st_ino)

    def file_problem(self) -> str | None:
        """Whether the path still names the file this process opened (one stat call)."""
        if self.path is None or self.identity is None:
            return None
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return f"database file {self.path} was deleted while in use"
        except OSError as exc:
            return f"database file {self.path} cannot be checked: {exc.strerror}"
        if (found.st_dev, found.st_ino) != self.identity:
            return f"database file {self.path} was replaced by another file while in use"
        return None

    def record(self, failure: str | None) -> None:
        self.failure = failure
        if failure is not None:
            self.failed_at = time.monotonic()


def _sqlite_pragmas(state: StoreState) -> Callable[[Any, ConnectionPoolEntry], None]:
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite would defer it).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        state.remember_file()  # the file exists now (journal_mode opened it)

    return on_connect


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


# The writers of each engine in this process (see ``write``), made with the engine.
_GROUPS: WeakKeyDictionary[Engine, WriterGroup] = WeakKeyDictionary()
_STATES: WeakKeyDictionary[Engine, StoreState] = WeakKeyDictionary()


def store_state(engine: Engine) -> StoreState:
    """The engine's file identity and last write outcome (an empty state for engines made
    elsewhere)."""
    state = _STATES.get(engine)
    if state is None:
        state = _STATES.setdefault(engine, StoreState())
    return state


def sqlite_path(engine: Engine) -> Path | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def reads_are_local(engine: Engine) -> bool:
    """SQLite: a read is a read of a local file, cheap enough to run on the event loop
    (no worker-thread hop); a networked database's reads would block it."""
    return engine.dialect.name == "sqlite"


def open_engine(url: str, pool_size: int = 8, max_overflow: int = 8) -> Engine:
    """An engine with the pragmas and transaction behaviour every connection needs.

    ``pool_size``: PostgreSQL connections kept open; ``max_overflow``: how many more may be
    opened under load. Their sum must cover every thread that can ask for one at once (the
    server sizes them from its job workers and the API's thread pool): a request that waits
    for a pooled connection longer than the pool timeout is an InternalError. SQLite needs
    no bound."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": DEFAULT_LOCK_TIMEOUT}
        )
        state = _STATES[engine] = StoreState(path=sqlite_path(engine))
        event.listen(engine, "connect", _sqlite_pragmas(state))
        event.listen(engine, "begin", _sqlite_begin)
        _GROUPS[engine] = _new_group(engine, state)
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=DEFAULT_LOCK_TIMEOUT,
        pool_recycle=3600,
        isolation_level="READ COMMITTED",
    )
    state = _STATES[engine] = StoreState()
    _GROUPS[engine] = _new_group(engine, state)
    event.listen(engine, "begin", _postgresql_begin)
    event.listen(engine, "checkout", _replace_if_cut)
    return engine


def _replace_if_cut(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    """A pooled connection the server cut (a restart, a shutdown, a terminated backend) is
    replaced, not used: the server sends each client an error before it closes, so an idle
    connection with bytes (or the end of the stream) waiting on its socket is dead, and a
    live idle one has nothing to read. One ``poll`` instead of SQLAlchemy's pre-ping, which
    cost a round trip on every checkout (docs/performance.md). A connection lost without
    notice (a network partition) fails its statement, which SQLAlchemy then invalidates."""
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the connection is closed")
    if has_input(dbapi_connection.fileno()):
        raise DisconnectionError("the server closed the connection")


def psycopg_params(url: str | URL) -> dict[str, Any]:
    """``psycopg.connect`` keywords for a PostgreSQL URL (a unix socket directory given as
    ``?host=``, as in ``postgresql://user@/db?host=/run/postgresql``): for the connections
    that live outside the engine's pool."""
    parsed = make_url(url) if isinstance(url, str) else url
    params: dict[str, Any] = {
        "host": parsed.query.get("host", parsed.host),
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    return {k: v for k, v in params.items() if v is not None}


# The key of the advisory lock every write transaction takes first ("LKWR").
WRITE_LOCK_KEY = 0x4C4B5752


def _postgresql_begin(conn: Connection) -> None:
    """The write lock (see the module docstring) or a read snapshot, from the start of the
    transaction. The isolation level goes into the BEGIN psycopg sends with the first
    statement (a round trip less than a SET TRANSACTION of its own); psycopg keeps it on the
    pooled connection, so every transaction sets its own. ``SET LOCAL`` ends with it."""
    from psycopg import IsolationLevel  # (PostgreSQL only: SQLite servers never import it)

    options = conn.get_execution_options()
    raw = conn.connection.dbapi_connection
    assert raw is not None  # a connection inside "begin" is always checked out
    autonomous = options.get("autonomous")  # one atomic statement of its own (store/shared.py)
    writes = options.get("write") and not autonomous
    # a read snapshot, or the server's default (READ COMMITTED) for writers and autonomous ones
    raw.isolation_level = None if writes or autonomous else IsolationLevel.REPEATABLE_READ
    if not writes:
        return
    timeout = float(options.get("lock_timeout", DEFAULT_LOCK_TIMEOUT))
    # Two statements in one round trip (psycopg sends a query without parameters as a
    # simple query, which may hold several).
    statement = (
        f"SET LOCAL lock_timeout = {max(int(timeout * 1000), 1)}; "
        f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})"
    )
    cursor = raw.cursor()
    try:
        cursor.execute(statement)
    except conn.dialect.loaded_dbapi.Error as exc:
        # As for SQLite: callers catch SQLAlchemy's errors, which SQLAlchemy only wraps
        # around its own statements (a lock timeout is the quota lock timing out).
        raise DBAPIError.instance(
            statement,
            None,
            exc,
            conn.dialect.loaded_dbapi.Error,
            connection_invalidated=conn.dialect.is_disconnect(exc, raw, cursor),
        ) from exc
    finally:
        cursor.close()


REFUSED = ("connection failed", "connection is bad")  # psycopg 3's connect errors


def is_disconnect(exc: BaseException) -> bool:
    """The database cut the connection (restarted, or the network failed), or refused a new
    one (still shutting down or starting up): nothing was committed by the failed statement,
    and a new connection will be made for the next. A refused connect fails before any
    statement, and SQLAlchemy does not mark it invalidated: psycopg's "connection failed" /
    "connection is bad"."""
    if not isinstance(exc, DBAPIError):
        return False
    refused = exc.statement is None and str(exc.orig).startswith(REFUSED)
    return exc.connection_invalidated or refused


@contextmanager
def write(engine: Engine, lock_timeout: float | None = None) -> Iterator[Connection]:
    """A write transaction that holds the database write lock from its first statement,
    and is durable once the ``with`` block has exited without an exception.

    A process's writers first queue on a lock of their own, which hands over at once (on
    SQLite, waiting at BEGIN IMMEDIATE would poll with sleeps of up to 100 ms; measured in
    docs/performance.md), and writers that queue together share one transaction and one
    commit (``store/group_commit.py``); the database's lock still orders processes and
    nodes. The time spent queueing counts against ``lock_timeout``. A write inside another
    write of the same engine on the same thread raises ``NestedWrite``.

    A write to a database file that was deleted or replaced since it was opened raises
    ``StoreUnavailable`` instead of committing into a file nobody will read again. Each
    write's outcome (failed for a reason other than a lock timeout, or not) is remembered
    for the health check (store/health.py).
    """
    timeout = DEFAULT_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
    try:
        with writer_group(engine).write(timeout) as conn:
            yield conn
    except QueueTimeout:
        locked = sqlite3.OperationalError("database is locked")
        raise OperationalError("BEGIN", None, locked) from None


def writer_group(engine: Engine) -> WriterGroup:
    """The engine's writers in this process (made with the engine by ``open_engine``)."""
    group = _GROUPS.get(engine)
    if group is None:
        group = _GROUPS.setdefault(engine, _new_group(engine, store_state(engine)))
    return group


def _new_group(engine: Engine, state: StoreState) -> WriterGroup:
    def check() -> None:
        problem = state.file_problem()
        if problem is not None:
            raise StoreUnavailable(problem)

    def begin(lock_timeout: float) -> Connection:
        conn = engine.connect().execution_options(write=True, lock_timeout=lock_timeout)
        try:
            conn.begin()
            check()
        except BaseException:
            conn.close()
            raise
        return conn

    def outcome(exc: BaseException | None) -> None:
        if exc is None:
            state.record(None)
        elif isinstance(exc, OperationalError) and not is_lock_timeout(exc):
            state.record(one_line(exc))  # a busy database is not a broken one

    return WriterGroup(begin, outcome, check)


def one_line(exc: BaseException) -> str:
    """A database error as one line: the driver's message, without SQLAlchemy's statement,
    parameters and "Background on this error" link."""
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def is_lock_timeout(exc: BaseException) -> bool:
    """SQLite's "database is locked" / PostgreSQL's lock_not_available (55P03)."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlstate", None) == "55P03":
        return True
    text = str(orig).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "lock timeout" in text)


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
