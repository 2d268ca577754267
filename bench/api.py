"""API throughput and latency on loopback, every request signed with TC3-HMAC-SHA256.

Load comes from another process: ``wrk -t1 -c16`` (Debian's wrk) replaying pre-signed requests
from a Lua table for saturation, and ``bench.loadgen`` (asyncio, fixed arrival rate, latency
measured from each request's due time) for latency at 200 req/s. Baselines in the same run:

* ``bare``: ``bench.bare_app``, a fixed JSON envelope behind the same uvicorn settings;
* ``moto``: ``moto_server`` answering EC2 DescribeSnapshots (1,000 snapshots, MaxResults=20)
  and CreateSnapshot, signed with SigV4 by botocore (moto does not verify signatures, so the
  pre-signed requests are simply replayed).

The rate limiter is off for the throughput runs (``--no-rate-limit``); its cost is measured
by alternating runs against a second server with limits on but set far above the load.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    Proc,
    Signed,
    free_port,
    loadgen,
    saturate,
    send,
    tc3_request,
)
from bench.seed import REGION, Seeded, open_world, seed

N_SNAPSHOTS = 1000
FIXED_RATE = 200.0
# The quota made unlimited, as a per-instance quota no count can reach: a create then counts
# one instance for it (rules.quota_counts_that_matter), as with the real quota's 5; with
# "1000 per instance" it counted every instance of the account (4,500 in the cluster suite).
SERVE_FLAGS = [
    "--log-level",
    "warning",
    "--snapshot-quota-per-instance",
    "10000000",
    "--snapshot-quota-max",
    "10000000",
    "--transition-seconds",
    "0",
]
TARGETS = {
    "describe_vs_moto": 30.0,
    "create_vs_moto": 30.0,
    "describe_vs_bare": 0.5,
    "p99_ms_at_200": 20.0,
    "limiter_cost": 0.05,
}


def lightkeeper_server(data_dir: Path, log: Path, *extra: str) -> Proc:
    port = free_port()
    argv = [PYTHON, "-m", "lightkeeper", "serve", "--data-dir", str(data_dir)]
    return Proc([*argv, "--port", str(port), *SERVE_FLAGS, *extra], port, log)


def describe_requests(port: int, who: Seeded, count: int = 8) -> list[Signed]:
    """A few variants (offsets) of DescribeSnapshots Limit=20, all the same cost."""
    host = f"127.0.0.1:{port}"
    return [
        tc3_request(
            host,
            who.secret_id,
            who.secret_key,
            "DescribeSnapshots",
            REGION,
            {"Offset": 20 * n, "Limit": 20},
        )
        for n in range(count)
    ]


def create_requests(port: int, who: Seeded, instance_ids: list[str]) -> list[Signed]:
    host = f"127.0.0.1:{port}"
    return [
        tc3_request(
            host,
            who.secret_id,
            who.secret_key,
            "CreateInstanceSnapshot",
            REGION,
            {"InstanceId": instance_id},
        )
        for instance_id in instance_ids
    ]


def check(port: int, request: Signed) -> None:
    status, body = send(port, request)
    if status != 200 or b'"Error"' in body:
        raise RuntimeError(f"probe failed: {status} {body[:300]!r}")


def wait_jobs_drained(services: Any, timeout: float = 120) -> None:
    """Let the snapshot copies of one run finish before the next run starts."""
    from lightkeeper.store import jobs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.engine.connect() as conn:
            if not jobs.queued(conn):
                return
        time.sleep(0.5)


# -- moto -------------------------------------------------------------------------------------


def moto_server(log: Path) -> Proc | None:
    """``moto_server`` started on a free port, or None when it is not installed."""
    if not shutil.which("moto_server"):
        return None
    port = free_port()
    argv = ["moto_server", "-p", str(port)]
    return Proc(argv, port, log, env={"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}).start()


def moto_requests(port: int, n_snapshots: int) -> tuple[list[Signed], list[Signed], int]:
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    endpoint = f"http://127.0.0.1:{port}"
    ec2 = boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    made = [
        ec2.create_snapshot(VolumeId=volume, Description=f"snap-{n}")["SnapshotId"]
        for n in range(n_snapshots)
    ]
    page = made[-20:]
    listed = ec2.describe_snapshots(SnapshotIds=page)["Snapshots"]
    credentials = Credentials("testing", "testing")

    def signed(body: str) -> Signed:
        request = AWSRequest(
            "POST",
            endpoint + "/",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        SigV4Auth(credentials, "ec2", "us-east-1").add_auth(request)
        headers = {k: str(v) for k, v in request.headers.items()}
        headers["Host"] = f"127.0.0.1:{port}"
        return Signed("POST", "/", headers, body.encode())

    version = "Action={}&Version=2016-11-15"
    # moto ignores MaxResults for DescribeSnapshots (it answers the whole list), so the page
    # of 20 is asked for by id: the same 20-item answer, found among the 1,000.
    ids = "".join(f"&SnapshotId.{n + 1}={s}" for n, s in enumerate(page))
    describe = [signed(version.format("DescribeSnapshots") + ids)]
    create = [signed(version.format("CreateSnapshot") + f"&VolumeId={volume}")]
    return describe, create, len(listed)


# -- the suite --------------------------------------------------------------------------------


def row(name: str, result: dict[str, Any]) -> None:
    p50 = f"{result['p50_ms']:.2f}" if "p50_ms" in result else "-"
    p99 = f"{result['p99_ms']:.2f}" if "p99_ms" in result else "-"
    print(
        f"  {name:44} {result['rps']:9.0f} req/s  p50 {p50:>7} ms  p99 {p99:>7} ms  "
        f"errors {result['errors']}/{result['requests']}"
    )


def run(quick: bool = False) -> dict[str, Any]:
    seconds = 3.0 if quick else 10.0
    fixed_seconds = 2.0 if quick else 5.0
    pool_size = 1000 if quick else 4000  # one create per instance: more than both runs send
    results: dict[str, Any] = {"method": {}}
    with tempfile.TemporaryDirectory(
        prefix="lk-bench-api-", dir=os.environ.get("BENCH_DIR")
    ) as tmp:
        root = Path(tmp)
        data = root / "data"
        log = root / "servers.log"
        started = time.perf_counter()
        services = open_world(data)
        reader = seed(services, "reader", 50, N_SNAPSHOTS)
        writer = seed(services, "writer", pool_size, 0, disks=True)
        services.engine.dispose()
        results["seed_s"] = time.perf_counter() - started
        print(
            f"\nAPI (seeded {N_SNAPSHOTS} snapshots + {pool_size} instances in "
            f"{results['seed_s']:.1f}s; {seconds:.0f}s saturation runs)"
        )

        # 1. bare stack and Lightkeeper (limiter off) alternate, twice each, and the best run
        # of each counts: on a shared machine noise only ever lowers a run. A twin server with
        # the limiter on (limits far above the load) alternates with the same server the same
        # way for the limiter's cost.
        config = root / "limits.toml"
        config.write_text(
            "rate_limits = { DescribeSnapshots = 100000000, CreateInstanceSnapshot = 100000000 }\n"
        )
        port = free_port()
        bare = Proc([PYTHON, "-m", "bench.bare_app", "--port", str(port)], port, log).start()
        lk = lightkeeper_server(data, log, "--no-rate-limit").start()
        # a second server on the same database: a node of its own name (issue #13)
        limited = lightkeeper_server(
            data, log, "--config", str(config), "--rate-limit", "--node", "limited"
        ).start()
        half = seconds / 2
        try:
            describe = describe_requests(lk.port, reader)
            check(lk.port, describe[0])
            bare_runs, lk_runs = [], []
            for _ in range(2):
                bare_runs.append(saturate(bare.port, describe_requests(bare.port, reader, 1), half))
                lk_runs.append(saturate(lk.port, describe_requests(lk.port, reader), half))
            bare.stop()
            results["bare"] = max(bare_runs, key=lambda r: r["rps"])
            results["describe"] = max(lk_runs, key=lambda r: r["rps"])
            row("bare uvicorn (fixed envelope), best of 2", results["bare"])
            row("DescribeSnapshots (1,000, Limit=20), best of 2", results["describe"])
            results["describe_200rps"] = loadgen(
                lk.port, describe_requests(lk.port, reader), seconds=fixed_seconds, rate=FIXED_RATE
            )
            row(f"DescribeSnapshots @ {FIXED_RATE:.0f} req/s", results["describe_200rps"])

            off_runs, on_runs = [], []
            for _ in range(2):
                on_runs.append(
                    saturate(limited.port, describe_requests(limited.port, reader), half)["rps"]
                )
                off_runs.append(saturate(lk.port, describe_requests(lk.port, reader), half)["rps"])
            limiter_cost = 1 - max(on_runs) / max(off_runs)
            results["limiter"] = {"off_rps": off_runs, "on_rps": on_runs, "cost": limiter_cost}
            print(
                f"  rate limiter on (limits high) vs off: {on_runs} vs {off_runs} req/s, "
                f"cost {limiter_cost:+.1%} (best vs best)"
            )
            limited.stop()

            fixed_ids = writer.instance_ids[: int(FIXED_RATE * fixed_seconds)]
            saturate_ids = writer.instance_ids[len(fixed_ids) :]
            results["create_200rps"] = loadgen(
                lk.port,
                create_requests(lk.port, writer, fixed_ids),
                seconds=fixed_seconds,
                rate=FIXED_RATE,
            )
            row(f"CreateInstanceSnapshot @ {FIXED_RATE:.0f} req/s", results["create_200rps"])
            services = open_world(data)
            wait_jobs_drained(services)
            results["create"] = saturate(
                lk.port, create_requests(lk.port, writer, saturate_ids), seconds
            )
            row("CreateInstanceSnapshot (one per instance)", results["create"])
        finally:
            for proc in (bare, lk, limited):
                proc.stop()
            services.engine.dispose()

        # 3. moto
        moto = moto_server(log)
        if moto is not None:
            try:
                m_describe, m_create, listed = moto_requests(moto.port, N_SNAPSHOTS)
                # create first: a slow server keeps answering queued requests after wrk stops
                results["moto_create"] = saturate(moto.port, m_create, seconds)
                row("moto CreateSnapshot", results["moto_create"])
                time.sleep(2)
                results["moto_describe"] = saturate(moto.port, m_describe, seconds)
                row(
                    f"moto DescribeSnapshots (20 of 1,000 by id: {listed})",
                    results["moto_describe"],
                )
            finally:
                moto.stop()
    results["ratios"] = _ratios(results)
    return results


def _ratios(r: dict[str, Any]) -> dict[str, Any]:
    ratios: dict[str, Any] = {
        "describe_vs_bare": r["describe"]["rps"] / r["bare"]["rps"],
        "p99_ms_describe_at_200": r["describe_200rps"]["p99_ms"],
        "p99_ms_create_at_200": r["create_200rps"]["p99_ms"],
        "limiter_cost": r["limiter"]["cost"],
    }
    if "moto_describe" in r:
        ratios["describe_vs_moto"] = r["describe"]["rps"] / r["moto_describe"]["rps"]
        ratios["create_vs_moto"] = r["create"]["rps"] / r["moto_create"]["rps"]
    print("  ratios (same run):")
    for name, value in ratios.items():
        print(f"    {name:28} {value:8.3f}")
    return ratios
