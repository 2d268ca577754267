"""``lightkeeper.testing`` for test suites: what a reset costs, and what the plugin adds to a
user's suite.

* **reset**: ``LighthouseServer.reset()`` (an HTTP call to the control API) of a world of 100
  instances (each with its 1 GB sparse disk) and 20 snapshots, rebuilt before every round;
  median of the rounds. Anchor in the same run: moto's ``POST /moto-api/reset`` of 100 EC2
  instances and 20 snapshots (moto_server, the bench extra), rebuilt the same way.
* **latency** (issue #19, item 3): from ``LighthouseServer()`` to its first answer (the
  subprocess start, the schema, the first signed call), and the p50 / p99 of one
  DescribeSnapshots (Limit 20; 10 snapshots) and one CreateInstanceSnapshot (durable before its
  answer) from the official SDK's client, one call after another on its kept-alive session.
* **suite**: a generated user suite of N tests, each creating an instance, writing its disk,
  snapshotting it and listing instances, run by pytest (in a subprocess) twice: with the
  ``lighthouse`` fixture (a reset before every test) and with the session's server and no
  reset (bare pytest overhead plus the same API calls). Model: with-reset = bare + N × reset
  (the server start is paid once by both), so the ratio is 1 + reset / (a test's own time).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.api import moto_server

WORLD_INSTANCES = 100
WORLD_SNAPSHOTS = 20


def _lightkeeper_world(server: Any) -> None:
    from tencentcloud.lighthouse.v20200324 import models

    client = server.client()
    account_instances: list[str] = []
    for n in range(WORLD_INSTANCES):
        account_instances.append(server.create_instance(state="STOPPED")["InstanceId"])
        server.write_disk(account_instances[-1], b"x" * 4096, offset=n * 4096)
    for account in range(WORLD_SNAPSHOTS // 2):  # 2 free snapshots per instance, 10 per account
        name = f"a{account}"
        server.create_account(name)
        owner = server.create_instance(account=name, state="STOPPED")["InstanceId"]
        for _ in range(2):
            request = models.CreateInstanceSnapshotRequest()
            request.InstanceId = owner
            server.wait_snapshot(
                server.client(account=name).CreateInstanceSnapshot(request).SnapshotId,
                account=name,
            )
    assert client.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 100


def reset_rounds(rounds: int) -> list[float]:
    from lightkeeper.testing import LighthouseServer

    times = []
    with LighthouseServer(rate_limit=False) as server:
        for _ in range(rounds):
            _lightkeeper_world(server)
            started = time.perf_counter()
            server.reset()
            times.append(time.perf_counter() - started)
    return times


def moto_reset_rounds(rounds: int) -> list[float] | None:
    with tempfile.TemporaryDirectory() as tmp:
        proc = moto_server(Path(tmp) / "moto.log")
        if proc is None:
            return None
        try:
            import boto3

            endpoint = f"http://127.0.0.1:{proc.port}"
            ec2 = boto3.client(
                "ec2",
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            times = []
            for _ in range(rounds):
                ec2.run_instances(ImageId="ami-12c6146b", MinCount=100, MaxCount=100)
                volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
                for _ in range(WORLD_SNAPSHOTS):
                    ec2.create_snapshot(VolumeId=volume)
                request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
                started = time.perf_counter()
                with urllib.request.urlopen(request) as reply:
                    reply.read()
                times.append(time.perf_counter() - started)
            return times
        finally:
            proc.stop()


SUITE_TEST = """
from tencentcloud.lighthouse.v20200324 import models


def test_{n}({fixture}):
    server = {fixture}
    instance_id = server.create_instance()["InstanceId"]
    server.write_disk(instance_id, b"data {n}" * 512)
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance_id
    snapshot_id = server.client().CreateInstanceSnapshot(request).SnapshotId
    assert server.wait_snapshot(snapshot_id).SnapshotState == "NORMAL"
    server.client().DescribeInstances(models.DescribeInstancesRequest())
