"""The snapshot life cycle through tccli, the official command line client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testkit import clients, world
from testkit.server import Account, Server

pytestmark = pytest.mark.both_engines  # SQLite and PostgreSQL (tests/conftest.py)


def _tccli(server: Server, account: Account, home: Path, *args: str) -> Any:
    result = clients.tccli(server.url, account, home, *args, "--region", "ap-guangzhou")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_create_describe_delete_with_tccli(server: Server, tmp_path: Path) -> None:
    account = world.new_account(server, "tccli")
    instance_id = world.create_instance(server, account)["InstanceId"]

    created = _tccli(
        server,
        account,
        tmp_path,
        "CreateInstanceSnapshot",
        "--InstanceId",
        instance_id,
        "--SnapshotName",
        "from tccli",
    )
    snapshot_id = created["SnapshotId"]
    assert snapshot_id.startswith("lhsnap-")

    instance_filter = json.dumps([{"Name": "instance-id", "Values": [instance_id]}])
    listed = _tccli(server, account, tmp_path, "DescribeSnapshots", "--Filters", instance_filter)
    assert listed["TotalCount"] == 1
    (shown,) = listed["SnapshotSet"]
    assert shown["SnapshotId"] == snapshot_id and shown["SnapshotName"] == "from tccli"
    assert shown["LatestOperationRequestId"] == created["RequestId"]

    world.wait_normal(world.client(server, account), snapshot_id)
    deleted = _tccli(
        server, account, tmp_path, "DeleteSnapshots", "--SnapshotIds", json.dumps([snapshot_id])
    )
    assert set(deleted) == {"RequestId"}
    after = _tccli(server, account, tmp_path, "DescribeSnapshots", "--Filters", instance_filter)
    assert after == {"TotalCount": 0, "SnapshotSet": [], "RequestId": after["RequestId"]}
