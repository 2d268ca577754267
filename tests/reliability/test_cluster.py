"""Three nodes on one PostgreSQL behind the shipped HAProxy configuration (deploy/), sharing
one data dir (one storage pool): the seeds' rules hold cluster-wide, whichever node a request
reaches, and the official SDK works through the proxy unchanged (issue #13)."""

from __future__ import annotations

import shutil
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models
from testkit import clients, haproxy, world
from testkit.postgres import Postgres
from testkit.server import Account, Server, free_port

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")

ARGS = ("--transition-seconds", "0", "--operation-seconds", "3", "--snapshot-quota-max", "3",
        "--trusted-proxy", "127.0.0.1")  # fmt: skip


@dataclass
class Cluster:
    nodes: list[Server]
    endpoint: str  # HAProxy's

    def client(self, account: Account) -> lighthouse_client.LighthouseClient:
        return clients.lighthouse(self.endpoint, account, region="ap-guangzhou")


@pytest.fixture(scope="module")
def cluster(
    postgres_server: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("cluster")
    database = postgres_server.create_database("cluster")
    nodes = [
        Server(work / "data", free_port(), ("--node", f"node{n}", *ARGS), database=database)
        for n in range(1, 4)
    ]
    for node in nodes:
        node.start()
    try:
        with haproxy.running(work, free_port(), [n.endpoint for n in nodes]) as endpoint:
            yield Cluster(nodes, endpoint)
    finally:
        for node in nodes:
            node.stop()


def _create(cluster: Cluster, account: Account, instance_id: str) -> str:
    try:
        return "ok:" + world.create_snapshot(cluster.client(account), instance_id)
    except TencentCloudSDKException as exc:
        return str(exc.code)


def _served(cluster: Cluster, action: str) -> Counter[str]:
    """How many requests of ``action`` each node answered (its access log)."""
    return Counter(
        node.port for node in cluster.nodes for line in node.access_log()
        if line.get("action") == action
    )  # fmt: skip


def test_twenty_racing_creates_on_one_instance_exactly_one_wins(cluster: Cluster) -> None:
    account = world.new_account(cluster.nodes[0], "race")
    instance_id = world.create_instance(cluster.nodes[1], account)["InstanceId"]
    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(lambda _: _create(cluster, account, instance_id), range(20)))
    winners = [o for o in outcomes if o.startswith("ok:")]
    assert len(winners) == 1, outcomes
    assert set(outcomes) - set(winners) <= {"UnsupportedOperation.DiskLatestOperationUnfinished"}
    assert len(_served(cluster, "CreateInstanceSnapshot")) == 3  # every node answered some
    world.wait_normal(cluster.client(account), winners[0][3:])


def test_creates_across_instances_never_exceed_the_quota(cluster: Cluster) -> None:
    account = world.new_account(cluster.nodes[0], "quota")
    instances = [world.create_instance(cluster.nodes[n % 3], account)["InstanceId"]
                 for n in range(8)]  # fmt: skip
    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(lambda n: _create(cluster, account, instances[n % 8]), range(20)))
    winners = [o[3:] for o in outcomes if o.startswith("ok:")]
    assert len(winners) == 3, outcomes  # --snapshot-quota-max 3, held across the nodes
    assert "LimitExceeded.SnapshotQuotaLimitExceeded" in outcomes
    c = cluster.client(account)
    for snapshot_id in winners:
        world.wait_normal(c, snapshot_id)
    total = c.DescribeSnapshots(models.DescribeSnapshotsRequest()).TotalCount
    assert total == 3


def test_a_key_disabled_through_one_node_fails_on_every_node(cluster: Cluster) -> None:
    account = world.new_account(cluster.nodes[0], "keys")
    regions = models.DescribeRegionsRequest()
    for node in cluster.nodes:  # every node has the key in its cache now
        assert clients.lighthouse(node.endpoint, account).DescribeRegions(regions).TotalCount == 15
    cluster.nodes[2].admin("key", "disable", account.secret_id, "--account", account.name)
    for node in [*cluster.nodes, None]:
        endpoint = cluster.endpoint if node is None else node.endpoint
        with pytest.raises(TencentCloudSDKException) as info:
            clients.lighthouse(endpoint, account).DescribeRegions(regions)
        assert info.value.code == "AuthFailure.SecretIdNotFound"


def _describe(cluster: Cluster, account: Account) -> str:
    try:
        cluster.client(account).DescribeSnapshots(models.DescribeSnapshotsRequest())
        return "ok"
    except TencentCloudSDKException as exc:
        return str(exc.code)


def test_the_rate_limit_counts_across_the_nodes(
    cluster: Cluster, postgres_server: Postgres
) -> None:
    """60 DescribeSnapshots of one principal in (as nearly as the machine allows) one second,
    spread over the three nodes: 20 succeed in each second they arrived in, not 20 per node.
    The per-second counts are the cluster's own (``rate_counts``)."""
    account = world.new_account(cluster.nodes[0], "limits")
    time.sleep(1.02 - time.time() % 1)  # start right after a second begins
    with ThreadPoolExecutor(30) as pool:
        outcomes = Counter(pool.map(lambda _: _describe(cluster, account), range(60)))
    assert set(outcomes) == {"ok", "RequestLimitExceeded"}, outcomes
    with psycopg.connect(postgres_server.conninfo("cluster")) as db:
        counts = [row[0] for row in db.execute(
            "SELECT count FROM rate_counts WHERE action = 'DescribeSnapshots' AND principal = %s",
            (f"{account.uin}/",),
        )]  # fmt: skip
    assert sum(counts) == 60, counts  # every request counted once, whichever node it reached
    assert outcomes["ok"] == sum(min(count, 20) for count in counts), (outcomes, counts)
    assert max(counts) > 20  # the limit was reached in a second: refusals are the cluster's
    assert len(_served(cluster, "DescribeSnapshots")) == 3


def test_a_v1_request_replayed_to_another_node_is_refused(cluster: Cluster) -> None:
    account = world.new_account(cluster.nodes[0], "replay")
    body = urllib.parse.urlencode(
        clients.v1_params(account, cluster.endpoint, "DescribeRegions", {}, nonce=424242)
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    answers = [
        httpx.post(f"http://{cluster.endpoint}/", content=body, headers=headers, timeout=30).json()
        for _ in range(3)  # round robin: three nodes
    ]
    assert answers[0]["Response"]["TotalCount"] == 15
    for replayed in answers[1:]:
        error = replayed["Response"]["Error"]
        assert error["Code"] == "AuthFailure.SignatureFailure" and "Nonce" in error["Message"]
