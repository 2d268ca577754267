"""Group commit (store/group_commit.py, issue #13): writers that queue for the write lock share
one transaction and one commit, on SQLite and on PostgreSQL alike, and lose none of what one
transaction each gave them: a writer's ``write`` returns only once its work is durable, a
writer whose work fails takes only its own statements with it, and a commit that fails fails
every writer whose work it held."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError
from testkit.postgres import Postgres

from lightkeeper.store import group_commit
from lightkeeper.store.database import (
    StoreUnavailable,
    is_disconnect,
    is_lock_timeout,
    open_engine,
    sqlite_url,
    write,
    writer_group,
)
from lightkeeper.store.group_commit import NestedWrite

SCHEMA = (
    "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE item (id INTEGER PRIMARY KEY, writer TEXT NOT NULL)",
    # checked at COMMIT: what makes a commit itself fail, on both engines
    "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER"
    " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    # A batch stays open for as long as writers queue: the commit counts below do not
    # depend on how fast a loaded machine schedules the threads.
    monkeypatch.setattr(group_commit, "MAX_AGE", 60.0)
    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
    else:
        server: Postgres = request.getfixturevalue("postgres_server")
        url = server.create_database(f"group{time.time_ns() % 10**9}")
    engine = open_engine(url)
    with write(engine) as conn:
        for statement in SCHEMA:
            conn.exec_driver_sql(statement)
    yield engine
    engine.dispose()


def _commits(engine: Engine) -> list[float]:
    commits: list[float] = []
    event.listen(engine, "commit", lambda _conn: commits.append(time.monotonic()))
    return commits


def _rows(engine: Engine, table: str = "item") -> set[int]:
    """What a new connection sees: only what was committed."""
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(text(f"SELECT id FROM {table}"))}


def _insert(conn: Connection, n: int, writer: str = "w") -> None:
    conn.execute(text("INSERT INTO item (id, writer) VALUES (:n, :w)"), {"n": n, "w": writer})


def _queued(engine: Engine, count: int) -> None:
    deadline = time.monotonic() + 10
    while writer_group(engine).queued < count:
        assert time.monotonic() < deadline, f"{count} writers never queued"
        time.sleep(0.001)


def _in_thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # handed to the test, which asserts on it
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _batch_held_open(
    engine: Engine, n: int = 1
) -> tuple[threading.Thread, list[BaseException], threading.Event]:
    """A writer that inserts row ``n`` and keeps its batch open until the event returned is
    set; returned once it holds the batch."""
    holding, may_end = threading.Event(), threading.Event()

    def hold() -> None:
        with write(engine) as conn:
            _insert(conn, n, "holder")
            holding.set()
            assert may_end.wait(10)

    thread, errors = _in_thread(hold)
    assert holding.wait(10)
    return thread, errors, may_end


def test_queued_writers_share_one_commit_and_each_returns_durable(engine: Engine) -> None:
    commits = _commits(engine)
    seen_after_return: dict[int, bool] = {}

    def writer(n: int) -> None:
        with write(engine) as conn:
            _insert(conn, n)
        seen_after_return[n] = n in _rows(engine)

    first, errors, gate_may_end = _batch_held_open(engine, 0)
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(1, 24)]
    for thread in threads:
        thread.start()
    _queued(engine, 23)
    gate_may_end.set()
    for thread in [first, *threads]:
        thread.join()
    assert errors == []
    assert seen_after_return == dict.fromkeys(range(1, 24), True)
    assert _rows(engine) == set(range(24))
    assert len(commits) == 1


def test_a_failing_writer_takes_only_its_own_statements(engine: Engine) -> None:
    commits = _commits(engine)

    def failing() -> None:
        with write(engine) as conn:
            _insert(conn, 2, "failing")
            _insert(conn, 1, "failing")  # a duplicate key: fails (and aborts, on PostgreSQL)

    def last() -> None:
        with write(engine) as conn:
            _insert(conn, 3, "last")

    one, one_errors, first_may_end = _batch_held_open(engine)
    two, two_errors = _in_thread(failing)
    _queued(engine, 1)
    three, three_errors = _in_thread(last)
    _queued(engine, 2)
    first_may_end.set()
    for thread in (one, two, three):
        thread.join()
    assert (one_errors, three_errors) == ([], [])
    assert [type(e) for e in two_errors] == [IntegrityError]
    assert _rows(engine) == {1, 3}
    assert len(commits) == 1  # the three writers were one transaction


def test_a_failed_commit_fails_every_writer_of_its_batch(engine: Engine) -> None:
    def dangling() -> None:
        with write(engine) as conn:  # valid until the deferred check at COMMIT
            conn.execute(text("INSERT INTO child (id, parent_id) VALUES (1, 99)"))

    one, one_errors, first_may_end = _batch_held_open(engine)
    two, two_errors = _in_thread(dangling)
    _queued(engine, 1)
    first_may_end.set()
    one.join()
    two.join()
    assert [type(e) for e in one_errors] == [IntegrityError]
    assert [type(e) for e in two_errors] == [IntegrityError]
    assert _rows(engine) == set()
    assert _rows(engine, "child") == set()
    with write(engine) as conn:  # and the next writers commit as usual
        _insert(conn, 5)
    assert _rows(engine) == {5}


def test_a_writer_that_cannot_queue_in_time_gets_a_lock_timeout(engine: Engine) -> None:
    one, one_errors, release = _batch_held_open(engine)
    started = time.monotonic()
    with pytest.raises(OperationalError) as raised, write(engine, lock_timeout=0.2):
        pass
    assert is_lock_timeout(raised.value)
    assert time.monotonic() - started >= 0.2
    release.set()
    one.join()
    assert one_errors == []
    assert _rows(engine) == {1}


def test_a_write_inside_a_write_fails_at_once(engine: Engine) -> None:
    with pytest.raises(NestedWrite), write(engine) as conn:
        _insert(conn, 1)
        with write(engine):
            pass
    assert _rows(engine) == set()
    with write(engine) as conn:
        _insert(conn, 2)
    assert _rows(engine) == {2}


def test_a_connection_lost_under_a_batch_is_a_lost_connection_for_every_writer(
    postgres_server: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writers of a batch share its connection: when a batch mate's statement finds it
    cut (a database restart), every writer in the batch must see a lost connection — what
    the worker resumes a job after — not some other error that would fail the job."""
    monkeypatch.setattr(group_commit, "MAX_AGE", 60.0)
    url = postgres_server.create_database(f"cut{time.time_ns() % 10**9}")
    engine = open_engine(url)
    with write(engine) as conn:
        conn.exec_driver_sql(SCHEMA[1])
    first_may_end = threading.Event()
    backend: list[int] = []

    def first() -> None:
        with write(engine) as conn:
            _insert(conn, 1)
            backend.append(int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()))
            assert first_may_end.wait(10)

    def cut_mid_work() -> None:
        with write(engine) as conn:
            with psycopg.connect(postgres_server.conninfo(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", backend)
            _insert(conn, 2)

    one, one_errors = _in_thread(first)
    time.sleep(0.05)
    two, two_errors = _in_thread(cut_mid_work)
    _queued(engine, 1)
    first_may_end.set()
    one.join()
    two.join()
    assert len(one_errors) == 1 and is_disconnect(one_errors[0]), one_errors
    assert len(two_errors) == 1 and is_disconnect(two_errors[0]), two_errors
    with write(engine) as conn:  # the pool replaced the connection
        _insert(conn, 3)
    assert _rows(engine) == {3}
    engine.dispose()


def test_a_batch_is_not_committed_into_a_database_file_deleted_under_it(tmp_path: Path) -> None:
    """The file is checked again right before the commit, not only at the batch's BEGIN:
    a writer that joined the batch later would otherwise commit into a deleted file."""
    engine = open_engine(sqlite_url(tmp_path))
    with write(engine) as conn:
        conn.exec_driver_sql(SCHEMA[1])
    with pytest.raises(StoreUnavailable), write(engine) as conn:
        _insert(conn, 1)
        (tmp_path / "lightkeeper.db").rename(tmp_path / "moved.db")
    engine.dispose()
