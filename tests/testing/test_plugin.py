"""The pytest plugin as a user meets it: pytest run on a user's own test files (pytester,
in a subprocess, with the plugin found through its entry point or named with ``-p``),
against the real server the ``lighthouse`` fixture starts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    """The code block under the README's ``<!-- example: test_backup.py -->`` marker."""
    text = README.read_text()
    match = re.search(r"<!-- example: test_backup\.py[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its example test"
    return match.group(1)


@pytest.mark.parametrize("load", ["entry point", "-p"])
def test_the_readme_example_passes_as_written(pytester: pytest.Pytester, load: str) -> None:
    pytester.makepyfile(test_backup=readme_example())
    args = ["-p", "no:lightkeeper", "-p", "lightkeeper.testing.plugin"] if load == "-p" else []
    result = pytester.runpytest_subprocess(*args, "-q")
    result.assert_outcomes(passed=1)


ISOLATION = """
from tencentcloud.lighthouse.v20200324 import models


def describe(lighthouse):
    return lighthouse.client().DescribeInstances(models.DescribeInstancesRequest())


def test_a_makes_a_world(lighthouse):
    other = lighthouse.create_account("other")
    instance_id = lighthouse.create_instance()["InstanceId"]
    lighthouse.create_instance(account="other")
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    lighthouse.client().CreateInstanceSnapshot(request)
    lighthouse.fail_next("DescribeRegions", "InternalError", count=5)
    lighthouse.timing(operation_seconds=30)
    assert describe(lighthouse).TotalCount == 1


def test_b_finds_it_gone(lighthouse):
    assert describe(lighthouse).TotalCount == 0
    snapshots = lighthouse.client().DescribeSnapshots(models.DescribeSnapshotsRequest())
    assert snapshots.TotalCount == 0
    quota = models.DescribeGeneralResourceQuotasRequest()
    quota.ResourceNames = ["SNAPSHOT"]
    (snapshot_quota,) = lighthouse.client().DescribeGeneralResourceQuotas(
        quota
    ).GeneralResourceQuotaSet
    assert snapshot_quota.ResourceQuotaAvailable == snapshot_quota.ResourceQuotaTotal
    assert [a["Account"] for a in lighthouse.state()["Accounts"]] == ["default"]
    lighthouse.client().DescribeRegions(models.DescribeRegionsRequest())  # faults gone
    assert lighthouse.timing()["OperationSeconds"] == 0  # timing back to the start
"""


def test_reset_isolates_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_isolation=ISOLATION)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=2)


SEEDED = """
import json
from pathlib import Path

from tencentcloud.lighthouse.v20200324 import models


def test_seeded(lighthouse):
    lighthouse.seed(20261204)
    client = lighthouse.client()
    instance = lighthouse.create_instance()
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance["InstanceId"]
    reply = client.CreateInstanceSnapshot(request)
    seen = {
        "instance": instance["InstanceId"],
        "disk": instance["SystemDisk"]["DiskId"],
        "uuid": instance["Uuid"],
        "snapshot": reply.SnapshotId,
        "request": reply.RequestId,
    }
    Path("ids.json").write_text(json.dumps(seen))
"""


def test_seeded_ids_repeat_across_two_runs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_seeded=SEEDED)
    runs = []
    for _ in range(2):
        pytester.runpytest_subprocess("-q").assert_outcomes(passed=1)
        runs.append(json.loads((pytester.path / "ids.json").read_text()))
    assert runs[0] == runs[1]
    assert re.fullmatch(r"lhins-[a-z0-9]{8}", runs[0]["instance"])
    assert re.fullmatch(r"lhsnap-[a-z0-9]{8}", runs[0]["snapshot"])
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", runs[0]["request"]
    )


