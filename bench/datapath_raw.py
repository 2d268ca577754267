"""Raw driver: snapshot and rollback time for disks of several sizes and allocated
fractions, against ``cp --sparse=always`` of the same image (the naive copy), the same cp
followed by an fsync of the copy (durable, as our snapshot is) and the device limit.

Each size's disk is filled step by step (10 % ⊂ 50 % ⊂ 100 % of its 4 MiB slots, evenly
spread), measured after each step, and deleted before the next size, so at most the disk,
one snapshot and one rollback temp (or one cp copy) exist at a time.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datapath_util import (
    PIECE,
    Budget,
    GiB,
    RandomPieces,
    cp_then_fsync,
    fs_free,
    mb_per_s,
    new_id,
    quiet,
    size_label,
    spread_slots,
    take_snapshot,
    timed,
    write_pieces,
)
from lightkeeper.storage import StorageDriver, make_driver

COPYING = frozenset({"ext2", "ext3", "ext4", "tmpfs"})
"""Filesystems without FICLONE, where the driver falls back to a sparse copy."""
TARGET = 0.90
"""Issue target: our throughput >= 90 % of cp's on the same image."""


def _rollback(driver: StorageDriver, disk: str, snap: str, checksum: str) -> float:
    return timed(lambda: driver.restore_snapshot(disk, snap, checksum, quiet))


def measure_ops(
    driver: StorageDriver, disk: str, samples: int, scratch: Path, cp_mode: str
) -> dict[str, float]:
    """Medians over `samples` of: snapshot, rollback to it, and ``cp cp_mode`` (+ fsync) of
    the image. Each snapshot is deleted before the cp, so only one extra copy exists."""
    snaps, rolls, cps, cp_fsyncs = [], [], [], []
    image = driver.attachment(disk).path
    for _ in range(samples):
        snap = new_id("lhsnap")
        snap_s, checksum = take_snapshot(driver, disk, snap)
        snaps.append(snap_s)
        rolls.append(_rollback(driver, disk, snap, checksum))
        driver.delete_snapshot(disk, snap)
        copy = cp_then_fsync(image, scratch, cp_mode)
        cps.append(copy.cp_s)
        cp_fsyncs.append(copy.cp_fsync_s)
    return {
        "snapshot_s": statistics.median(snaps),
        "rollback_s": statistics.median(rolls),
        "cp_s": statistics.median(cps),
        "cp_fsync_s": statistics.median(cp_fsyncs),
    }


def derive(row: dict[str, Any], data: int, limit_mbps: float) -> None:
    """Throughputs and the ratios the issue asks for; ratio = cp time / our time, so 1.0
    means as fast as cp and the target is >= 0.90."""
    for op in ("snapshot", "rollback", "cp", "cp_fsync"):
        row[f"{op}_MBps"] = mb_per_s(data, row[f"{op}_s"])
    for op in ("snapshot", "rollback"):
        row[f"{op}_throughput_vs_cp"] = row["cp_s"] / row[f"{op}_s"]
        row[f"{op}_throughput_vs_cp_fsync"] = row["cp_fsync_s"] / row[f"{op}_s"]
        row[f"{op}_of_device_limit"] = row[f"{op}_MBps"] / limit_mbps if limit_mbps else None


@dataclass
class Planner:
    """Estimates a case's wall time from what earlier cases (or the device probe) cost, so
    cases that would overrun the suite's budget are reduced to one sample or skipped."""

    budget: Budget
    fill_s_per_byte: float
    sample_s_per_byte: float  # snapshot + rollback + cp + fsync, per allocated byte

    def estimate(self, fill: int, data: int, samples: int) -> float:
        """Seconds, with 10 % + 1 s margin for deletes and noise between the timed calls."""
        work = fill * self.fill_s_per_byte + samples * data * self.sample_s_per_byte
        return 1.0 + 1.1 * work

    def learn(self, fill: int, fill_s: float, data: int, row: dict[str, Any]) -> None:
        """Small cases are dominated by fixed costs, so only sizeable ones teach rates."""
        if fill >= 256 * 1024**2:
            self.fill_s_per_byte = fill_s / fill
        if data >= 256 * 1024**2:
            sample = row["snapshot_s"] + row["rollback_s"] + row["cp_fsync_s"]
            self.sample_s_per_byte = sample / data


@dataclass(frozen=True)
class MatrixConfig:
    sizes: Sequence[int]
    percents: Sequence[int]
    small_data: int  # cases with at most this much data get 3 samples, others 1


def _plan(
    planner: Planner, fill: int, data: int, samples: int, reserve: float
) -> tuple[int, str | None]:
    """(samples, None) if the case fits the remaining budget (minus `reserve` for cases
    still to come that matter more), else (0, reason)."""
    left = planner.budget.left() - reserve
    for n in sorted({samples, 1}, reverse=True):
        if planner.estimate(fill, data, n) <= left:
            return n, None
    need = planner.estimate(fill, data, 1)
    return 0, (
        f"skipped: over time budget (needs ~{need:.0f} s, {max(left, 0):.0f} s left; "
        "raise BENCH_DATAPATH_BUDGET_S to run it)"
    )


