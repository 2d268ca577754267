"""PostgreSQL as the store: what only a database server can do to a node. Restarted under a
running job and a stream of requests, it costs the requests in flight at most an
``InternalError`` envelope; the server reconnects by itself and the job finishes (issue #13)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import clients, world
from testkit.postgres import Postgres
from testkit.server import Server, free_port


@pytest.fixture
def pg_server(postgres_server: Postgres, tmp_path: Path) -> Server:
    database = postgres_server.create_database(f"restart{time.time_ns() % 10**9}")
    server = Server(
        tmp_path / "data",
        free_port(),
        ("--transition-seconds", "0", "--operation-seconds", "4", "--no-rate-limit"),
        database=database,
    )
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


def _describe(c: object) -> str:
    try:
        c.DescribeSnapshots(models.DescribeSnapshotsRequest())  # type: ignore[attr-defined]
        return "ok"
    except TencentCloudSDKException as exc:
        return str(exc.code)
    except Exception as exc:  # a malformed answer, a reset connection: never acceptable
        return f"broken: {type(exc).__name__}: {exc}"


def test_a_database_restart_costs_at_most_internal_errors(
    pg_server: Server, postgres_server: Postgres
) -> None:
    account = world.new_account(pg_server, "pgrestart")
    instance = world.create_instance(pg_server, account)["InstanceId"]
    c = world.client(pg_server, account)
    snapshot_id = world.create_snapshot(c, instance)  # its copy is paced over 4 s

    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def hammer() -> None:
        client = world.client(pg_server, account)
        while not stop.is_set():
            outcomes[_describe(client)] += 1

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    postgres_server.restart()  # every connection of the server is cut
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()

    assert set(outcomes) <= {"ok", "InternalError"}, outcomes
    assert outcomes["ok"] > 0, outcomes
    # Reconnected without a restart: answers, health, and the job that was running.
    assert _describe(c) == "ok"
    assert httpx.get(f"{pg_server.url}/healthz", timeout=5).status_code == 200
    snapshot = world.wait_normal(c, snapshot_id, timeout=60)
    assert snapshot.Percent == 100


def test_connections_cut_while_idle_cost_no_request(
    pg_server: Server, postgres_server: Postgres
) -> None:
    """Every backend of the server's database is terminated while the server is idle (as an
    administrator's pg_terminate_backend, or a restart between two bursts of requests). The
    pooled connections are dead; each is seen dead when it is next checked out (the server
    sent its error, which waits on the socket: store/database.py) and replaced, so no later
    request fails, writes included."""
    account = world.new_account(pg_server, "pgcut")
    instance = world.create_instance(pg_server, account)["InstanceId"]
    c = world.client(pg_server, account)
    assert [_describe(c) for _ in range(20)] == ["ok"] * 20  # the pool holds connections now
    assert pg_server.database is not None
    database = make_url(pg_server.database).database
    with psycopg.connect(postgres_server.conninfo(), autocommit=True) as admin:
        cut = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        ).fetchone()
    assert cut is not None and cut[0] > 0
    time.sleep(0.05)  # the backends' goodbyes reach the sockets
    assert [_describe(c) for _ in range(20)] == ["ok"] * 20
    snapshot_id = world.create_snapshot(c, instance)
    assert world.wait_normal(c, snapshot_id, timeout=60).Percent == 100


def test_a_key_disabled_anywhere_fails_at_the_next_request_to_every_node(
    postgres_server: Postgres, tmp_path: Path
) -> None:
    """Two servers on one database, each caching keys (api/auth.py CachedKeyStore) against
    the version row the credential tables' triggers bump (migration 0009)."""
    database = postgres_server.create_database(f"keys{time.time_ns() % 10**9}")
    nodes = [
        Server(tmp_path / f"node{n}", free_port(), ("--transition-seconds", "0"), database=database)
        for n in range(2)
    ]
    for node in nodes:
        node.start()
    try:
        bob = nodes[0].create_account("bob")
        regions = models.DescribeRegionsRequest()
        for node in nodes:  # both nodes now hold bob's key in their caches
            assert clients.lighthouse(node.endpoint, bob).DescribeRegions(regions).TotalCount == 15
        nodes[1].admin("key", "disable", bob.secret_id, "--account", "bob")
        for node in nodes:
            with pytest.raises(TencentCloudSDKException) as info:
                clients.lighthouse(node.endpoint, bob).DescribeRegions(regions)
            assert info.value.code == "AuthFailure.SecretIdNotFound"
    finally:
        for node in nodes:
            node.stop()


def test_a_killed_nodes_job_is_taken_over_by_another(
    postgres_server: Postgres, tmp_path: Path
) -> None:
    """Two nodes on one database and one data dir; the node running a paced create is
    SIGKILLed; the other claims the job once its lease has run out and finishes it."""
    database = postgres_server.create_database(f"takeover{time.time_ns() % 10**9}")
    args = ("--transition-seconds", "0", "--operation-seconds", "4", "--job-lease-seconds", "1.5")
    nodes = [
        Server(tmp_path / "data", free_port(), ("--node", f"n{n}", *args), database=database)
        for n in range(2)
    ]
    for node in nodes:
        node.start()
    try:
        account = world.new_account(nodes[0], "takeover")
        instance = world.create_instance(nodes[0], account)["InstanceId"]
        snapshot_id = world.create_snapshot(world.client(nodes[0], account), instance)
        running = world.wait_for(
            lambda: {n["Name"]: n["RunningJobs"] for n in nodes[0].admin("node", "list", "--json")},
            lambda jobs: sum(jobs.values()) == 1,
        )
        owner = next(n for n in nodes if running[f"n{nodes.index(n)}"] == 1)
        survivor = nodes[1 - nodes.index(owner)]
        owner.kill()
        snapshot = world.wait_normal(world.client(survivor, account), snapshot_id, timeout=60)
        assert snapshot.Percent == 100
        metrics = httpx.get(f"{survivor.url}/metrics", timeout=5).text
        assert "lightkeeper_job_lease_takeovers_total 1.0" in metrics
    finally:
        for node in nodes:
            node.stop()
