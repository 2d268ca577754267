"""Build a world through the admin CLI (run in-process by ``Server.admin``) and wait for
asynchronous states through the SDK."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models

from testkit import clients
from testkit.server import Account, Server

T = TypeVar("T")
_names = itertools.count(1)
MiB = 1024 * 1024


def new_account(server: Server, prefix: str = "acct") -> Account:
    return server.create_account(f"{prefix}-{next(_names)}-{time.time_ns() % 10**6}")


def create_instance(
    server: Server, account: Account, region: str = "ap-guangzhou", *args: str
) -> dict[str, Any]:
    data: dict[str, Any] = server.admin(
        "instance",
        "create",
        "--account",
        account.name,
        "--region",
        region,
        "--disk-size",
        "1",
        *args,
        "--json",
    )
    return data


def disk_write(server: Server, instance_id: str, offset: int, data: bytes) -> None:
    server.admin("disk", "write", instance_id, "--offset", str(offset), input_bytes=data)


def disk_sha256(server: Server, instance_id: str) -> str:
    return str(server.admin("disk", "sha256", instance_id, "--json")["Sha256"])


def client(
    server: Server, account: Account, region: str | None = "ap-guangzhou", **options: str
) -> lighthouse_client.LighthouseClient:
    return clients.lighthouse(server.endpoint, account, region=region, **options)


def wait_for(
    probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll until ``done(probe())``. A poll refused with ``RequestLimitExceeded`` is no answer
    and is polled again: the shared server limits each account's calls of an action to 20 a
    second, as Tencent does, and a fast test's own calls can use that up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except TencentCloudSDKException as exc:
            if exc.code != "RequestLimitExceeded" or time.monotonic() > deadline:
                raise
            time.sleep(interval)
            continue
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {value}")
        time.sleep(interval)


def patient(call: Callable[[], T], timeout: float = 30.0) -> T:
    """``call()``, asked again while it is refused with ``RequestLimitExceeded``: a helper's
    look at the world is not what a test measures, and the test's own calls just before it
    may have used up the second's 20 (the shared server limits as Tencent does)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except TencentCloudSDKException as exc:
            if exc.code != "RequestLimitExceeded" or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def snapshot(c: lighthouse_client.LighthouseClient, snapshot_id: str) -> Any:
    request = models.DescribeSnapshotsRequest()
    request.SnapshotIds = [snapshot_id]
    found = patient(lambda: c.DescribeSnapshots(request)).SnapshotSet
    return found[0] if found else None


def instance(c: lighthouse_client.LighthouseClient, instance_id: str) -> Any:
    request = models.DescribeInstancesRequest()
    request.InstanceIds = [instance_id]
    return patient(lambda: c.DescribeInstances(request)).InstanceSet[0]


def create_snapshot(
    c: lighthouse_client.LighthouseClient, instance_id: str, name: str | None = None
) -> str:
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    request.SnapshotName = name
    return str(c.CreateInstanceSnapshot(request).SnapshotId)


def wait_normal(
    c: lighthouse_client.LighthouseClient, snapshot_id: str, timeout: float = 30.0
) -> Any:
    return wait_for(
        lambda: snapshot(c, snapshot_id),
        lambda s: s is not None and s.SnapshotState == "NORMAL",
        timeout,
    )


def apply_snapshot(
    c: lighthouse_client.LighthouseClient, instance_id: str, snapshot_id: str
) -> str:
    request = models.ApplyInstanceSnapshotRequest()
    request.InstanceId = instance_id
    request.SnapshotId = snapshot_id
    return str(c.ApplyInstanceSnapshot(request).RequestId)