def _reserve(planner: Planner, config: MatrixConfig, size: int, percent: int) -> float:
    """Time kept for the smallest fraction of each larger size: showing every size at the
    lowest allocation beats one more point at a high allocation."""
    low = min(config.percents)
    if percent == low:
        return 0.0
    total = 0.0
    for later in (s for s in config.sizes if s > size):
        data = len(spread_slots(later, low)) * PIECE
        total += planner.estimate(data, data, 1)
    return total


def _fill(image: Path, slots: list[int], pieces: RandomPieces) -> float:
    return timed(lambda: write_pieces(image, (s * PIECE for s in slots), pieces))


def run_matrix(
    root: Path, config: MatrixConfig, planner: Planner, pieces: RandomPieces, limit_mbps: float
) -> dict[str, dict[str, Any]]:
    """Every (size, percent) case, in order; keys like ``raw/16GiB/50%``."""
    rows: dict[str, dict[str, Any]] = {}
    for size in config.sizes:
        rows.update(_one_size(root, size, config, planner, pieces, limit_mbps))
    return rows


def _one_size(
    root: Path,
    size: int,
    config: MatrixConfig,
    planner: Planner,
    pieces: RandomPieces,
    limit_mbps: float,
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    driver = make_driver("raw", root / "raw")
    disk = new_id("lhdisk")
    driver.create_disk(disk, size)
    written: set[int] = set()
    try:
        for percent in config.percents:
            key = f"raw/{size_label(size)}/{percent}%"
            slots = spread_slots(size, percent)
            new = [s for s in slots if s not in written]
            data, fill = len(slots) * PIECE, len(new) * PIECE
            samples, skipped = _plan(
                planner,
                fill,
                data,
                3 if data <= config.small_data else 1,
                _reserve(planner, config, size, percent),
            )
            if skipped is None and fs_free(root) < fill + 2 * data + GiB:
                skipped = f"skipped: not enough free space for {data / GiB:.1f} GiB x 2"
            row: dict[str, Any] = {"size_bytes": size, "percent": percent, "data_bytes": data}
            rows[key] = row
            if skipped is not None:
                row["skipped"] = skipped
                continue
            image = driver.attachment(disk).path
            fill_s = _fill(image, new, pieces)
            written.update(new)
            row.update(measure_ops(driver, disk, samples, root / "cp-copy.img", "--sparse=always"))
            row.update(samples=samples, fill_s=fill_s)
            derive(row, data, limit_mbps)
            planner.learn(fill, fill_s, data, row)
    finally:
        driver.delete_disk(disk)
        shutil.rmtree(root / "raw", ignore_errors=True)
    return rows


def report_matrix(rows: dict[str, dict[str, Any]], fs: str, limit_mbps: float) -> None:
    how = "no reflink: every allocated byte is copied" if fs in COPYING else "reflink if it can"
    print(
        f"\nRaw driver on {fs} ({how}). snapshot = copy "
        "+ fsync + block checksum; rollback = verified copy + atomic rename.\n"
        "Baselines: cp = `cp --sparse=always` of the image (no fsync); cp+fs = the same copy "
        f"then fsync of it; limit = min(device read, write) = {limit_mbps:.0f} MB/s.\n"
        f"x/cp = throughput ratio (cp time / our time; target >= {TARGET:.2f}); seconds are "
        "medians of n; page cache not dropped (warm-ish sources)."
    )
    print(
        f"{'case':18} {'MiB':>6} {'n':>2} {'snap s':>7} {'roll s':>7} {'cp s':>7} "
        f"{'cp+fs s':>7} {'snap MB/s':>9} {'snap/cp':>7} {'snap/cp+fs':>10} {'roll/cp':>7} "
        f"{'roll/cp+fs':>10} {'snap/limit':>10}"
    )
    for case, r in rows.items():
        mib = r["data_bytes"] // 1024**2
        if "skipped" in r:
            print(f"{case:18} {mib:6} {r['skipped']}")
            continue
        print(
            f"{case:18} {mib:6} {r['samples']:2} {r['snapshot_s']:7.2f} {r['rollback_s']:7.2f} "
            f"{r['cp_s']:7.2f} {r['cp_fsync_s']:7.2f} {r['snapshot_MBps']:9.0f} "
            f"{r['snapshot_throughput_vs_cp']:7.2f} {r['snapshot_throughput_vs_cp_fsync']:10.2f} "
            f"{r['rollback_throughput_vs_cp']:7.2f} {r['rollback_throughput_vs_cp_fsync']:10.2f} "
            f"{r['snapshot_of_device_limit']:10.2f}"
        )


def summarize(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How many measured cases meet the 90 %-of-cp target, against each baseline."""
    done = [r for r in rows.values() if "skipped" not in r]
    summary: dict[str, Any] = {"measured": len(done), "skipped": len(rows) - len(done)}
    for op in ("snapshot", "rollback"):
        for base in ("cp", "cp_fsync"):
            met = sum(r[f"{op}_throughput_vs_{base}"] >= TARGET for r in done)
            summary[f"{op}_meets_target_vs_{base}"] = f"{met}/{len(done)}"
    print(
        "target >= 90 % of cp throughput: "
        + ", ".join(
            f"{k.replace('_meets_target_vs_', ' vs ')} {v}"
            for k, v in summary.items()
            if "_meets_" in k
        )
    )
    return summary
