"""Space: bytes used by N snapshots of one disk with a small change (1 MiB of new random
data over existing data) before each, per driver and filesystem.

How bytes are counted matters: raw on a copying filesystem and qcow2 are counted as the
growth of st_blocks of every file under the driver's root (holes are free, each snapshot's
copy is its own); on a reflink filesystem st_blocks counts shared extents once per file,
so the growth of the filesystem's used bytes (statvfs) is the only honest figure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datapath_util import (
    MiB,
    RandomPieces,
    fs_used,
    new_id,
    quiet,
    spread_offsets,
    tree_bytes,
    write_pieces,
)
from lightkeeper.storage import make_driver

CHANGE = 1 * MiB


@dataclass(frozen=True)
class SpaceConfig:
    disk: int
    data: int
    count: int


def space_case(
    kind: str, root: Path, config: SpaceConfig, pieces: RandomPieces, by_statvfs: bool
) -> dict[str, Any]:
    """Snapshot `config.count` times with a CHANGE-byte write into existing data before
    each; return the bytes the snapshots (and the changes they force) added."""
    base = root.parent / f"{root.name}-base.raw"
    with base.open("wb") as f:
        f.truncate(config.disk)
    offsets = spread_offsets(config.disk, config.data)
    write_pieces(base, offsets, pieces)
    driver = make_driver(kind, root)
    usage: Callable[[], int] = (lambda: fs_used(root)) if by_statvfs else (lambda: tree_bytes(root))
    disk = new_id("lhdisk")
    try:
        driver.create_disk(disk, config.disk, base_image=base)
        base.unlink()
        before = usage()
        for n in range(config.count):
            driver.write(disk, offsets[n % len(offsets)], os.urandom(CHANGE))
            driver.create_snapshot(disk, new_id("lhsnap"), quiet)
        used = usage() - before
    finally:
        base.unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
    per = used / config.count
    return {
        "disk_bytes": config.disk,
        "data_bytes": config.data,
        "snapshots": config.count,
        "change_bytes": CHANGE,
        "used_bytes": used,
        "per_snapshot_bytes": per,
        "per_snapshot_vs_data": per / config.data,
        "counted_by": "statvfs used delta" if by_statvfs else "st_blocks of driver files",
    }


def report_space(rows: dict[str, Any], config: SpaceConfig) -> None:
    print(
        f"\nSpace: {config.count} snapshots of a {config.disk // 1024**3} GiB disk holding "
        f"{config.data // MiB} MiB, {CHANGE // MiB} MiB rewritten before each; "
        "used = growth from before the first change to after the last snapshot\n(so it includes "
        "the changes' own copy-on-write; per snap/data 1.0 = a full copy per snapshot)."
    )
    print(
        f"{'driver/fs':16} {'used MiB':>9} {'per snap MiB':>12} {'per snap/data':>13}  counted by"
    )
    for name, r in rows.items():
        if "skipped" in r:
            print(f"{name:16} {r['skipped']}")
            continue
        print(
            f"{name:16} {r['used_bytes'] / MiB:9.1f} {r['per_snapshot_bytes'] / MiB:12.2f} "
            f"{r['per_snapshot_vs_data']:13.3f}  {r['counted_by']}"
        )
