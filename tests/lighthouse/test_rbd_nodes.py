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
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.datadir import Store, read_only
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


def _placed(node: Server, account: Any, instance_id: str) -> str:
    """The node an instance is placed on, as its record says."""
    with read_only(Store(node.data_dir, node.database)) as db:
        found = db.tuples("SELECT node FROM instances WHERE instance_id = :i", i=instance_id)
    return str(found[0][0])


def _start(node: Server, account: Any, instance_id: str) -> Any:
    request = models.StartInstancesRequest()
    request.InstanceIds = [instance_id]
    c = world.client(node, account)
    c.StartInstances(request)
    return world.wait_for(
        lambda: world.instance(c, instance_id),
        lambda i: i.LatestOperationState != "OPERATING",
        timeout=60,
    )


def test_a_stopped_instance_moves_to_another_node_and_starts_there(start_nodes: Any) -> None:
    a, b = start_nodes()
    account = world.new_account(a, "rbd-move")
    instance_id = world.create_instance(a, account, "ap-guangzhou", "--state", "STOPPED")[
        "InstanceId"
    ]
    here = _placed(a, account, instance_id)
    there = "n1" if here == "n0" else "n0"
    moved = a.admin("instance", "move", instance_id, "--node", there, "--json")
    assert moved["Node"] == there
    started = _start(a, account, instance_id)  # asked of either node, run by the new one
    assert started.InstanceState == "RUNNING" and started.LatestOperationState == "SUCCESS"
    assert _placed(a, account, instance_id) == there
    failed = a.admin("instance", "move", instance_id, "--node", here, check=False)
    assert failed.returncode != 0 and "stop it first" in failed.stderr


def test_the_instance_of_a_dead_node_starts_on_a_live_one(start_nodes: Any) -> None:
    """Its node SIGKILLed (heartbeat gone: DOWN), a RUNNING instance's StartInstances through
    the survivor places the instance there and starts it (the disk fenced first: a machine
    that outlived its node writes it no more)."""
    nodes = start_nodes("--job-lease-seconds", "1.5")
    account = world.new_account(nodes[0], "rbd-orphan")
    instance_id = world.create_instance(nodes[0], account)["InstanceId"]  # RUNNING
    home = _placed(nodes[0], account, instance_id)
    dead = nodes[int(home[1:])]
    survivor = nodes[1 - nodes.index(dead)]
    dead.kill()
    world.wait_for(
        lambda: {n["Name"]: n["State"] for n in survivor.admin("node", "list", "--json")},
        lambda states: states[home] == "DOWN",
        timeout=30,
    )
    started = _start(survivor, account, instance_id)  # accepted although it shows RUNNING
    assert started.InstanceState == "RUNNING" and started.LatestOperationState == "SUCCESS"
    assert _placed(survivor, account, instance_id) == f"n{nodes.index(survivor)}"
