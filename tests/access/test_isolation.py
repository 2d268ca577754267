"""Tenant isolation: another account's IDs behave exactly like IDs that do not exist."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from testkit import clients, world
from testkit.server import Account, Server

UNKNOWN_INSTANCE = "lhins-zzzzzzzz"
UNKNOWN_SNAPSHOT = "lhsnap-zzzzzzzz"

# action -> parameters built from (instance_id, snapshot_id)
CASES: dict[str, Callable[[str, str], dict[str, Any]]] = {
    "CreateInstanceSnapshot": lambda i, s: {"InstanceId": i},
    "ApplyInstanceSnapshot": lambda i, s: {"InstanceId": i, "SnapshotId": s},
    "DescribeSnapshots": lambda i, s: {"SnapshotIds": [s]},
    "DescribeSnapshots#filter": lambda i, s: {"Filters": [{"Name": "instance-id", "Values": [i]}]},
    "DeleteSnapshots": lambda i, s: {"SnapshotIds": [s]},
    "ModifySnapshotAttribute": lambda i, s: {"SnapshotId": s, "SnapshotName": "mine now"},
    "DescribeSnapshotsDeniedActions": lambda i, s: {"SnapshotIds": [s]},
    "DescribeInstances": lambda i, s: {"InstanceIds": [i]},
    "DescribeInstancesDeniedActions": lambda i, s: {"InstanceIds": [i]},
    "StartInstances": lambda i, s: {"InstanceIds": [i]},
    "StopInstances": lambda i, s: {"InstanceIds": [i]},
    "RebootInstances": lambda i, s: {"InstanceIds": [i]},
}


@pytest.fixture(scope="module")
def victim(server: Server) -> tuple[Account, str, str]:
    owner = world.new_account(server, "victim")
    instance_id = world.create_instance(server, owner)["InstanceId"]
    c = world.client(server, owner)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    return owner, instance_id, snapshot_id


def _answer(server: Server, caller: Account, action: str, params: dict[str, Any]) -> Any:
    reply = clients.tc3_post(server.endpoint, caller, action.split("#")[0], params)
    body = reply.json()["Response"]
    body.pop("RequestId")
    return body


@pytest.mark.parametrize("action", sorted(CASES))
def test_other_accounts_ids_look_unknown(
    server: Server, victim: tuple[Account, str, str], action: str
) -> None:
    owner, instance_id, snapshot_id = victim
    intruder = world.new_account(server, "intruder")
    world.create_instance(server, intruder)  # has a world of its own
    build = CASES[action]
    theirs = _answer(server, intruder, action, build(instance_id, snapshot_id))
    unknown = _answer(server, intruder, action, build(UNKNOWN_INSTANCE, UNKNOWN_SNAPSHOT))
    assert json.dumps(theirs, sort_keys=True) == json.dumps(unknown, sort_keys=True)
    assert (
        "Error" in theirs
        or theirs.get("TotalCount", 0) == 0
        or theirs == {"SnapshotDeniedActionSet": []}
    )
    # and nothing happened to the owner's resources
    c = world.client(server, owner)
    snap = world.snapshot(c, snapshot_id)
    assert snap is not None and snap.SnapshotState == "NORMAL"
    assert snap.SnapshotName != "mine now"
    assert world.instance(c, instance_id).InstanceState == "RUNNING"


def test_listing_never_shows_another_accounts_resources(
    server: Server, victim: tuple[Account, str, str]
) -> None:
    intruder = world.new_account(server, "intruder")
    for action, key in (("DescribeSnapshots", "SnapshotSet"), ("DescribeInstances", "InstanceSet")):
        body = _answer(server, intruder, action, {"Limit": 100})
        assert body["TotalCount"] == 0 and body[key] == []
