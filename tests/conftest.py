"""Shared fixtures: one real server per test session, plus factories for dedicated ones."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from testkit.server import Account, Server, free_port

pytest_plugins = ["tests.support.guest"]  # the test guest fixtures: guest, records

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


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server (rate limits on, default settings)."""
    srv = Server(
        tmp_path_factory.mktemp("shared") / "data", free_port(), ("--transition-seconds", "0")
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def account(server: Server) -> Account:
    return server.create_account("alice")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start a dedicated server with extra ``serve`` arguments; stopped after the test."""
    started: list[Server] = []

    def factory(*args: str, start: bool = True) -> Server:
        srv = Server(tmp_path / f"data{len(started)}", free_port(), args)
        if start:
            srv.start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()
