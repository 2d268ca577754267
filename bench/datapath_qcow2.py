"""qcow2 driver: snapshot and rollback time for disks of several virtual sizes holding the
same data, against the anchor ``qemu-img snapshot -c`` / ``-a`` run directly on a copy of
the same image (what qemu itself costs, without our marker, lock and checksum pass).

The claim checked: cost follows the data, not the virtual size (1 vs 16 GiB within 2x).
"""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.datapath_util import (
    RandomPieces,
    fsync_path,
    median_time,
    new_id,
    quiet,
    run,
    size_label,
    spread_offsets,
    take_snapshot,
    timed,
    write_pieces,
)
from lightkeeper.storage import StorageDriver, make_driver

REPEAT = 3


def _base_image(path: Path, size: int, data: int, pieces: RandomPieces) -> None:
    """A sparse raw file with `data` bytes spread over it; the driver converts it, which is
    far quicker than one qemu-io process per piece."""
    with path.open("wb") as f:
        f.truncate(size)
    write_pieces(path, spread_offsets(size, data), pieces)


def _anchor(image: Path, scratch: Path) -> dict[str, float]:
    """qemu-img's own internal-snapshot create and apply, on a private copy of the image."""
    run(["cp", "--sparse=always", str(image), str(scratch)])
    fsync_path(scratch)
    try:
        tags = iter(range(REPEAT))
        create = median_time(
            lambda: run(["qemu-img", "snapshot", "-q", "-c", f"a{next(tags)}", str(scratch)]),
            REPEAT,
        )
        apply = median_time(
            lambda: run(["qemu-img", "snapshot", "-q", "-a", "a0", str(scratch)]), REPEAT
        )
    finally:
        scratch.unlink(missing_ok=True)
    return {"anchor_create_s": create, "anchor_apply_s": apply}


def _driver_ops(driver: StorageDriver, disk: str) -> dict[str, float]:
    """REPEAT snapshots (distinct ids), then REPEAT rollbacks to the first one."""
    snaps = [new_id("lhsnap") for _ in range(REPEAT)]
    timings = [take_snapshot(driver, disk, snap) for snap in snaps]
    first, checksum = snaps[0], timings[0][1]
    rollback = median_time(lambda: driver.restore_snapshot(disk, first, checksum, quiet), REPEAT)
    return {"snapshot_s": statistics.median(t for t, _ in timings), "rollback_s": rollback}


def qcow2_case(root: Path, size: int, data: int, pieces: RandomPieces) -> dict[str, Any]:
    workdir = root / "qcow2"
    driver = make_driver("qcow2", workdir)
    disk = new_id("lhdisk")
    base = root / "base.raw"
    try:
        _base_image(base, size, data, pieces)
        setup_s = timed(lambda: driver.create_disk(disk, size, base_image=base))
        base.unlink()
        row: dict[str, Any] = {"size_bytes": size, "data_bytes": data, "setup_s": setup_s}
        row.update(_anchor(driver.attachment(disk).path, root / "anchor.qcow2"))
        row.update(_driver_ops(driver, disk))
        row["image_bytes"] = os.stat(driver.attachment(disk).path).st_blocks * 512
    finally:
        base.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)
    row["snapshot_vs_anchor"] = row["snapshot_s"] / row["anchor_create_s"]
    row["rollback_vs_anchor"] = row["rollback_s"] / row["anchor_apply_s"]
    return row


def run_qcow2(root: Path, sizes: Sequence[int], data: int, pieces: RandomPieces) -> dict[str, Any]:
    """Rows keyed ``qcow2/<size>`` plus ``qcow2/growth_<a>_to_<b>``, or a skip reason."""
    if shutil.which("qemu-img") is None or shutil.which("qemu-io") is None:
        return {"skipped": "qemu-img/qemu-io not installed"}
    rows: dict[str, Any] = {}
    for size in sizes:
        rows[f"qcow2/{size_label(size)}"] = qcow2_case(root, size, data, pieces)
    small, large = rows[f"qcow2/{size_label(sizes[0])}"], rows[f"qcow2/{size_label(sizes[-1])}"]
    rows[f"qcow2/growth_{size_label(sizes[0])}_to_{size_label(sizes[-1])}"] = {
        key: large[key] / small[key]
        for key in ("snapshot_s", "rollback_s", "anchor_create_s", "anchor_apply_s")
    }
    return rows


def report_qcow2(rows: dict[str, Any], data: int) -> None:
    print(
        f"\nqcow2 driver ({data // 1024**2} MiB of data spread over each disk; medians of "
        f"{REPEAT}). Anchor = `qemu-img snapshot -c` (create) / `-a` (apply) on a copy of the "
        "image;\nthe driver adds its lock, marker and a checksum pass over the snapshot "
        "(export to raw + hash), so x/anchor = our time / qemu-img's."
    )
    if "skipped" in rows:
        print(rows["skipped"])
        return
    print(
        f"{'case':12} {'snap s':>7} {'anchor -c':>9} {'snap/anc':>8} {'roll s':>7} "
        f"{'anchor -a':>9} {'roll/anc':>8}"
    )
    for case, r in rows.items():
        if "growth" in case:
            print(
                f"{case}: driver snapshot x{r['snapshot_s']:.2f}, rollback x{r['rollback_s']:.2f}"
                f"; qemu-img -c x{r['anchor_create_s']:.2f}, -a x{r['anchor_apply_s']:.2f}"
            )
            continue
        print(
            f"{case:12} {r['snapshot_s']:7.3f} {r['anchor_create_s']:9.3f} "
            f"{r['snapshot_vs_anchor']:8.1f} {r['rollback_s']:7.3f} {r['anchor_apply_s']:9.3f} "
            f"{r['rollback_vs_anchor']:8.1f}"
        )
