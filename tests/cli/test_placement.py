"""Placement and storage pools (issue #13): an instance runs on a node, its disk lives in a
pool; a job is claimed only by a node that reaches what it needs, and waits for one
otherwise. A database of the release before is migrated with its instances unplaced."""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.postgres import Postgres
from testkit.server import Server, free_port

from tests.cli.test_cli import one_line_error
from tests.lighthouse.test_disks_table import _alembic

ARGS = ("--transition-seconds", "0", "--job-lease-seconds", "1.5")


def _pair(data_dirs: tuple[Path, Path], database: str | None = None) -> list[Server]:
    nodes = [
        Server(data_dir, free_port(), ("--node", name, *ARGS), database=database)
        for name, data_dir in zip(("node-a", "node-b"), data_dirs, strict=True)
    ]
    for node in nodes:
        node.start()
    return nodes


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[list[Server]]:
    """Two nodes on one data dir (one SQLite database, one storage pool)."""
    nodes = _pair((tmp_path / "data", tmp_path / "data"))
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture
def apart(postgres_server: Postgres, tmp_path: Path) -> Iterator[tuple[list[Server], str]]:
    """Two nodes on one PostgreSQL database, each with a data dir (a pool) of its own."""
    name = f"placement{time.time_ns() % 10**9}"
    nodes = _pair((tmp_path / "a", tmp_path / "b"), postgres_server.create_database(name))
    yield nodes, postgres_server.conninfo(name)
    for node in nodes:
        node.stop()


def _nodes(server: Server) -> dict[str, dict[str, Any]]:
    return {n["Name"]: n for n in server.admin("node", "list", "--json")}


def _job(conninfo: str, snapshot_or_instance: str) -> dict[str, Any]:
    with psycopg.connect(conninfo) as db:
        cursor = db.execute(
            "SELECT kind, state, node, need_node, need_pool FROM jobs "
            "WHERE snapshot_id = %s OR instance_id = %s ORDER BY id DESC LIMIT 1",
            (snapshot_or_instance, snapshot_or_instance),
        )
        names = [c.name for c in cursor.description or ()]
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def _power(c: Any, action: str, instance_id: str) -> None:
    request = getattr(models, f"{action}Request")()
    request.InstanceIds = [instance_id]
    getattr(c, action)(request)


def _settled(c: Any, instance_id: str, state: str) -> None:
    world.wait_for(
        lambda: world.instance(c, instance_id),
        lambda i: i.InstanceState == state and i.LatestOperationState == "SUCCESS",
    )


def test_a_migrated_database_keeps_its_instances_unplaced(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", free_port(), ARGS)
    server.start()
    try:
        account = world.new_account(server)
        instance_id = world.create_instance(server, account)["InstanceId"]
        server.stop()
        _alembic(server.data_dir, "0011", down=True)  # the schema the release before left
        server.start()
        shown = server.admin("instance", "show", instance_id, "--json")
        assert (shown["Node"], shown["Pool"]) == (None, None)
        c = world.client(server, account)
        _power(c, "StopInstances", instance_id)  # any node runs an unplaced instance
        _settled(c, instance_id, "STOPPED")
        snapshot_id = world.create_snapshot(c, instance_id)
        world.wait_normal(c, snapshot_id)
        with sqlite3.connect(server.data_dir / "lightkeeper.db") as db:
            needs = db.execute("SELECT DISTINCT need_node, need_pool FROM jobs").fetchall()
        assert needs == [(None, None)]
    finally:
        server.stop()


def test_default_placement_and_a_shared_pool(shared: list[Server]) -> None:
    a, b = shared
    listed = _nodes(a)
    pool = listed["node-a"]["Pool"]
    assert pool.startswith("lhpool-") and listed["node-b"]["Pool"] == pool  # one data dir
    assert (a.data_dir / "pool-id").read_text().strip() == pool
    assert (a.data_dir / "pool-id").stat().st_mode & 0o077 == 0
    account = world.new_account(a)
    placed = [world.create_instance(a, account)["Node"] for _ in range(3)]
    assert placed == ["node-a", "node-b", "node-a"]  # the fewest instances, ties by name
    on_b = world.create_instance(a, account, "ap-guangzhou", "--node", "node-b", "--state",
                                 "STOPPED")  # fmt: skip
    assert (on_b["Node"], on_b["Pool"]) == ("node-b", pool)

    # A storage-only job (a snapshot of a STOPPED instance) runs on any node of the pool:
    # with node-b stopped, node-a takes the snapshot of node-b's instance.
    b.stop()
    c = world.client(a, account)
    snapshot_id = world.create_snapshot(c, on_b["InstanceId"])
    world.wait_normal(c, snapshot_id)
    with sqlite3.connect(a.data_dir / "lightkeeper.db") as db:
        row = db.execute(
            "SELECT node, need_node, need_pool FROM jobs WHERE snapshot_id = ?", (snapshot_id,)
        ).fetchone()
    assert row == ("node-a", None, pool)


def test_an_unknown_node_is_refused_and_nothing_created(shared: list[Server]) -> None:
    a, _ = shared
    account = world.new_account(a)
    args = ("--account", account.name, "--region", "ap-guangzhou", "--node", "nowhere")
    result = a.admin("instance", "create", *args, check=False)
    assert "unknown node 'nowhere'" in one_line_error(result, 1)
    c = world.client(a, account)
    assert c.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 0
    assert not list((a.data_dir / "disks").glob("*.img"))


def test_a_job_runs_on_the_node_of_its_instance(apart: tuple[list[Server], str]) -> None:
    """Separate data dirs: node-b's instance is worked on by node-b only, whichever node
    answered the request; while node-b is down its jobs wait, and run once it is back."""
    (a, b), conninfo = apart
    pools = {n: v["Pool"] for n, v in _nodes(a).items()}
    assert pools["node-a"] != pools["node-b"]
    account = world.new_account(a)
    instance_id = b.admin("instance", "create", "--account", account.name, "--region",
                          "ap-guangzhou", "--disk-size", "1", "--node", "node-b",
                          "--json")["InstanceId"]  # fmt: skip
    wrong = a.admin("instance", "create", "--account", account.name, "--region",
                    "ap-guangzhou", "--node", "node-b", check=False)  # fmt: skip
    assert "reaches storage pool" in one_line_error(wrong, 1)  # its disk would be in a's pool
    c = world.client(a, account)  # every request goes to node-a

    _power(c, "StopInstances", instance_id)
    _settled(c, instance_id, "STOPPED")
    job = _job(conninfo, instance_id)
    assert (job["kind"], job["node"], job["need_node"]) == ("StopInstances", "node-b", "node-b")

    snapshot_id = world.create_snapshot(c, instance_id)  # storage only, in node-b's pool
    world.wait_normal(c, snapshot_id)
    job = _job(conninfo, snapshot_id)
    assert (job["node"], job["need_node"], job["need_pool"]) == ("node-b", None, pools["node-b"])

    b.stop(signal.SIGKILL)  # its heartbeat stops: DOWN
    _power(c, "StartInstances", instance_id)  # accepted: it waits for its node
    own = world.create_instance(a, account)["InstanceId"]  # node-a's own work goes on
    assert _nodes(a)["node-b"]["Pool"] == pools["node-b"]
    _power(c, "StopInstances", own)
    _settled(c, own, "STOPPED")
    assert _job(conninfo, instance_id)["state"] == "PENDING"
    assert world.instance(c, instance_id).InstanceState == "STARTING"  # as last recorded

    b.start()
    _settled(c, instance_id, "RUNNING")
    assert _job(conninfo, instance_id)["node"] == "node-b"
