"""Ceph RBD (issue #15): what the rbd driver's snapshot and rollback cost against Ceph's own
``rbd snap create`` / ``rbd snap rollback`` on the same image state, in the same run, and the
space 10 snapshots take.

A private one-node cluster (testkit/ceph.py: one BlueStore OSD on a sparse file in /tmp, so
absolute times are one disk's, not a cluster's) unless ``CEPH_CONF`` names one. For each
size (1 and 16 GiB; quick: 1 GiB) a disk is made by the driver and filled 100 % with
incompressible data through librbd, then:

* first snapshot (every block hashed: reported, no target);
* 1 % rewritten (1 MiB pieces at random offsets), second snapshot = the incremental one,
  against ``rbd snap create`` of the same state (median of 3) and librbd's ``create_snap``
  called in-process (what the tool costs without its process start);
* another 1 % rewritten, driver rollback to the second snapshot against ``rbd snap
  rollback`` to a snapshot taken at the same moment (median of 3);
* 10 more snapshots, each after 1 % rewritten: ``rbd du`` of the image (bytes used by the
  disk and all its snapshots) against the data and what was rewritten (RBD copies on write
  whole 4 MiB objects, so a 1 MiB rewrite costs up to 4 MiB).

Targets: incremental snapshot and rollback <= 2x ``rbd snap create`` / ``rbd snap rollback``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testkit import ceph

from bench.datapath_util import GiB, MiB, quiet, size_label, timed
from lightkeeper.storage import make_driver
from lightkeeper.storage.rbd import DISK_PREFIX, RbdDriver

TARGET = 2.0
REPEAT = 3
SEED = 15


@contextmanager
def cluster() -> Iterator[Path]:
    given = os.environ.get("CEPH_CONF")
    if given:
        yield Path(given)
        return
    with ceph.running(Path(tempfile.mkdtemp(prefix="lk-bench-ceph-"))) as running:
        os.environ["CEPH_CONF"] = str(running.conf)
        try:
            yield running.conf
        finally:
            del os.environ["CEPH_CONF"]


def rbd_cli(conf: Path, namespace: str, *args: str) -> str:
    done = subprocess.run(
        ["rbd", "-c", str(conf), "--namespace", namespace, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def median_of(sample: Callable[[], float]) -> float:
    return statistics.median(sample() for _ in range(REPEAT))


def rewrite(image: Any, size: int, rng: random.Random) -> None:
    """1 % of the image in 1 MiB pieces at random 1 MiB-aligned offsets."""
    for _ in range(max(1, size // MiB // 100)):
        image.write(rng.randbytes(MiB), rng.randrange(size // MiB) * MiB)
    image.flush()


def fill(image: Any, size: int, rng: random.Random) -> None:
    piece = rng.randbytes(8 * MiB)
    for n, offset in enumerate(range(0, size, 8 * MiB)):
        image.write(piece[n % 7 :] + piece[: n % 7], offset)  # (distinct per chunk)
    image.flush()


def case(conf: Path, namespace: str, size: int, root: Path) -> dict[str, Any]:
    import rbd

    rng = random.Random(SEED + size)
    driver = make_driver("rbd", root, namespace=namespace)
    assert isinstance(driver, RbdDriver)
    disk = f"lhdisk-{size // GiB:08d}"
    spec = f"rbd/{DISK_PREFIX}{disk}"
    driver.create_disk(disk, size)
    with rbd.Image(driver.ioctx, DISK_PREFIX + disk) as image:
        started = time.perf_counter()
        fill(image, size, rng)
        fill_s = time.perf_counter() - started
    first = timed(lambda: driver.create_snapshot(disk, "lhsnap-first000", quiet))

    with rbd.Image(driver.ioctx, DISK_PREFIX + disk) as image:
        rewrite(image, size, rng)
    second = ""

    def take_second() -> None:
        nonlocal second
        second = driver.create_snapshot(disk, "lhsnap-second00", quiet)

    incremental = timed(take_second)
    want = driver.disk_sha256(disk) if size <= GiB else None  # (a full read: 1 GiB only)
    names = iter(range(1000))

    def cli_snap() -> float:
        name = f"anchor{next(names)}"
        took = timed(lambda: rbd_cli(conf, namespace, "snap", "create", f"{spec}@{name}"))
        rbd_cli(conf, namespace, "snap", "rm", f"{spec}@{name}")
        return took

    def lib_snap() -> float:
        name = f"anchor{next(names)}"
        with rbd.Image(driver.ioctx, DISK_PREFIX + disk) as image:
            took = timed(lambda: image.create_snap(name))
            image.remove_snap(name)
        return took

    snap_cli, snap_lib = median_of(cli_snap), median_of(lib_snap)
    rbd_cli(conf, namespace, "snap", "create", f"{spec}@twin")  # the same state, for the CLI
    with rbd.Image(driver.ioctx, DISK_PREFIX + disk) as image:
        rewrite(image, size, rng)
    rollback = timed(lambda: driver.restore_snapshot(disk, "lhsnap-second00", second, quiet))
    verified = None if want is None else driver.disk_sha256(disk) == want

    def cli_rollback() -> float:
        with rbd.Image(driver.ioctx, DISK_PREFIX + disk) as image:
            rewrite(image, size, rng)
        return timed(lambda: rbd_cli(conf, namespace, "snap", "rollback", f"{spec}@twin"))

    rollback_cli = median_of(cli_rollback)
    rbd_cli(conf, namespace, "snap", "rm", f"{spec}@twin")

    for n in range(10):
        with rbd.Image(driver.ioctx, DISK_PREFIX + disk) as image:
            rewrite(image, size, rng)
        driver.create_snapshot(disk, f"lhsnap-ten{n:05d}", quiet)
    usage = json.loads(rbd_cli(conf, namespace, "du", "--format", "json", spec))
    images = usage.get("images", [])
    snaps_used = sum(i.get("used_size", 0) for i in images if i.get("snapshot"))
    head_used = sum(i.get("used_size", 0) for i in images if not i.get("snapshot"))
    driver.delete_disk(disk)
    driver.close()
    return {
        "size": size,
        "fill_s": fill_s,
        "first_snapshot_s": first,
        "incremental_snapshot_s": incremental,
        "rbd_snap_create_s": snap_cli,
        "librbd_create_snap_s": snap_lib,
        "snapshot_vs_anchor": incremental / snap_cli,
        "rollback_s": rollback,
        "rbd_snap_rollback_s": rollback_cli,
        "rollback_vs_anchor": rollback / rollback_cli,
        "rollback_verified": verified,
        "snapshots_used_bytes": snaps_used,
        "disk_used_bytes": head_used,
        "total_used_bytes": snaps_used + head_used,
        "snapshots": len([i for i in images if i.get("snapshot")]),
        "rewritten_bytes_per_snapshot": max(1, size // MiB // 100) * MiB,
    }


def run(quick: bool = False) -> dict[str, Any]:
    sizes = [GiB] if quick else [GiB, 16 * GiB]
    print(
        "\nCeph RBD (one-node cluster, BlueStore on a sparse file): 100 % allocated, 1 % "
        "rewritten before each op;\nanchors `rbd snap create` / `rbd snap rollback` "
        f"(medians of {REPEAT}); x/anc target <= {TARGET}.",
        flush=True,
    )
    results: dict[str, Any] = {}
    with cluster() as conf, ceph.namespace(conf, f"bench{os.getpid()}") as namespace:
        with tempfile.TemporaryDirectory(prefix="lk-bench-rbd-") as tmp:
            for size in sizes:
                row = case(conf, namespace, size, Path(tmp))
                results[size_label(size)] = row
                print(f"  {size_label(size):>5}: {_line(row)}", flush=True)
    return {"targets": {"vs_anchor": TARGET}, "anchor_samples": REPEAT, "sizes": results}


def _line(row: dict[str, Any]) -> str:
    return (
        f"fill {row['fill_s']:.1f} s, first snapshot {row['first_snapshot_s']:.2f} s; "
        f"incremental {row['incremental_snapshot_s']:.3f} s vs rbd snap create "
        f"{row['rbd_snap_create_s']:.3f} s (x{row['snapshot_vs_anchor']:.2f}; librbd "
        f"create_snap {row['librbd_create_snap_s']:.3f} s); rollback {row['rollback_s']:.3f} s "
        f"vs rbd snap rollback {row['rbd_snap_rollback_s']:.3f} s "
        f"(x{row['rollback_vs_anchor']:.2f}, verified {row['rollback_verified']}); "
        f"image + {row['snapshots']} snapshots use {row['total_used_bytes'] / MiB:.0f} MiB "
        f"(data {row['size'] / MiB:.0f} MiB, {row['rewritten_bytes_per_snapshot'] / MiB:.0f} MiB "
        "rewritten between snapshots)"
    )
