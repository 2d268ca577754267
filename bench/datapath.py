"""Data path: snapshot and rollback time of each storage driver against ``cp --sparse=always``
of the same image (the naive copy), for disks of several sizes holding the same data.

For qcow2 the anchor is ``qemu-img snapshot -c`` itself. The claim being checked: snapshot and
rollback cost follows the data, not the disk's size (1 vs 16 GiB within 2x).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightkeeper.storage import make_driver

GiB = 1024**3
MiB = 1024**2


def _timed(action: Callable[[], object], repeat: int = 3) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _fill(driver: Any, disk_id: str, data_bytes: int) -> None:
    """Spread ``data_bytes`` over the first GiB in 4 MiB pieces, like an OS image would."""
    chunk = os.urandom(4 * MiB)
    step = max(4 * MiB, GiB // max(1, data_bytes // (4 * MiB)))
    for n in range(data_bytes // (4 * MiB)):
        driver.write(disk_id, (n * step) % GiB, chunk)


def _driver_case(kind: str, size_gib: int, data_bytes: int, root: Path) -> dict[str, float]:
    driver = make_driver(kind, root / kind)
    disk = f"lhdisk-b{size_gib:07d}"
    driver.create_disk(disk, size_gib * GiB)
    _fill(driver, disk, data_bytes)
    counter = iter(range(1000))

    def snapshot() -> None:
        driver.create_snapshot(disk, f"lhsnap-b{next(counter):07d}", lambda _: None)

    create = _timed(snapshot)
    target = f"lhsnap-b{next(counter):07d}"
    checksum = driver.create_snapshot(disk, target, lambda _: None)
    restore = _timed(lambda: driver.restore_snapshot(disk, target, checksum, lambda _: None))
    result = {"snapshot_s": create, "rollback_s": restore}
    if kind == "raw":
        image = driver.disk_path(disk)
        copy = root / "cp-copy.img"

        def cp() -> None:
            subprocess.run(["cp", "--sparse=always", str(image), str(copy)], check=True)
            copy.unlink()

        result["cp_s"] = _timed(cp)
    driver.delete_disk(disk)
    shutil.rmtree(root / kind, ignore_errors=True)
    return result


def run(quick: bool = False) -> dict[str, Any]:
    sizes = (1, 4) if quick else (1, 4, 16)
    data = 64 * MiB if quick else 256 * MiB
    kinds = ["raw"] + (["qcow2"] if shutil.which("qemu-img") else [])
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lk-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        for kind in kinds:
            for size in sizes:
                rows[f"{kind}/{size}GiB"] = _driver_case(kind, size, data, Path(tmp))
    cp = {k.split("/")[1]: v["cp_s"] for k, v in rows.items() if "cp_s" in v}
    print(f"\nData path ({data // MiB} MiB of data per disk; medians of 3; ratio = time / cp)")
    print(f"{'case':16} {'snapshot':>10} {'rollback':>10} {'cp':>10} {'snap/cp':>8} {'roll/cp':>8}")
    for case, r in rows.items():
        base = cp[case.split("/")[1]]
        r["snapshot_vs_cp"] = r["snapshot_s"] / base
        r["rollback_vs_cp"] = r["rollback_s"] / base
        print(
            f"{case:16} {r['snapshot_s']:10.3f} {r['rollback_s']:10.3f} {base:10.3f} "
            f"{r['snapshot_vs_cp']:8.2f} {r['rollback_vs_cp']:8.2f}"
        )
    for kind in kinds:
        small, large = rows[f"{kind}/{sizes[0]}GiB"], rows[f"{kind}/{sizes[-1]}GiB"]
        growth = {
            "snapshot": large["snapshot_s"] / small["snapshot_s"],
            "rollback": large["rollback_s"] / small["rollback_s"],
        }
        rows[f"{kind}/growth_{sizes[0]}_to_{sizes[-1]}GiB"] = growth
        print(
            f"{kind}: {sizes[-1]} GiB vs {sizes[0]} GiB: snapshot x{growth['snapshot']:.2f}, "
            f"rollback x{growth['rollback']:.2f}"
        )
    return {"data_bytes": data, "results": rows}
