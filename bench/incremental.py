"""Incremental snapshots (issue #14): what a snapshot and a rollback cost when only 1 % of a
full disk changed since the previous snapshot, against the storage's own operation on the
same state in the same run.

For each setup and disk size (1/4/16 GiB; quick: 1 GiB) a disk is made by the driver and
filled 100 % with incompressible data, then:

* first snapshot (every block hashed: reported beside the rest, no target);
* 1 % rewritten (1 MiB pieces at random 1 MiB-aligned offsets), second snapshot = the
  *incremental* one, against the anchor: ``qemu-img snapshot -c`` of the image (qcow2) or a
  FICLONE of the disk file + fsync of the clone (raw on a reflink XFS);
* another 1 % rewritten, rollback to the second snapshot, against the anchor: ``qemu-img
  snapshot -a`` of a tag taken right after the second snapshot (qcow2) or a FICLONE of the
  snapshot file + fsync + rename over a clone of the disk (reflink);
* 1 GiB only (a full read): the disk after the rollback is checked, by ``disk_sha256``,
  against the disk right after the second snapshot.

Targets: incremental snapshot and rollback <= 2x their anchor, and the incremental snapshot
of 16 GiB <= 2x that of 1 GiB. The raw driver on the copying filesystem (no reflink, every
byte copied) is compared with ``cp --sparse=always`` + fsync instead, and one incremental
snapshot of the biggest size per setup is run under cProfile to show where its time goes.
Anchors are medians of 5; driver figures are single calls (each may read the whole disk).
The page cache is never dropped.
"""

from __future__ import annotations

import cProfile
import fcntl
import os
import pstats
import random
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.datapath_util import (
    PIECE,
    POOL,
    Budget,
    GiB,
    MiB,
    RandomPieces,
    cp_then_fsync,
    fs_type,
    fsync_path,
    new_id,
    quiet,
    size_label,
    spread_slots,
    take_snapshot,
    timed,
    write_pieces,
)
from bench.datapath_util import run as run_tool
from bench.datapath_xfs import Unavailable, xfs_mount
from lightkeeper.storage import StorageDriver, StorageError, make_driver

FICLONE = 0x40049409
REWRITE_PERCENT = 1
BLOCK = MiB
"""Unit of the rewrites: the block of the checksum table."""
REPEAT = 5
"""Samples of each anchor (milliseconds, so noisy); the driver's calls are single."""
TARGET_VS_ANCHOR = 2.0
TARGET_GROWTH = 2.0
TOP = 12
SEED = 14
STAMP = 1 << 40
"""Piece indexes of rewrites start here, far from the fill's, so no rewrite repeats data."""


@dataclass(frozen=True)
class Config:
    sizes: tuple[int, ...]
    copy_sizes: tuple[int, ...]
    xfs_bytes: int
    verify_max: int  # disks up to this size get the disk_sha256 check after the rollback
    budget_s: float  # reported only: the run is never cut short


FULL = Config(
    sizes=(GiB, 4 * GiB, 16 * GiB),
    copy_sizes=(GiB, 4 * GiB),
    xfs_bytes=20 * GiB,
    verify_max=GiB,
    budget_s=360,
)
QUICK = Config(sizes=(GiB,), copy_sizes=(GiB,), xfs_bytes=4 * GiB, verify_max=GiB, budget_s=60)


# -- rewriting 1 % ---------------------------------------------------------------------------


