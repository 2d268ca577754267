"""Each server is a node of its database: registered under ``--node`` with a heartbeat,
listed by ``admin node list`` (UP, STOPPED after a clean stop, DOWN once its heartbeat is
three intervals old), its name its own while it lives (issue #13)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from testkit import world
from testkit.server import Server, free_port, run_cli

from tests.cli.test_cli import one_line_error

pytestmark = pytest.mark.both_engines  # SQLite and PostgreSQL (tests/conftest.py)

LEASE = ("--job-lease-seconds", "1.5")  # heartbeat every 0.5 s: DOWN after 1.5 s


def _nodes(server: Server) -> dict[str, dict[str, Any]]:
    return {n["Name"]: n for n in server.admin("node", "list", "--json")}


def _wait(probe: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_nodes_register_beat_and_stop(make_server: Callable[..., Server]) -> None:
    first = make_server("--node", "alpha", "--operation-seconds", "3", *LEASE)
    second = Server(first.data_dir, free_port(), ("--node", "beta", *first.args[2:]),
                    database=first.database)  # fmt: skip
    second.start()
    try:
        listed = _nodes(first)
        assert set(listed) == {"alpha", "beta"}
        assert listed["alpha"]["Address"] == first.endpoint
        assert listed["beta"]["Address"] == second.endpoint
        assert {n["State"] for n in listed.values()} == {"UP"}
        assert {(n["Storage"], n["Compute"]) for n in listed.values()} == {("raw", "null")}
        assert listed["alpha"]["LastHeartbeat"].endswith("Z")

        # A job shows on the node that runs it.
        account = world.new_account(first)
        instance = world.create_instance(first, account)["InstanceId"]
        world.create_snapshot(world.client(first, account), instance)
        _wait(lambda: sum(n["RunningJobs"] for n in _nodes(first).values()) == 1)
        metrics = httpx.get(f"{first.url}/metrics").text
        assert 'lightkeeper_jobs{node="' in metrics and "lightkeeper_node_heartbeat_age" in metrics

        # The name is taken while its server lives: a second "alpha" is refused in one line.
        result = run_cli("serve", "--port", str(free_port()), "--node", "alpha",
                         data_dir=first.data_dir, database=first.database, check=False)  # fmt: skip
        assert "already served by pid" in one_line_error(result, 2)

        second.stop()  # SIGTERM: a clean stop says so
        assert _nodes(first)["beta"]["State"] == "STOPPED"
        first.stop(signal.SIGKILL)  # a crash says nothing: its heartbeat just stops
        _wait(lambda: _nodes(second)["alpha"]["State"] == "DOWN")
    finally:
        second.stop()


def test_a_bad_node_name_is_one_line(make_server: Callable[..., Server]) -> None:
    server = make_server(start=False)
    result = run_cli("serve", "--node", "-bad name", data_dir=server.data_dir, check=False)
    assert "invalid node" in one_line_error(result, 2)


def test_nodes_starting_together_on_an_empty_database_make_one_account(
    make_server: Callable[..., Server],
) -> None:
    """The README's recipe starts its nodes at once: on an empty database each asks whether
    an account exists and creates ``default`` if not. Asked apart from the creation, two
    nodes could both see none, and the slower one failed to start ("already exists")."""
    nodes = [make_server("--node", f"n{n}", start=False) for n in range(3)]
    for node in nodes[1:]:  # one data dir, one database
        node.data_dir, node.database = nodes[0].data_dir, nodes[0].database
    with ThreadPoolExecutor(len(nodes)) as pool:
        list(pool.map(lambda node: node.start(), nodes))
    banners = [node for node in nodes if "was created" in node.log()]
    assert len(banners) == 1, [node.log()[-300:] for node in nodes]
    assert [a["Name"] for a in nodes[2].admin("account", "list", "--json")] == ["default"]
    assert {n["State"] for n in _nodes(nodes[0]).values()} == {"UP"}
