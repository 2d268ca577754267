"""``python -m bench.first_hour [--quick]``: what a newcomer waits for (issue #16).

* ``admin_startup``: wall time of ``lightkeeper admin account list --data-dir D`` (a new
  process each time), median of several runs, with a warm bytecode cache (as an installed
  package has) and without one (``PYTHONDONTWRITEBYTECODE=1``, as some sandboxes run).
* ``disk_sha256``: ``lightkeeper admin disk sha256`` of a sparse raw disk holding 4 MiB of
  data. Holes are not read, but sha256 still digests their zeros, so the time follows the
  disk's size at sha256's speed, which is measured alongside for comparison; and ``admin
  disk checksum`` of the same disk, whose block checksum costs the data alone.

tests/cli/test_first_hour.py checks the structural properties (no server stack imported, the
holes not read); the times live here, where a busy machine makes a number, not a failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LIGHTKEEPER = [sys.executable, "-m", "lightkeeper"]
MiB = 1024 * 1024


def _run(args: list[str], env: dict[str, str], stdin: bytes | None = None) -> float:
    started = time.perf_counter()
    subprocess.run([*LIGHTKEEPER, *args], env=env, input=stdin, capture_output=True, check=True)
    return time.perf_counter() - started


def admin_startup(data: Path, runs: int) -> dict[str, float]:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as cache:
        warm = {**base, "PYTHONPYCACHEPREFIX": cache}
        listing = ["admin", "account", "list", "--data-dir", str(data)]
        _run(listing, warm)  # fills the bytecode cache
        cached = [_run(listing, warm) for _ in range(runs)]
    uncached = [_run(listing, {**base, "PYTHONDONTWRITEBYTECODE": "1"}) for _ in range(runs)]
    return {
        "median_s_bytecode_cached": round(statistics.median(cached), 3),
        "median_s_no_bytecode_cache": round(statistics.median(uncached), 3),
    }


def disk_sha256(data: Path, size_gb: int) -> dict[str, float]:
    env = dict(os.environ)
    created = subprocess.run(
        [*LIGHTKEEPER, "admin", "instance", "create", "--account", "bench", "--region",
         "ap-guangzhou", "--disk-size", str(size_gb), "--json", "--data-dir", str(data)],
        env=env, capture_output=True, check=True,
    )  # fmt: skip
    instance_id = json.loads(created.stdout)["InstanceId"]
    _run(["admin", "disk", "write", instance_id, "--offset", str(MiB), "--data-dir", str(data)],
         env, os.urandom(4 * MiB))  # fmt: skip
    seconds = _run(["admin", "disk", "sha256", instance_id, "--data-dir", str(data)], env)
    checksum = _run(["admin", "disk", "checksum", instance_id, "--data-dir", str(data)], env)
    startup = _run(["admin", "account", "list", "--data-dir", str(data)], env)
    zeros, digest = bytes(64 * MiB), hashlib.sha256()
    started = time.perf_counter()
    for _ in range(16):
        digest.update(zeros)
    rate = 1024 * MiB / (time.perf_counter() - started)
    return {
        "disk_gib": size_gb,
        "seconds": round(seconds, 2),
        "checksum_seconds": round(checksum, 2),
        "checksum_seconds_minus_startup": round(checksum - startup, 2),
        "sha256_of_zeros_gb_per_s": round(rate / 1e9, 2),
        "expected_seconds_at_that_rate": round(size_gb * 1024 * MiB / rate, 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir(mode=0o700)
        subprocess.run(
            [*LIGHTKEEPER, "admin", "account", "create", "bench", "--data-dir", str(data)],
            capture_output=True, check=True,
        )  # fmt: skip
        results = {
            "admin_startup": admin_startup(data, 3 if quick else 7),
            "disk_sha256": disk_sha256(data, 1 if quick else 10),
        }
    for name, figures in results.items():
        print(name, json.dumps(figures))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.first_hour")
    parser.add_argument("--quick", action="store_true", help="a 1 GiB disk, fewer runs")
    run(quick=parser.parse_args().quick)
