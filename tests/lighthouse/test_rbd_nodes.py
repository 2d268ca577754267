"""Issue #15: with disks on Ceph RBD, nodes share storage as they share the database. Two
nodes, each with a data dir of its own, on one PostgreSQL database and one RBD namespace: a
snapshot taken through one rolls back through the other, and a node killed in the middle of a
snapshot leaves it to the other, which finishes it once the job's lease has run out."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testkit import world
from testkit.postgres import Postgres
from testkit.server import Server, free_port

MiB = 1024 * 1024


@pytest.fixture
def start_nodes(
    postgres_server: Postgres, tmp_path: Path, rbd_options: dict[str, Any]
) -> Iterator[Any]:
    started: list[Server] = []

    def start(*extra: str) -> list[Server]:
        database = postgres_server.create_database(f"rbd{time.time_ns() % 10**9}")
        args = ("--storage", "rbd", "--rbd-namespace", rbd_options["namespace"])
        args += ("--transition-seconds", "0", "--no-rate-limit", *extra)
        for n in range(2):
            node = Server(tmp_path / f"node{n}", free_port(), ("--node", f"n{n}", *args))
            node.database = database
            node.start()
            started.append(node)
        return started

    yield start
    for node in started:
        node.stop()


def test_a_snapshot_taken_through_one_node_rolls_back_through_another(start_nodes: Any) -> None:
    a, b = start_nodes()
    account = world.new_account(a, "rbd")
    instance_id = world.create_instance(a, account, "ap-guangzhou", "--state", "STOPPED")[
        "InstanceId"
    ]
    world.disk_write(a, instance_id, 0, os.urandom(4 * MiB))
    before = world.disk_sha256(a, instance_id)
    snapshot_id = world.create_snapshot(world.client(a, account), instance_id)
    world.wait_normal(world.client(a, account), snapshot_id)

    world.disk_write(b, instance_id, MiB, b"written through the other node's data dir")
    assert world.disk_sha256(b, instance_id) != before
    c = world.client(b, account)
    world.apply_snapshot(c, instance_id, snapshot_id)
    done = world.wait_for(
        lambda: world.snapshot(c, snapshot_id), lambda s: s.LatestOperationState != "OPERATING"
    )
    assert done.LatestOperationState == "SUCCESS"
    assert world.disk_sha256(a, instance_id) == world.disk_sha256(b, instance_id) == before


def test_a_killed_nodes_snapshot_is_finished_by_the_other(start_nodes: Any) -> None:
    nodes = start_nodes("--operation-seconds", "4", "--job-lease-seconds", "1.5")
    account = world.new_account(nodes[0], "rbd-takeover")
    instance_id = world.create_instance(nodes[0], account, "ap-guangzhou", "--state", "STOPPED")[
        "InstanceId"
    ]
    world.disk_write(nodes[0], instance_id, 0, os.urandom(8 * MiB))
    before = world.disk_sha256(nodes[0], instance_id)
    snapshot_id = world.create_snapshot(world.client(nodes[0], account), instance_id)
    running = world.wait_for(
        lambda: {n["Name"]: n["RunningJobs"] for n in nodes[0].admin("node", "list", "--json")},
        lambda jobs: sum(jobs.values()) == 1,
    )
    owner = next(n for n in nodes if running[f"n{nodes.index(n)}"] == 1)
    survivor = nodes[1 - nodes.index(owner)]
    owner.kill()  # mid-snapshot: its lock object, its client's image lock, its job's lease
    snapshot = world.wait_normal(world.client(survivor, account), snapshot_id, timeout=60)
    assert snapshot.Percent == 100
    checked = survivor.admin("snapshot", "sha256", snapshot_id, "--json")
    assert checked["Verified"] is True and checked["Sha256"] == before
