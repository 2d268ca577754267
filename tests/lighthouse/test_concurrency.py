"""Locks and quota hold under concurrent callers, also across two server processes."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server, free_port

pytestmark = pytest.mark.both_engines  # SQLite and PostgreSQL (tests/conftest.py)


def _create(server: Server, account: Account, instance_id: str) -> str:
    try:
        return "ok:" + world.create_snapshot(world.client(server, account), instance_id)
    except TencentCloudSDKException as exc:
        return str(exc.code)


def test_twenty_concurrent_creates_on_one_instance_exactly_one_wins(
    make_server: Callable[..., Server],
) -> None:
    """Paced to 3 s so the winner is still CREATING while the other 19 arrive."""
    server = make_server("--operation-seconds", "3", "--transition-seconds", "0")
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(lambda _: _create(server, account, instance_id), range(20)))
    winners = [o for o in outcomes if o.startswith("ok:")]
    assert len(winners) == 1, outcomes
    losers = Counter(o for o in outcomes if not o.startswith("ok:"))
    assert set(losers) <= {
        "UnsupportedOperation.DiskLatestOperationUnfinished",
        "UnsupportedOperation.DiskBusy",
    }, losers
    c = world.client(server, account)
    world.wait_normal(c, winners[0][3:])
    request = models.DescribeSnapshotsRequest()
    assert c.DescribeSnapshots(request).TotalCount == 1


def test_concurrent_creates_from_two_servers_never_exceed_the_quota(
    make_server: Callable[..., Server],
) -> None:
    first = make_server("--snapshot-quota-max", "3", "--transition-seconds", "0")
    second = Server(first.data_dir, free_port(), first.args, database=first.database)
    second.start()
    try:
        account = world.new_account(first)
        instances = [world.create_instance(first, account)["InstanceId"] for _ in range(8)]
        targets = [(first if n % 2 else second, instances[n % 8]) for n in range(20)]
        with ThreadPoolExecutor(20) as pool:
            outcomes = list(pool.map(lambda t: _create(t[0], account, t[1]), targets))
        winners = [o[3:] for o in outcomes if o.startswith("ok:")]
        assert len(winners) == 3, outcomes
        refused = Counter(o for o in outcomes if not o.startswith("ok:"))
        assert "LimitExceeded.SnapshotQuotaLimitExceeded" in refused
        c = world.client(first, account)
        for snapshot_id in winners:
            world.wait_normal(c, snapshot_id)
        quota = models.DescribeGeneralResourceQuotasRequest()
        quota.ResourceNames = ["SNAPSHOT"]
        (snapshot_quota,) = c.DescribeGeneralResourceQuotas(quota).GeneralResourceQuotaSet
        assert (snapshot_quota.ResourceQuotaTotal, snapshot_quota.ResourceQuotaAvailable) == (3, 0)
        assert c.DescribeSnapshots(models.DescribeSnapshotsRequest()).TotalCount == 3
    finally:
        second.stop()


def test_reads_answer_while_writers_wait_for_the_write_lock(
    make_server: Callable[..., Server],
) -> None:
    """Reads run on the event loop (SQLite): they must never queue behind writers that wait
    for the database write lock, here held by another process for 3 s."""
    server = make_server("--quota-lock-timeout", "3", "--transition-seconds", "0")
    account = world.new_account(server)
    instance_ids = [world.create_instance(server, account)["InstanceId"] for _ in range(4)]
    c = world.client(server, account)
    with ThreadPoolExecutor(4) as pool:
        with server.write_lock():
            waiting = [pool.submit(_create, server, account, i) for i in instance_ids]
            time.sleep(0.3)  # the creates are now waiting for the lock
            for _ in range(10):
                assert c.DescribeSnapshots(models.DescribeSnapshotsRequest()).TotalCount == 0
                described = c.DescribeInstances(models.DescribeInstancesRequest())
                assert described.TotalCount == 4
            assert not any(f.done() for f in waiting), "the lock holder should block creates"
        outcomes = [f.result() for f in waiting]
    assert all(o.startswith("ok:") for o in outcomes), outcomes
