"""Shared fixtures: one real server per test session, plus factories for dedicated ones.

Modules marked ``both_engines`` run every test twice: on SQLite and on a PostgreSQL server
the session starts itself (testkit/postgres.py), each server on a database of its own.
Without PostgreSQL installed those runs are skipped, unless ``LIGHTKEEPER_TEST_POSTGRES=
required`` (CI) makes that a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testkit import postgres
from testkit.server import Account, Server, free_port

pytest_plugins = [
    "tests.support.guest",  # the test guest fixtures: guest, records
    "tests.support.ceph",  # ceph_conf, rbd_options
    "pytester",  # tests/testing: the pytest plugin's own tests run pytest on example files
]

# Modules whose tests run for minutes go first: ``-n 2`` then packs the short tests around
# them instead of leaving one worker idle while the other finishes a crash harness.
LONG_FIRST = (
    "reliability/test_crash_harness.py",
    "vm/",
    "reliability/",
    "lighthouse/test_crash_recovery.py",
    "lighthouse/test_lease_fencing.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def long_first(item: pytest.Item) -> int:
        path = item.path.as_posix()
        return next((n for n, part in enumerate(LONG_FIRST) if f"/tests/{part}" in path), 99)

    items.sort(key=long_first)  # stable: each module's tests stay together, in file order


ENGINES = ("sqlite", "postgresql")
_databases = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_engines: run on SQLite and on PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_engines"):
        metafunc.parametrize("engine", ENGINES, indirect=True, scope="session")


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest) -> str:
    """The database engine of this test's servers: ``sqlite`` unless marked both_engines."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.Postgres]:
    if postgres.bin_dir() is None:
        message = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
        if os.environ.get("LIGHTKEEPER_TEST_POSTGRES") == "required":
            pytest.fail(message)
        pytest.skip(message)
    with postgres.running() as server:
        yield server


def _database(request: pytest.FixtureRequest, engine: str) -> str | None:
    """A new, empty database for one server on ``engine`` (None: SQLite in its data dir)."""
    if engine == "sqlite":
        return None
    server: postgres.Postgres = request.getfixturevalue("postgres_server")
    return server.create_database(f"lk{os.getpid()}_{next(_databases)}")


@pytest.fixture(scope="session")
def server(
    tmp_path_factory: pytest.TempPathFactory, engine: str, request: pytest.FixtureRequest
) -> Iterator[Server]:
    """The shared server (rate limits on, default settings)."""
    srv = Server(
        tmp_path_factory.mktemp("shared") / "data",
        free_port(),
        ("--transition-seconds", "0"),
        database=_database(request, engine),
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def account(server: Server) -> Account:
    return server.create_account("alice")


@pytest.fixture
def make_server(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Server]]:
    """Start a dedicated server with extra ``serve`` arguments; stopped after the test."""
    started: list[Server] = []

    def factory(*args: str, start: bool = True) -> Server:
        database = _database(request, engine)
        srv = Server(tmp_path / f"data{len(started)}", free_port(), args, database=database)
        if start:
            srv.start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()