MANUAL = """
import time

import pytest
from tencentcloud.lighthouse.v20200324 import models


def snapshot(lighthouse, snapshot_id):
    request = models.DescribeSnapshotsRequest()
    request.SnapshotIds = [snapshot_id]
    return lighthouse.client().DescribeSnapshots(request).SnapshotSet[0]


def until(lighthouse, snapshot_id, percent):
    deadline = time.monotonic() + 10
    while (found := snapshot(lighthouse, snapshot_id)).Percent < percent:
        assert time.monotonic() < deadline, found.Percent
        time.sleep(0.05)
    return found


@pytest.mark.lighthouse_timing(manual=True)
def test_manual_progress(lighthouse):
    instance_id = lighthouse.create_instance()["InstanceId"]
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    snapshot_id = lighthouse.client().CreateInstanceSnapshot(request).SnapshotId
    time.sleep(1.5)  # the copy itself is done in milliseconds; the snapshot waits for us
    held = snapshot(lighthouse, snapshot_id)
    assert (held.SnapshotState, held.Percent) == ("CREATING", 0)
    lighthouse.advance(snapshot_id, 35)
    at_35 = until(lighthouse, snapshot_id, 35)
    assert (at_35.SnapshotState, at_35.Percent) == ("CREATING", 35)
    time.sleep(0.5)
    assert snapshot(lighthouse, snapshot_id).Percent == 35  # no further than allowed
    lighthouse.advance(snapshot_id, 80)
    assert until(lighthouse, snapshot_id, 80).SnapshotState == "CREATING"
    lighthouse.complete(snapshot_id)
    done = lighthouse.wait_snapshot(snapshot_id)
    assert (done.SnapshotState, done.Percent, done.LatestOperationState) == (
        "NORMAL", 100, "SUCCESS"
    )


def test_manual_mode_left_running_is_undone_by_the_reset(lighthouse):
    instance_id = lighthouse.create_instance()["InstanceId"]
    lighthouse.timing(manual=True)
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    lighthouse.client().CreateInstanceSnapshot(request)  # never completed: reset takes it


def test_after_a_manual_test_operations_run_again(lighthouse):
    instance_id = lighthouse.create_instance()["InstanceId"]
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    snapshot_id = lighthouse.client().CreateInstanceSnapshot(request).SnapshotId
    assert lighthouse.wait_snapshot(snapshot_id, timeout=10).SnapshotState == "NORMAL"
"""


def test_manual_mode_steps_an_operation(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_manual=MANUAL)
    result = pytester.runpytest_subprocess("-q", "-p", "no:randomly")
    result.assert_outcomes(passed=3)


FAULTS = """
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models


def create(client, instance_id):
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    return client.CreateInstanceSnapshot(request)


def test_next_calls_fail_with_the_code(lighthouse):
    instance_id = lighthouse.create_instance()["InstanceId"]
    client = lighthouse.client(language="zh-CN")
    lighthouse.fail_next("CreateInstanceSnapshot", "LimitExceeded.SnapshotQuotaLimitExceeded", 2)
    for _ in range(2):
        with pytest.raises(TencentCloudSDKException) as failed:
            create(client, instance_id)
        assert failed.value.code == "LimitExceeded.SnapshotQuotaLimitExceeded"
        assert failed.value.requestId
    client.DescribeInstances(models.DescribeInstancesRequest())  # other actions unaffected
    snapshot_id = create(client, instance_id).SnapshotId  # the third one runs
    assert lighthouse.wait_snapshot(snapshot_id).SnapshotState == "NORMAL"


def test_internal_error_then_a_retry_succeeds(lighthouse):
    lighthouse.fail_next("DescribeInstances")  # InternalError by default
    client = lighthouse.client()
    with pytest.raises(TencentCloudSDKException) as failed:
        client.DescribeInstances(models.DescribeInstancesRequest())
    assert failed.value.code == "InternalError"
    assert client.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 0


def test_a_job_fault_fails_the_operation(lighthouse):
    instance_id = lighthouse.create_instance()["InstanceId"]
    client = lighthouse.client()
    lighthouse.fail_next("CreateInstanceSnapshot", job=True)
    snapshot_id = create(client, instance_id).SnapshotId  # accepted...
    assert lighthouse.wait_snapshot(snapshot_id) is None  # ...then failed: removed
    assert client.DescribeSnapshots(models.DescribeSnapshotsRequest()).TotalCount == 0
    again = create(client, instance_id).SnapshotId  # the fault is used up, the quota free
    assert lighthouse.wait_snapshot(again).SnapshotState == "NORMAL"


def test_a_job_fault_on_apply_leaves_the_disk_untouched(lighthouse):
    instance_id = lighthouse.create_instance(state="STOPPED")["InstanceId"]
    client = lighthouse.client()
    lighthouse.write_disk(instance_id, b"before")
    snapshot_id = create(client, instance_id).SnapshotId
    lighthouse.wait_snapshot(snapshot_id)
    lighthouse.write_disk(instance_id, b"after!")
    lighthouse.fail_next("ApplyInstanceSnapshot", job=True)
    apply = models.ApplyInstanceSnapshotRequest()
    apply.InstanceId, apply.SnapshotId = instance_id, snapshot_id
    client.ApplyInstanceSnapshot(apply)
    assert lighthouse.wait_snapshot(snapshot_id).LatestOperationState == "FAILED"
    assert lighthouse.read_disk(instance_id, 0, 6) == b"after!"


def test_a_delay_makes_the_client_time_out(lighthouse):
    lighthouse.fail_next("DescribeInstances", code=None, delay=3)
    impatient = lighthouse.client(timeout=1)
    with pytest.raises(TencentCloudSDKException) as failed:
        impatient.DescribeInstances(models.DescribeInstancesRequest())
    assert "timed out" in str(failed.value).lower() or failed.value.code == "ClientNetworkError"
"""


def test_fail_next_injects_call_and_job_faults(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_faults=FAULTS)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=5)
