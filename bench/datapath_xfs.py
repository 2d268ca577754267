"""Raw driver on a reflink filesystem: a loop-mounted XFS (``mkfs.xfs -m reflink=1``) in the
benchmark's temp dir, where a snapshot is a FICLONE (its cost follows the number of extents,
not the disk size) plus the block checksum over the clone's data extents (so its time
follows the allocated data, read back from the device).

The clone-only anchor is ``cp --reflink=always`` of the same image (+ fsync). Mounting needs
root, ``mkfs.xfs`` (Debian package xfsprogs) and a loop device; without them the section
reports why it was skipped instead of failing. The mount and the loop device are always
undone, in ``finally`` blocks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.datapath_raw import measure_ops
from bench.datapath_util import (
    PIECE,
    RandomPieces,
    new_id,
    run,
    size_label,
    spread_slots,
    timed,
    write_pieces,
)
from lightkeeper.storage import make_driver

READ_AHEAD_KB = 4096


@dataclass(frozen=True)
class XfsMount:
    path: Path
    loop_direct_io: bool


class Unavailable(Exception):
    """The machine cannot host the XFS mount; the message says why (shown as the skip)."""


def _mkfs() -> str:
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    mkfs = shutil.which("mkfs.xfs", path=search)
    if mkfs is None:
        raise Unavailable("skipped: mkfs.xfs not installed (Debian package xfsprogs)")
    if os.geteuid() != 0:
        raise Unavailable("skipped: mounting a loop filesystem needs root")
    return mkfs


def _attempt(args: Sequence[str], what: str) -> None:
    try:
        run(args)
    except (RuntimeError, OSError) as exc:
        raise Unavailable(f"skipped: {what} failed: {exc}") from None


def _unmount(mount: Path) -> str | None:
    """Unmount, retrying briefly if busy; lazily as a last resort. Returns an error or None."""
    for _ in range(5):
        done = subprocess.run(["umount", str(mount)], capture_output=True, text=True)
        if done.returncode == 0:
            return None
        time.sleep(0.5)
    lazy = subprocess.run(["umount", "-l", str(mount)], capture_output=True, text=True)
    return None if lazy.returncode == 0 else f"umount failed: {done.stderr.strip()}"


def _attach(backing: Path) -> str:
    """A loop device for `backing`, with direct I/O where the kernel allows it: a buffered
    loop caches every block twice (XFS's page cache and the backing file's), and its reads
    slowed to a fraction of the disk's under memory pressure, which no real XFS disk does."""
    for extra in (["--direct-io=on"], []):
        done = subprocess.run(
            ["losetup", "--find", "--show", *extra, str(backing)], capture_output=True, text=True
        )
        if done.returncode == 0:
            device = done.stdout.strip()
            _tune(device)
            return device
    raise Unavailable(f"skipped: losetup failed: {done.stderr.strip()}")


def _direct_io(device: str) -> bool:
    try:
        return Path(f"/sys/block/{Path(device).name}/loop/dio").read_text().strip() == "1"
    except OSError:
        return False


def _tune(device: str) -> None:
    """Read ahead like a real disk would be set up for streaming (best effort)."""
    with suppress(OSError):
        Path(f"/sys/block/{Path(device).name}/queue/read_ahead_kb").write_text(f"{READ_AHEAD_KB}")


@contextmanager
def xfs_mount(workdir: Path, size: int) -> Iterator[XfsMount]:
    """A fresh reflink-enabled XFS of `size` bytes (sparse backing file) mounted under
    `workdir`; raises Unavailable (before yielding) when it cannot be made. Unmounts and
    detaches the loop device whatever happens."""
    mkfs = _mkfs()
    backing, mount = workdir / "xfs-backing.img", workdir / "xfs"
    with backing.open("wb") as f:
        f.truncate(size)
    try:
        _attempt([mkfs, "-q", "-m", "reflink=1", str(backing)], "mkfs.xfs")
        device = _attach(backing)
        try:
            mount.mkdir()
            _attempt(["mount", device, str(mount)], "mount")
            try:
                _check_reflink(mount)
                yield XfsMount(mount, _direct_io(device))
            finally:
                error = _unmount(mount)
                if error is not None:
                    print(f"warning: {error} ({mount})")
        finally:
            subprocess.run(["losetup", "-d", device], capture_output=True)
    finally:
        backing.unlink(missing_ok=True)