class Rewrites:
    """Sets of 1 % of a disk's 1 MiB blocks at random (seeded) offsets, each block written
    with data never written before: RandomPieces stamped with a fresh index."""

    def __init__(self, pieces: RandomPieces) -> None:
        self.pieces = pieces
        self._rng = random.Random(SEED)
        self._stamp = STAMP

    def offsets(self, size: int) -> list[int]:
        count = max(1, size * REWRITE_PERCENT // 100 // BLOCK)
        return sorted(block * BLOCK for block in self._rng.sample(range(size // BLOCK), count))

    def block(self) -> memoryview:
        self._stamp += 1
        return memoryview(self.pieces.piece(self._stamp))[:BLOCK]


def rewrite_raw(path: Path, offsets: Sequence[int], rewrites: Rewrites) -> int:
    """pwrite each block into the image, as a VM would, then fsync; returns bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        for offset in offsets:
            view = rewrites.block()
            while view:
                n = os.pwrite(fd, view, offset)
                view, offset = view[n:], offset + n
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(offsets) * BLOCK


def qemu_io(image: Path, commands: Sequence[str], stage: Path) -> None:
    """One qemu-io run of `commands` and a flush (durable, like a VM's), in `stage` so the
    commands can name its files: qemu-io splits a command on spaces, so no paths."""
    args = [arg for command in commands for arg in ("-c", command)]
    done = subprocess.run(
        ["qemu-io", "-f", "qcow2", *args, "-c", "flush", str(image)],
        capture_output=True,
        text=True,
        cwd=stage,
    )
    if done.returncode != 0 or done.stdout.strip():
        raise RuntimeError(f"qemu-io: {(done.stderr + done.stdout).strip()}")


def rewrite_qcow2(image: Path, offsets: Sequence[int], rewrites: Rewrites, stage: Path) -> int:
    """One qemu-io run: one ``write -s`` per block, each from its own staged file."""
    stage.mkdir()
    try:
        for n in range(len(offsets)):
            (stage / f"b{n}").write_bytes(rewrites.block())
        qemu_io(image, [f"write -q -s b{n} {o} {BLOCK}" for n, o in enumerate(offsets)], stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return len(offsets) * BLOCK


def fill_qcow2(image: Path, size: int, pieces: RandomPieces, stage: Path) -> None:
    """Every 4 MiB slot of the image written through qemu-io (one data write, unlike a raw
    base image + convert, which writes it twice): the pool's 16 pieces in turn, each slot's
    first sector then stamped with a pattern byte, so no two slots of <= 16 GiB are equal."""
    stage.mkdir()
    try:
        files = POOL // PIECE
        for k in range(files):
            (stage / f"p{k}").write_bytes(pieces.piece(k))
        commands: list[str] = []
        for slot in range(size // PIECE):
            offset = slot * PIECE
            commands.append(f"write -q -s p{slot % files} {offset} {PIECE}")
            commands.append(f"write -q -P {slot // files % 256} {offset} 512")
        qemu_io(image, commands, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def fill_all(path: Path, size: int, pieces: RandomPieces) -> int:
    """Every 4 MiB slot of the image written (100 % allocated), then fsync."""
    return write_pieces(path, (slot * PIECE for slot in spread_slots(size, 100)), pieces)


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


# -- anchors ---------------------------------------------------------------------------------


def ficlone(src: Path, dst: Path) -> None:
    """dst = a reflink clone of src (FICLONE), fsynced."""
    src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
            os.fsync(dst_fd)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def qemu_snapshot(op: str, tag: str, image: Path) -> None:
    """``qemu-img snapshot -q OP TAG IMAGE`` (-c create, -a apply, -d delete)."""
    run_tool(["qemu-img", "snapshot", "-q", op, tag, str(image)])


def median_of(sample: Callable[[], float]) -> float:
    return statistics.median(sample() for _ in range(REPEAT))


@dataclass
class Setup:
    """One driver on one filesystem, and how the storage itself does what is timed."""

    name: str  # "qcow2" or "reflink"
    root: Path  # scratch dir on the setup's filesystem (the driver root goes below it)

    def driver(self) -> StorageDriver:
        return make_driver("qcow2" if self.name == "qcow2" else "raw", self.root / "driver")

    def make_disk(self, driver: StorageDriver, disk: str, size: int, pieces: RandomPieces) -> Path:
        """The disk made by the driver, then 100 % allocated by writes into its image."""
        driver.create_disk(disk, size)
        image = driver.attachment(disk).path
        if self.name == "qcow2":
            fill_qcow2(image, size, pieces, self.root / "stage")
        else:
            fill_all(image, size, pieces)
        return image

    def rewrite(self, image: Path, offsets: Sequence[int], rewrites: Rewrites) -> int:
        if self.name == "qcow2":
            return rewrite_qcow2(image, offsets, rewrites, self.root / "stage")
        return rewrite_raw(image, offsets, rewrites)

    def anchor_snapshot(self, image: Path) -> float:
        """qemu-img snapshot -c (the tag deleted untimed) / FICLONE + fsync (clone deleted)."""

        def qcow2() -> float:
            seconds = timed(lambda: qemu_snapshot("-c", "anchor", image))
            qemu_snapshot("-d", "anchor", image)
            return seconds

        def reflink() -> float:
            clone = self.root / "anchor-snap.img"
            try:
                return timed(lambda: ficlone(image, clone))
            finally:
                clone.unlink(missing_ok=True)

        return median_of(qcow2 if self.name == "qcow2" else reflink)


# -- one case --------------------------------------------------------------------------------


def _snapshot_path(setup: Setup, snap: str) -> Path:
    """The raw driver's published image of `snap` (its documented layout)."""
    return setup.root / "driver" / "snapshots" / f"{snap}.img"


def _anchor_rollback_reflink(setup: Setup, image: Path, snap: str) -> float:
    """FICLONE of the snapshot + fsync + rename over a clone of the disk (the disk stands
    in, so the old inode freed by the rename is as big as the driver's) + fsync of the dir."""
    folder = setup.root / "anchor-roll"
    folder.mkdir()
    target, tmp = folder / "disk.img", folder / "disk.img.tmp"

    def once() -> float:
        ficlone(image, target)

        def apply() -> None:
            ficlone(_snapshot_path(setup, snap), tmp)
            os.rename(tmp, target)
            fsync_path(folder)

        try:
            return timed(apply)
        finally:
            target.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)

    try:
        return median_of(once)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _anchor_rollback_qcow2(
    setup: Setup, image: Path, tag: str, rewrites: Rewrites, size: int
) -> float:
    """``qemu-img snapshot -a`` of `tag` (taken with the driver's second snapshot), each
    sample after its own 1 % rewrite, so every apply meets a changed disk like the driver's;
    the tag is deleted afterwards and the disk rewritten once more for the driver."""

    def once() -> float:
        setup.rewrite(image, rewrites.offsets(size), rewrites)
        return timed(lambda: qemu_snapshot("-a", tag, image))

    try:
        return median_of(once)
    finally:
        qemu_snapshot("-d", tag, image)


def incremental_case(
    setup: Setup,
    size: int,
    pieces: RandomPieces,
    rewrites: Rewrites,
    verify: bool,
    profile: bool,
) -> dict[str, Any]:
    driver = setup.driver()
    disk = new_id("lhdisk")
    row: dict[str, Any] = {"size_bytes": size}
    try:
        fill_s = timed(lambda: setup.make_disk(driver, disk, size, pieces))
        image = driver.attachment(disk).path
        row.update(fill_s=fill_s, image_allocated_bytes=allocated(image))
        first, second = new_id("lhsnap"), new_id("lhsnap")
        row["first_snapshot_s"], _ = take_snapshot(driver, disk, first)

        row["rewrite_bytes"] = setup.rewrite(image, rewrites.offsets(size), rewrites)
        row["anchor_snapshot_s"] = setup.anchor_snapshot(image)
        row["snapshot_s"], checksum = take_snapshot(driver, disk, second)
        expected = driver.disk_sha256(disk) if verify else None

        if setup.name == "qcow2":
            qemu_snapshot("-c", "anchor-roll", image)
            row["anchor_rollback_s"] = _anchor_rollback_qcow2(
                setup, image, "anchor-roll", rewrites, size
            )
            setup.rewrite(image, rewrites.offsets(size), rewrites)
        else:
            setup.rewrite(image, rewrites.offsets(size), rewrites)
            row["anchor_rollback_s"] = _anchor_rollback_reflink(setup, image, second)
        row["rollback_s"] = timed(lambda: driver.restore_snapshot(disk, second, checksum, quiet))
        row["verified"] = None if expected is None else driver.disk_sha256(disk) == expected

        if profile:
            setup.rewrite(image, rewrites.offsets(size), rewrites)
            row["profile"] = profile_snapshot(driver, disk, new_id("lhsnap"))
    finally:
        shutil.rmtree(setup.root / "driver", ignore_errors=True)
    row["snapshot_vs_anchor"] = row["snapshot_s"] / row["anchor_snapshot_s"]
    row["rollback_vs_anchor"] = row["rollback_s"] / row["anchor_rollback_s"]
    row["first_vs_incremental"] = row["first_snapshot_s"] / row["snapshot_s"]
    return row


def profile_snapshot(driver: StorageDriver, disk: str, snap: str) -> dict[str, Any]:
    """One incremental snapshot under cProfile: wall time and the top functions by
    cumulative time (a subprocess's time shows as the wait in subprocess/selectors)."""
    profiler = cProfile.Profile()
    wall = timed(lambda: profiler.runcall(driver.create_snapshot, disk, snap, quiet))
    # (file, line, name) -> (primitive calls, calls, own s, cumulative s, callers); not in
    # typeshed, and get_stats_profile() keys by bare name, merging same-named functions.
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, object]]
    entries = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    ranked = sorted(entries.items(), key=lambda item: item[1][3], reverse=True)
    top = [
        {"function": _where(*where), "calls": calls, "own_s": own, "cumulative_s": cumulative}
        for where, (_, calls, own, cumulative, _) in ranked[:TOP]
    ]
    return {"wall_s": wall, "top": top}


def _where(filename: str, line: int, function: str) -> str:
    if filename == "~":  # a builtin
        return function
    parts = Path(filename).parts
    for package in ("lightkeeper", "bench"):
        if package in parts:
            start = len(parts) - 1 - parts[::-1].index(package)  # the last one
            return f"{'/'.join(parts[start:])}:{line}({function})"
    return f"{Path(filename).name}:{line}({function})"


def attempt(size: int, case: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The case's row, or why it failed: the drivers are under change, and one broken case
    (a ChecksumMismatch, a qemu error) must not cost the other tables."""
    try:
        return case()
    except (StorageError, RuntimeError, OSError) as exc:
        return {"size_bytes": size, "failed": f"failed: {type(exc).__name__}: {exc}"}


def run_setup(
    setup: Setup, sizes: Sequence[int], pieces: RandomPieces, config: Config
) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    rewrites = Rewrites(pieces)
    for size in sizes:
        key = f"{setup.name}/{size_label(size)}"
        rows[key] = attempt(
            size,
            partial(
                incremental_case,
                setup,
                size,
                pieces,
                rewrites,
                verify=size <= config.verify_max,
                profile=size == sizes[-1],
            ),
        )
        print(f"  {key}: {rows[key].get('failed', 'done')}", flush=True)
    small, large = rows[f"{setup.name}/{size_label(sizes[0])}"], rows[key]
    if len(sizes) > 1 and "snapshot_s" in small and "snapshot_s" in large:
        rows[f"{setup.name}/growth"] = {
            "from": size_label(sizes[0]),
            "to": size_label(sizes[-1]),
            "snapshot": large["snapshot_s"] / small["snapshot_s"],
            "rollback": large["rollback_s"] / small["rollback_s"],
            "first_snapshot": large["first_snapshot_s"] / small["first_snapshot_s"],
            "anchor_snapshot": large["anchor_snapshot_s"] / small["anchor_snapshot_s"],
            "anchor_rollback": large["anchor_rollback_s"] / small["anchor_rollback_s"],
        }
    return rows


def _qcow2(root: Path, config: Config, pieces: RandomPieces) -> dict[str, Any]:
    if shutil.which("qemu-img") is None or shutil.which("qemu-io") is None:
        return {"skipped": "skipped: qemu-img/qemu-io not installed"}
    folder = root / "qcow2"
    folder.mkdir()
    try:
        return run_setup(Setup("qcow2", folder), config.sizes, pieces, config)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _reflink(root: Path, config: Config, pieces: RandomPieces) -> dict[str, Any]:
    try:
        with xfs_mount(root, config.xfs_bytes) as xfs:
            rows = run_setup(Setup("reflink", xfs.path), config.sizes, pieces, config)
            rows["loop_direct_io"] = xfs.loop_direct_io
            return rows
    except Unavailable as exc:
        return {"skipped": str(exc)}
    except (OSError, RuntimeError, StorageError) as exc:
        # The mount is borrowed from the machine; its failure must not cost the other tables.
        return {"skipped": f"failed: {type(exc).__name__}: {exc}"}


# -- raw on the copying filesystem -----------------------------------------------------------


def copy_case(root: Path, size: int, pieces: RandomPieces, rewrites: Rewrites) -> dict[str, Any]:
    """First and incremental snapshot of a full raw disk vs cp --sparse=always + fsync."""
    driver = make_driver("raw", root / "raw")
    disk = new_id("lhdisk")
    try:
        driver.create_disk(disk, size)
        image = driver.attachment(disk).path
        fill_s = timed(lambda: fill_all(image, size, pieces))
        first_s, _ = take_snapshot(driver, disk, new_id("lhsnap"))
        copy = cp_then_fsync(image, root / "copy.img")
        rewrite_raw(image, rewrites.offsets(size), rewrites)
        snapshot_s, _ = take_snapshot(driver, disk, new_id("lhsnap"))
    finally:
        shutil.rmtree(root / "raw", ignore_errors=True)
    return {
        "size_bytes": size,
        "fill_s": fill_s,
        "first_snapshot_s": first_s,
        "snapshot_s": snapshot_s,
        "cp_s": copy.cp_s,
        "cp_fsync_s": copy.cp_fsync_s,
        "first_vs_cp_fsync": first_s / copy.cp_fsync_s,
        "snapshot_vs_cp_fsync": snapshot_s / copy.cp_fsync_s,
    }


# -- report ----------------------------------------------------------------------------------


def _ok(ratio: float, target: float) -> str:
    return "ok" if ratio <= target else "over"


def report_setup(name: str, rows: dict[str, Any]) -> None:
    print(f"\n{name}")
    if "skipped" in rows:
        print(rows["skipped"])
        return
    print(
        f"{'case':14} {'alloc%':>6} {'fill s':>7} {'first s':>8} {'incr s':>8} {'anchor s':>8} "
        f"{'incr/anc':>8} {'roll s':>8} {'anchor s':>8} {'roll/anc':>8} {'verified':>8}"
    )
    for case, r in rows.items():
        if isinstance(r, dict) and "failed" in r:
            print(f"{case:14} {r['failed']}")
        if not isinstance(r, dict) or "snapshot_s" not in r:
            continue
        verified = {None: "-", True: "yes", False: "MISMATCH"}[r["verified"]]
        print(
            f"{case:14} {100 * r['image_allocated_bytes'] / r['size_bytes']:6.1f} "
            f"{r['fill_s']:7.2f} {r['first_snapshot_s']:8.3f} {r['snapshot_s']:8.3f} "
            f"{r['anchor_snapshot_s']:8.4f} {r['snapshot_vs_anchor']:8.1f} "
            f"{r['rollback_s']:8.3f} {r['anchor_rollback_s']:8.4f} "
            f"{r['rollback_vs_anchor']:8.1f} {verified:>8}"
        )
    for case, r in rows.items():
        if case.endswith("/growth"):
            print(
                f"{case} {r['from']} -> {r['to']}: incremental snapshot x{r['snapshot']:.2f} "
                f"({_ok(r['snapshot'], TARGET_GROWTH)}, target <= {TARGET_GROWTH}), rollback "
                f"x{r['rollback']:.2f}, first snapshot x{r['first_snapshot']:.2f}; anchors "
                f"x{r['anchor_snapshot']:.2f} / x{r['anchor_rollback']:.2f}"
            )


def report_copy(rows: dict[str, Any], fs: str) -> None:
    print(
        f"\nRaw driver on {fs} (no reflink: a snapshot copies every byte), 100 % allocated, "
        f"1 % rewritten before the incremental one;\ncp+fs = `cp --sparse=always` of the "
        "image + fsync of the copy (x/cp+fs = our time / cp's)."
    )
    print(
        f"{'case':10} {'fill s':>7} {'first s':>8} {'incr s':>8} {'cp s':>7} {'cp+fs s':>8} "
        f"{'first/cp+fs':>11} {'incr/cp+fs':>10}"
    )
    for case, r in rows.items():
        if "failed" in r:
            print(f"{case:10} {r['failed']}")
            continue
        print(
            f"{case:10} {r['fill_s']:7.2f} {r['first_snapshot_s']:8.3f} {r['snapshot_s']:8.3f} "
            f"{r['cp_s']:7.3f} {r['cp_fsync_s']:8.3f} {r['first_vs_cp_fsync']:11.2f} "
            f"{r['snapshot_vs_cp_fsync']:10.2f}"
        )


def report_profiles(sections: dict[str, dict[str, Any]]) -> None:
    for rows in sections.values():
        for case, r in rows.items():
            if not isinstance(r, dict) or "profile" not in r:
                continue
            profile = r["profile"]
            print(
                f"\nWhere {case}'s incremental snapshot goes (cProfile, wall "
                f"{profile['wall_s']:.3f} s with profiling; top {TOP} by cumulative time):"
            )
            print(f"{'cum s':>8} {'own s':>8} {'calls':>7}  function")
            for f in profile["top"]:
                print(
                    f"{f['cumulative_s']:8.3f} {f['own_s']:8.3f} {f['calls']:7d}  {f['function']}"
                )


def summarize(sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every targeted ratio with its pass/fail, and the verification results."""
    checks: dict[str, Any] = {}
    for rows in sections.values():
        for case, r in rows.items():
            if not isinstance(r, dict):
                continue
            if "failed" in r:
                checks[f"{case}:ran"] = False
            elif "snapshot_vs_anchor" in r:
                for key in ("snapshot_vs_anchor", "rollback_vs_anchor"):
                    checks[f"{case}:{key}"] = r[key] <= TARGET_VS_ANCHOR
                if r["verified"] is not None:
                    checks[f"{case}:verified"] = r["verified"]
            elif case.endswith("/growth"):
                checks[f"{case}:snapshot"] = r["snapshot"] <= TARGET_GROWTH
    return {"passed": sum(checks.values()), "total": len(checks), "checks": checks}


def run(quick: bool = False) -> dict[str, Any]:
    config = QUICK if quick else FULL
    budget = Budget(float(os.environ.get("BENCH_INCREMENTAL_BUDGET_S", config.budget_s)))
    pieces = RandomPieces()
    print(
        "\nIncremental snapshots: 100 % allocated disks, 1 % rewritten (1 MiB pieces at random "
        "offsets) before each op; driver calls single, anchors medians of "
        f"{REPEAT}.\nincr = second snapshot, anchor = the storage's own op on the same state "
        "(qcow2: `qemu-img snapshot -c` / `-a`; reflink: FICLONE + fsync / + rename);\n"
        f"x/anc = our time / anchor's (target <= {TARGET_VS_ANCHOR}); verified = disk_sha256 "
        "after the rollback equals the disk's at the snapshot (1 GiB only).",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="lk-bench-", dir=os.environ.get("BENCH_DIR")) as tmp:
        root = Path(tmp)
        fs = fs_type(root)
        qcow2 = _qcow2(root, config, pieces)
        report_setup(f"qcow2 driver on {fs}", qcow2)
        reflink = _reflink(root, config, pieces)
        report_setup("raw driver on a loop-mounted XFS (reflink=1)", reflink)
        rewrites = Rewrites(pieces)
        copy = {
            f"raw/{size_label(size)}": attempt(
                size, partial(copy_case, root, size, pieces, rewrites)
            )
            for size in config.copy_sizes
        }
        report_copy(copy, fs)
    sections = {"qcow2": qcow2, "reflink": reflink}
    report_profiles(sections)
    summary = summarize(sections)
    failed = [name for name, ok in summary["checks"].items() if not ok]
    print(
        f"\ntargets met {summary['passed']}/{summary['total']}"
        + (f"; not met: {', '.join(failed)}" if failed else "")
    )
    wall = budget.elapsed()
    print(f"incremental wall time {wall:.0f} s (target {budget.seconds:.0f} s)")
    return {
        "wall_s": wall,
        "budget_s": budget.seconds,
        "filesystem": fs,
        "rewrite_percent": REWRITE_PERCENT,
        "block_bytes": BLOCK,
        "anchor_samples": REPEAT,
        "targets": {"vs_anchor": TARGET_VS_ANCHOR, "growth": TARGET_GROWTH},
        "qcow2": qcow2,
        "reflink": reflink,
        "copy": copy,
        "summary": summary,
    }