"""


def suite_seconds(n_tests: int, fixture: str) -> float:
    """Wall time of pytest running the generated suite (collection and start included)."""
    with tempfile.TemporaryDirectory() as tmp:
        body = "".join(SUITE_TEST.format(n=n, fixture=fixture) for n in range(n_tests))
        (Path(tmp) / "test_suite.py").write_text(body)
        started = time.perf_counter()
        done = subprocess.run(
            [
                sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                # (without resets one account's snapshots pile up past the default cap)
                "--lighthouse-option", "rate_limit=false",
                "--lighthouse-option", "snapshot_quota_max=100000",
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"the generated suite failed: {done.stdout[-2000:]}")
        return elapsed


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def sdk_latency(samples: int) -> dict[str, float]:
    """Milliseconds: the first answer, and p50 / p99 of the two calls (see the docstring)."""
    from tencentcloud.lighthouse.v20200324 import models

    from lightkeeper.testing import LighthouseServer

    started = time.perf_counter()
    with LighthouseServer(rate_limit=False) as server:
        client = server.client()
        client.DescribeRegions(models.DescribeRegionsRequest())
        first = time.perf_counter() - started
        owners = [server.create_instance(state="STOPPED")["InstanceId"] for _ in range(5)]
        for owner in owners:  # 10 snapshots to list (the account's quota in a region)
            for _ in range(2):
                request = models.CreateInstanceSnapshotRequest()
                request.InstanceId = owner
                server.wait_snapshot(client.CreateInstanceSnapshot(request).SnapshotId)
        describe = models.DescribeSnapshotsRequest()
        describe.Limit = 20
        listed = []
        for _ in range(samples):
            t0 = time.perf_counter()
            client.DescribeSnapshots(describe)
            listed.append(time.perf_counter() - t0)
        server.create_account("creator")  # (its own quota)
        target = server.create_instance(account="creator", state="STOPPED")["InstanceId"]
        creator = server.client(account="creator")
        created = []
        for _ in range(samples):
            request = models.CreateInstanceSnapshotRequest()
            request.InstanceId = target
            t0 = time.perf_counter()
            snapshot_id = creator.CreateInstanceSnapshot(request).SnapshotId
            created.append(time.perf_counter() - t0)
            server.wait_snapshot(snapshot_id, account="creator")  # (not timed: the copy)
            delete = models.DeleteSnapshotsRequest()
            delete.SnapshotIds = [snapshot_id]
            creator.DeleteSnapshots(delete)
    ms = 1000.0
    return {
        "first_answer_ms": round(first * ms, 1),
        "describe_snapshots_p50_ms": round(_percentile(listed, 0.5) * ms, 2),
        "describe_snapshots_p99_ms": round(_percentile(listed, 0.99) * ms, 2),
        "create_snapshot_p50_ms": round(_percentile(created, 0.5) * ms, 2),
        "create_snapshot_p99_ms": round(_percentile(created, 0.99) * ms, 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    latency = sdk_latency(50 if quick else 300)
    rounds = 5 if quick else 15
    n_tests = 40 if quick else 200
    resets = reset_rounds(rounds)
    moto = moto_reset_rounds(rounds)
    with_reset = suite_seconds(n_tests, "lighthouse")
    bare = suite_seconds(n_tests, "lighthouse_server")
    result: dict[str, Any] = {
        "reset_median_ms": round(statistics.median(resets) * 1000, 1),
        "reset_max_ms": round(max(resets) * 1000, 1),
        "world": f"{WORLD_INSTANCES} + {WORLD_SNAPSHOTS // 2} instances, {WORLD_SNAPSHOTS} "
        "snapshots",
        "suite_tests": n_tests,
        "suite_with_reset_s": round(with_reset, 2),
        "suite_bare_s": round(bare, 2),
        "suite_ratio": round(with_reset / bare, 3),
        "suite_model_ratio": round(1 + n_tests * statistics.median(resets) / max(bare, 1e-9), 3),
        **latency,
    }
    if moto is not None:
        result["moto_reset_median_ms"] = round(statistics.median(moto) * 1000, 1)
        result["reset_vs_moto"] = round(statistics.median(resets) / statistics.median(moto), 2)
    for key, value in result.items():
        print(f"testing  {key:24} {value}")
    return result