def _check_reflink(mount: Path) -> None:
    probe = mount / "probe"
    probe.write_bytes(b"x" * 65536)
    try:
        _attempt(["cp", "--reflink=always", str(probe), str(mount / "probe2")], "reflink probe")
    finally:
        probe.unlink(missing_ok=True)
        (mount / "probe2").unlink(missing_ok=True)


def reflink_case(
    mount: Path, size: int, percent: int, pieces: RandomPieces, samples: int
) -> dict[str, Any]:
    """One disk on the XFS mount: driver snapshot/rollback vs ``cp --reflink=always``."""
    driver = make_driver("raw", mount / "raw")
    disk = new_id("lhdisk")
    slots = spread_slots(size, percent)
    try:
        driver.create_disk(disk, size)
        fill_s = timed(
            lambda: write_pieces(driver.attachment(disk).path, (s * PIECE for s in slots), pieces)
        )
        ops = measure_ops(driver, disk, samples, mount / "clone.img", "--reflink=always")
    finally:
        shutil.rmtree(mount / "raw", ignore_errors=True)
    data = len(slots) * PIECE
    row: dict[str, Any] = {"size_bytes": size, "percent": percent, "data_bytes": data}
    row.update(samples=samples, fill_s=fill_s)
    row.update(
        snapshot_s=ops["snapshot_s"],
        rollback_s=ops["rollback_s"],
        clone_s=ops["cp_s"],
        clone_fsync_s=ops["cp_fsync_s"],
        checksum_share_of_snapshot=1 - ops["cp_fsync_s"] / ops["snapshot_s"],
    )
    return row


def run_reflink(
    xfs: XfsMount, cases: Sequence[tuple[int, int]], pieces: RandomPieces, small_data: int
) -> dict[str, Any]:
    """Cases keyed ``xfs/<size>/<percent>%``, like the raw matrix's, so they can be compared;
    3 samples up to `small_data` bytes of data, 1 above (the checksum pass reads it all)."""
    rows: dict[str, Any] = {"loop_direct_io": xfs.loop_direct_io}
    for size, percent in cases:
        samples = 3 if len(spread_slots(size, percent)) * PIECE <= small_data else 1
        rows[f"xfs/{size_label(size)}/{percent}%"] = reflink_case(
            xfs.path, size, percent, pieces, samples
        )
    return rows


def report_reflink(rows: dict[str, Any]) -> None:
    direct = rows.get("loop_direct_io")
    loop = "loop" if direct is None else ("direct-I/O loop" if direct else "buffered loop")
    print(
        f"\nRaw driver on a loop-mounted XFS (reflink=1, {loop}): snapshot = FICLONE "
        "+ block checksum of the clone's data extents\n(read from the device: a clone shares "
        "no page cache); clone = `cp --reflink=always` of the image + fsync (clone-only "
        "anchor,\nO(extents), not O(size)); checksum % = share of the snapshot not spent "
        "cloning; medians of n."
    )
    if "skipped" in rows:
        print(rows["skipped"])
        return
    print(
        f"{'case':16} {'MiB':>6} {'n':>2} {'snap s':>7} {'roll s':>7} {'clone s':>8} "
        f"{'checksum %':>10}"
    )
    cases = [(k, r) for k, r in rows.items() if isinstance(r, dict) and "snapshot_s" in r]
    for case, r in cases:
        print(
            f"{case:16} {r['data_bytes'] // 1024**2:6} {r['samples']:2} {r['snapshot_s']:7.3f} "
            f"{r['rollback_s']:7.3f} {r['clone_fsync_s']:8.3f} "
            f"{100 * r['checksum_share_of_snapshot']:10.0f}"
        )
    first_case, first = cases[0]
    for case, r in cases[1:]:
        print(
            f"{case} vs {first_case}: size x{r['size_bytes'] / first['size_bytes']:.0f}, data "
            f"x{r['data_bytes'] / first['data_bytes']:.1f} -> snapshot "
            f"x{r['snapshot_s'] / first['snapshot_s']:.1f}, rollback "
            f"x{r['rollback_s'] / first['rollback_s']:.1f}, clone "
            f"x{r['clone_fsync_s'] / first['clone_fsync_s']:.1f}"
        )
