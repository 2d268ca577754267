"""``LighthouseServer`` used directly (no pytest plugin): sub-users with policies, the world
as JSON out and back in, and a data dir the caller keeps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models

from lightkeeper.testing import ControlError, LighthouseServer

READ_ONLY = {
    "version": "2.0",
    "statement": [
        {"effect": "allow", "action": ["lighthouse:Describe*"], "resource": ["*"]},
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LighthouseServer]:
    data_dir = tmp_path_factory.mktemp("kept")
    with LighthouseServer(data_dir) as running:
        yield running
    assert (data_dir / "lightkeeper.db").exists()  # a given data dir is the caller's: kept


def test_a_sub_user_gets_exactly_its_policy(server: LighthouseServer) -> None:
    server.reset()
    instance_id = server.create_instance()["InstanceId"]
    reader = server.client(credential=server.create_user("reader", READ_ONLY))
    assert reader.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 1
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    with pytest.raises(TencentCloudSDKException) as refused:
        reader.CreateInstanceSnapshot(request)
    assert refused.value.code == "UnauthorizedOperation.NoPermission"
    server.reset()  # the sub-user and its key go with the world
    with pytest.raises(TencentCloudSDKException) as gone:
        reader.DescribeInstances(models.DescribeInstancesRequest())
    assert gone.value.code.startswith("AuthFailure")


def test_the_world_goes_out_as_json_and_comes_back(
    server: LighthouseServer, tmp_path: Path
) -> None:
    server.reset()
    server.create_account("bob")
    web = server.create_instance(account="bob", name="web", tags={"team": "a"})["InstanceId"]
    db = server.create_instance(state="STOPPED", disk_size_gb=2)["InstanceId"]
    state = server.state()
    assert {a["Account"] for a in state["Accounts"]} == {"default", "bob"}
    assert [i["InstanceId"] for i in state["Instances"]] == [web, db]
    path = tmp_path / "world.json"
    path.write_text(json.dumps(state))

    server.reset()
    assert server.state()["Instances"] == []
    assert server.load_state(path) == [web, db]  # the ids a fixture file names are kept
    restored = {i["InstanceId"]: i for i in server.state()["Instances"]}
    assert restored[web]["Account"] == "bob" and restored[web]["Tags"] == {"team": "a"}
    assert (restored[db]["InstanceState"], restored[db]["DiskSizeGb"]) == ("STOPPED", 2)
    bob = server.client(account="bob")  # new keys for the imported account
    request = models.DescribeInstancesRequest()
    assert [i.InstanceName for i in bob.DescribeInstances(request).InstanceSet] == ["web"]

    with pytest.raises(ControlError, match="already exists"):
        server.load_state(path)  # the same ids again: refused, not duplicated

    create = models.CreateInstanceSnapshotRequest()
    create.InstanceId = db
    server.wait_snapshot(server.client().CreateInstanceSnapshot(create).SnapshotId)
    with pytest.raises(ControlError, match="snapshots are not imported"):
        server.load_state(server.state())
