"""Data path of every storage driver, each figure against a baseline measured in this run:

* device: sequential write (+fsync) and uncached read speed, the limit of any copy;
* raw: snapshot and rollback of 1/4/16 GiB disks with 10/50/100 % of blocks allocated, vs
  ``cp --sparse=always`` of the image (the naive copy) and that cp + fsync (durable, as our
  snapshot is); target >= 90 % of cp's throughput (``bench.datapath_raw``);
* qcow2: the same data in 1/4/16 GiB images vs ``qemu-img snapshot -c/-a`` itself;
* reflink: the raw driver on a loop-mounted XFS with reflink=1, vs ``cp --reflink=always``;
* space: bytes used by N snapshots of a disk with small changes, per driver and filesystem.

The suite keeps to a wall-clock budget (``BENCH_DATAPATH_BUDGET_S``; 400 s, quick 40 s) so
the whole ``python -m bench`` fits in 10 minutes: the raw matrix runs last and measures its
biggest cases with one sample, or skips them with the reason, when time would run out.
The page cache is never dropped (that would disturb the whole machine); see each table.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datapath_device import measure_device, report_device
from bench.datapath_qcow2 import report_qcow2, run_qcow2
from bench.datapath_raw import MatrixConfig, Planner, report_matrix, run_matrix, summarize
from bench.datapath_space import SpaceConfig, report_space, space_case
from bench.datapath_util import Budget, GiB, MiB, RandomPieces, fs_type
from bench.datapath_xfs import Unavailable, report_reflink, run_reflink, xfs_mount
from lightkeeper.storage import StorageError

HASH_S_PER_BYTE = 1 / 1.5e9
"""Rough sha256 cost, for the first time estimate before any case has been measured."""


@dataclass(frozen=True)
class Config:
    budget_s: float
    device_bytes: int
    matrix: MatrixConfig
    qcow2_sizes: tuple[int, ...]
    qcow2_data: int
    reflink_cases: tuple[tuple[int, int], ...]
    xfs_bytes: int
    space: SpaceConfig


FULL = Config(
    budget_s=400,
    device_bytes=GiB,
    matrix=MatrixConfig(
        sizes=(GiB, 4 * GiB, 16 * GiB), percents=(10, 50, 100), small_data=512 * MiB
    ),
    qcow2_sizes=(GiB, 4 * GiB, 16 * GiB),
    qcow2_data=256 * MiB,
    reflink_cases=((GiB, 10), (GiB, 100), (16 * GiB, 10)),
    xfs_bytes=40 * GiB,
    space=SpaceConfig(disk=4 * GiB, data=256 * MiB, count=10),
)
QUICK = Config(
    budget_s=40,
    device_bytes=256 * MiB,
    matrix=MatrixConfig(sizes=(64 * MiB, 256 * MiB), percents=(10, 50, 100), small_data=64 * MiB),
    qcow2_sizes=(GiB, 16 * GiB),
    qcow2_data=32 * MiB,
    reflink_cases=((GiB, 10), (4 * GiB, 10)),
    xfs_bytes=8 * GiB,
    space=SpaceConfig(disk=GiB, data=64 * MiB, count=5),
)


def _xfs_sections(
    root: Path, config: Config, pieces: RandomPieces
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reflink timings and raw-on-XFS space, both on one mount, or both skipped with why."""
    try:
        with xfs_mount(root, config.xfs_bytes) as xfs:
            reflink = run_reflink(xfs, config.reflink_cases, pieces, config.matrix.small_data)
            space = space_case("raw", xfs.path / "space", config.space, pieces, by_statvfs=True)
            return reflink, space
    except Unavailable as exc:
        return {"skipped": str(exc)}, {"skipped": str(exc)}
    except (OSError, RuntimeError, StorageError) as exc:
        # The mount is borrowed from the machine; its failure must not cost the other tables.
        failed = f"failed: {type(exc).__name__}: {exc}"
        return {"skipped": failed}, {"skipped": failed}


def _space(
    root: Path, fs: str, config: Config, xfs_space: dict[str, Any], pieces: RandomPieces
) -> dict[str, Any]:
    rows: dict[str, Any] = {
        f"raw/{fs}": space_case("raw", root / "space-raw", config.space, pieces, False),
        "raw/xfs-reflink": xfs_space,
    }
    if shutil.which("qemu-img") and shutil.which("qemu-io"):
        rows[f"qcow2/{fs}"] = space_case("qcow2", root / "space-qcow2", config.space, pieces, False)
    else:
        rows[f"qcow2/{fs}"] = {"skipped": "skipped: qemu-img/qemu-io not installed"}
    return rows


def _reflink_vs_copy(reflink: dict[str, Any], matrix: dict[str, dict[str, Any]]) -> None:
    """Same disk on XFS (clone) and on the copying filesystem: what reflink buys. The copy
    hashes data it has just written (page cache), the clone's checksum pass reads it from
    the device, so reflink wins on size, not necessarily on allocated data."""
    for key, row in reflink.items():
        other = matrix.get(key.replace("xfs/", "raw/", 1))
        if isinstance(row, dict) and other and "snapshot_s" in other:
            row["snapshot_copy_vs_reflink"] = other["snapshot_s"] / row["snapshot_s"]
            row["rollback_copy_vs_reflink"] = other["rollback_s"] / row["rollback_s"]
            print(
                f"{key}: time on the copying fs / on XFS reflink: snapshot "
                f"{row['snapshot_copy_vs_reflink']:.2f}, rollback "
                f"{row['rollback_copy_vs_reflink']:.2f} (> 1: reflink faster)"
            )


def run(quick: bool = False) -> dict[str, Any]:
    config = QUICK if quick else FULL
    budget = Budget(float(os.environ.get("BENCH_DATAPATH_BUDGET_S", config.budget_s)))
    pieces = RandomPieces()
    with tempfile.TemporaryDirectory(prefix="lk-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        fs = fs_type(root)
        device = measure_device(root, config.device_bytes, pieces)
        report_device(device)
        qcow2 = run_qcow2(root, config.qcow2_sizes, config.qcow2_data, pieces)
        report_qcow2(qcow2, config.qcow2_data)
        reflink, xfs_space = _xfs_sections(root, config, pieces)
        report_reflink(reflink)
        space = _space(root, fs, config, xfs_space, pieces)
        report_space(space, config.space)
        write_s_per_byte = 1 / (device["write_MBps"] * 1e6)
        planner = Planner(budget, write_s_per_byte, 3 * write_s_per_byte + 2 * HASH_S_PER_BYTE)
        matrix = run_matrix(root, config.matrix, planner, pieces, device["limit_MBps"])
    report_matrix(matrix, fs, device["limit_MBps"])
    summary = summarize(matrix)
    _reflink_vs_copy(reflink, matrix)
    wall = budget.elapsed()
    print(f"datapath wall time {wall:.0f} s (budget {budget.seconds:.0f} s)")
    results = {**matrix, **{k: v for k, v in qcow2.items() if k != "skipped"}}
    return {
        "wall_s": wall,
        "budget_s": budget.seconds,
        "filesystem": fs,
        "device": device,
        "results": results,
        "raw_summary": summary,
        "qcow2": {"skipped": qcow2["skipped"]}
        if "skipped" in qcow2
        else {"data_bytes": config.qcow2_data},
        "reflink": reflink,
        "space": space,
    }
