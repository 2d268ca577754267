"""DescribeGeneralResourceQuotas and the snapshot quota rule (§3.1); paced Percent progress."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models
from testkit import world
from testkit.server import Account, Server, free_port

from lightkeeper.domain import rules

pytestmark = pytest.mark.both_engines  # SQLite and PostgreSQL (tests/conftest.py)


def _quotas(c: lighthouse_client.LighthouseClient, *names: str) -> dict[str, tuple[int, int]]:
    """name -> (available, total)."""
    request = models.DescribeGeneralResourceQuotasRequest()
    request.ResourceNames = list(names)
    found = c.DescribeGeneralResourceQuotas(request).GeneralResourceQuotaSet
    assert [q.ResourceName for q in found] == list(names)
    return {q.ResourceName: (q.ResourceQuotaAvailable, q.ResourceQuotaTotal) for q in found}


def _create_all(server: Server, account: Account, specs: list[tuple[str, ...]]) -> list[str]:
    with ThreadPoolExecutor(len(specs)) as pool:  # each admin call is its own process
        made = pool.map(lambda a: world.create_instance(server, account, *a), specs)
        return [m["InstanceId"] for m in made]


def test_snapshot_quota_is_twice_the_countable_instances_capped_at_ten(server: Server) -> None:
    account = world.new_account(server, "quota")
    c = world.client(server, account)
    names = ("SNAPSHOT", "GENERAL_BUNDLE_INSTANCE", "STORAGE_BUNDLE_INSTANCE")
    assert _quotas(c, *names) == {
        "SNAPSHOT": (0, 0),
        "GENERAL_BUNDLE_INSTANCE": (50, 50),
        "STORAGE_BUNDLE_INSTANCE": (50, 50),
    }

    _create_all(
        server,
        account,
        [
            *[("ap-guangzhou",)] * 4,
            ("ap-guangzhou", "--bundle-type", "STORAGE_BUNDLE"),  # storage bundles don't count
            ("ap-guangzhou", "--state", "SHUTDOWN"),  # nor do instances pending reclaim
        ],
    )
    assert _quotas(c, *names) == {
        "SNAPSHOT": (8, 8),  # not min(2 x 6, 10)
        "GENERAL_BUNDLE_INSTANCE": (50 - 5, 50),
        "STORAGE_BUNDLE_INSTANCE": (50 - 1, 50),
    }
    shanghai = world.client(server, account, "ap-shanghai")
    assert _quotas(shanghai, *names)["SNAPSHOT"] == (0, 0)  # per region

    _create_all(server, account, [("ap-guangzhou",)] * 2)  # six countable instances
    quotas = _quotas(c, *names)
    assert quotas["SNAPSHOT"] == (10, 10)  # min(2 x 6, 10)
    assert quotas["GENERAL_BUNDLE_INSTANCE"] == (50 - 7, 50)


def test_unknown_resource_name(server: Server, account: Account) -> None:
    c = world.client(server, account)
    with pytest.raises(TencentCloudSDKException) as info:
        _quotas(c, "SNAPSHOT", "SNAPSHOTS")
    assert info.value.code == "InvalidParameterValue.InvalidResourceQuotaResourceName"


def test_create_without_region_finds_the_instance_by_id(server: Server) -> None:
    account = world.new_account(server, "noregion")
    shanghai = world.create_instance(server, account, "ap-shanghai")["InstanceId"]
    anywhere = world.client(server, account, region="")
    snapshot_id = world.create_snapshot(anywhere, shanghai, "regionless")
    there = world.client(server, account, "ap-shanghai")
    assert world.snapshot(there, snapshot_id) is not None
    assert world.snapshot(world.client(server, account), snapshot_id) is None  # not Guangzhou
    world.wait_normal(there, snapshot_id)


# -- a dedicated server: 1 snapshot per instance, at most 3, operations last at least 2 s -----


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("paced") / "data"
    args = ("--transition-seconds", "0", "--operation-seconds", "2")
    quota = ("--snapshot-quota-per-instance", "1", "--snapshot-quota-max", "3")
    server = Server(data, free_port(), (*args, *quota))
    server.start()
    yield server
    server.kill()  # a throwaway data dir: no need to wait for an operation in flight


def _observe(c: lighthouse_client.LighthouseClient, snapshot_id: str) -> tuple[list[int], Any]:
    """Poll every 0.1 s until the operation ends; return the Percents seen and the last view."""
    percents: list[int] = []

    def probe() -> Any:
        found = world.snapshot(c, snapshot_id)
        percents.append(found.Percent)
        return found

    last = world.wait_for(probe, lambda s: s.LatestOperationState != "OPERATING", timeout=20)
    return percents, last


def _assert_paced(percents: list[int]) -> None:
    assert percents == sorted(percents), percents
    assert percents[-1] == 100
    assert len({p for p in percents if 0 < p < 100}) >= 3, percents


def test_create_and_apply_report_rising_progress(paced: Server) -> None:
    account = world.new_account(paced, "pacing")
    instance_id = world.create_instance(paced, account)["InstanceId"]
    c = world.client(paced, account)

    started = time.monotonic()
    snapshot_id = world.create_snapshot(c, instance_id, "paced")
    available, total = _quotas(c, "SNAPSHOT")["SNAPSHOT"]
    assert (available, total) == (0, 1)  # the CREATING snapshot already holds the quota
    assert world.snapshot(c, snapshot_id).SnapshotState == "CREATING"
    percents, done = _observe(c, snapshot_id)
    assert time.monotonic() - started >= 2.0
    assert done.SnapshotState == "NORMAL" and done.LatestOperationState == "SUCCESS"
    assert percents[0] < 100 and done.SnapshotId == snapshot_id
    _assert_paced(percents)

    started = time.monotonic()
    world.apply_snapshot(c, instance_id, snapshot_id)
    percents, done = _observe(c, snapshot_id)
    assert time.monotonic() - started >= 2.0
    assert done.SnapshotState == "NORMAL" and done.LatestOperationState == "SUCCESS"
    assert done.LatestOperation == "RollbackInstanceSnapshot"
    assert percents[0] < 10  # progress starts again from 0 for the rollback...
    _assert_paced(percents)


def test_configured_quota_is_honoured(paced: Server) -> None:
    account = world.new_account(paced, "configured")
    first, second = _create_all(paced, account, [("ap-guangzhou",)] * 2)
    c = world.client(paced, account)
    assert _quotas(c, "SNAPSHOT")["SNAPSHOT"] == (2, 2)  # 1 per instance
    world.create_snapshot(c, first)
    world.create_snapshot(c, second)
    assert _quotas(c, "SNAPSHOT")["SNAPSHOT"] == (0, 2)

    third = world.create_instance(paced, account)["InstanceId"]
    assert _quotas(c, "SNAPSHOT")["SNAPSHOT"] == (1, 3)
    fourth = world.create_instance(paced, account)["InstanceId"]
    assert _quotas(c, "SNAPSHOT")["SNAPSHOT"] == (1, 3)  # capped at 3
    world.create_snapshot(c, third)
    with pytest.raises(TencentCloudSDKException) as info:
        world.create_snapshot(c, fourth)
    assert info.value.code == "LimitExceeded.SnapshotQuotaLimitExceeded"


@given(
    per_instance=st.integers(0, 12),
    maximum=st.integers(0, 40),
    instances=st.integers(0, 5000),
    used=st.integers(0, 60),
)
def test_counting_only_what_matters_decides_every_create_alike(
    per_instance: int, maximum: int, instances: int, used: int
) -> None:
    """A create counts at most ``quota_counts_that_matter`` instances and snapshots (one
    statement that does not grow with the account): the quota decision is the same as with
    the full counts, for every setting of ``--snapshot-quota-*``."""
    instance_cap, snapshot_cap = rules.quota_counts_that_matter(per_instance, maximum)
    full = used >= rules.snapshot_quota(instances, per_instance, maximum)
    capped = min(used, snapshot_cap) >= rules.snapshot_quota(
        min(instances, instance_cap), per_instance, maximum
    )
    assert capped == full
