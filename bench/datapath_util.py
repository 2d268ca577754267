"""Shared pieces of the data-path benchmark: timing, ids, filling images with spread-out
random data, byte accounting and the ``cp`` baselines.

Everything here is plain file I/O so each suite section measures only the driver call it
times; setup (filling a disk, copying an anchor image) is never inside a timed region.
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lightkeeper.storage import StorageDriver

MiB = 1024**2
GiB = 1024**3
PIECE = 4 * MiB
"""Unit of allocation when filling: big enough to be one extent, small enough to spread."""
POOL = 64 * MiB
"""Random bytes generated once; urandom for 16 GiB would take longer than the copies."""

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A fresh ``lhdisk-``/``lhsnap-`` id (8 chars of [a-z0-9]) the drivers accept."""
    return f"{prefix}-{next(_ids):08d}"


def size_label(size: int) -> str:
    return f"{size // GiB}GiB" if size % GiB == 0 else f"{size // MiB}MiB"


def mb_per_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6 if seconds > 0 else float("inf")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def quiet(_: int) -> None:
    """Progress sink: the benchmark only times the call."""


def take_snapshot(driver: StorageDriver, disk: str, snap: str) -> tuple[float, str]:
    """(seconds, checksum) of one driver snapshot."""
    checksum = ""

    def take() -> None:
        nonlocal checksum
        checksum = driver.create_snapshot(disk, snap, quiet)

    return timed(take), checksum


def median_time(action: Callable[[], object], repeat: int) -> float:
    return statistics.median(timed(action) for _ in range(repeat))


class RandomPieces:
    """Incompressible 4 MiB pieces from one random pool, each stamped with its index so no
    two pieces are equal (nothing below us may deduplicate or skip identical blocks)."""

    def __init__(self) -> None:
        self._pool = os.urandom(POOL)
        self._out = bytearray(PIECE)

    def piece(self, index: int) -> bytearray:
        start = (index * PIECE) % POOL
        self._out[:] = self._pool[start : start + PIECE]
        self._out[:8] = index.to_bytes(8, "little")
        return self._out


def spread_slots(size: int, percent: int) -> list[int]:
    """Indexes of the 4 MiB slots that hold data when `percent` of the disk is allocated,
    evenly spread: slot i is used iff floor((i+1)p/100) > floor(ip/100). The sets for
    10 % ⊂ 50 % ⊂ 100 % nest, so one disk can be filled up step by step."""
    slots = size // PIECE
    return [i for i in range(slots) if (i + 1) * percent // 100 > i * percent // 100]


def spread_offsets(size: int, nbytes: int) -> list[int]:
    """Offsets of `nbytes` of data in 4 MiB pieces spread evenly over the whole disk."""
    count = max(1, nbytes // PIECE)
    step = max(PIECE, (size // count) // PIECE * PIECE)
    return [(n * step) % size for n in range(count)]


def write_pieces(path: Path, offsets: Iterable[int], pieces: RandomPieces) -> int:
    """pwrite random pieces at `offsets` of an existing image, then fsync; returns bytes.

    Written straight to the file (not through driver.write, which fsyncs each call) because
    filling is setup, not what is measured."""
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        for offset in offsets:
            view = memoryview(pieces.piece(offset // PIECE))
            while view:
                n = os.pwrite(fd, view, offset)
                view, offset, written = view[n:], offset + n, written + n
        os.fsync(fd)
    finally:
        os.close(fd)
    return written


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(args: Sequence[str]) -> None:
    """Run a command; on failure raise with its stderr, which is what explains it."""
    done = subprocess.run(list(args), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")


@dataclass(frozen=True)
class CopyTimes:
    cp_s: float
    fsync_s: float

    @property
    def cp_fsync_s(self) -> float:
        return self.cp_s + self.fsync_s


def cp_then_fsync(src: Path, dst: Path, mode: str = "--sparse=always") -> CopyTimes:
    """Time ``cp MODE src dst``, then the fsync of the copy, and delete it.

    One copy gives both baselines: cp alone (what users compare with, data may still be in
    the page cache) and cp + fsync (durable, like our snapshot). Syncing only the copy keeps
    other processes' dirty data out of the figure, unlike ``sync -f``."""
    try:
        cp_s = timed(lambda: run(["cp", mode, str(src), str(dst)]))
        fsync_s = timed(lambda: fsync_path(dst))
    finally:
        dst.unlink(missing_ok=True)
    return CopyTimes(cp_s, fsync_s)


def allocated_bytes(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def tree_bytes(root: Path) -> int:
    """Bytes allocated to every file under `root` (st_blocks, so holes cost nothing)."""
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except FileNotFoundError:  # a temp file that vanished meanwhile
                continue
    return total


def fs_used(path: Path) -> int:
    """Used bytes of the filesystem holding `path`: the only honest count on a reflink
    filesystem, where st_blocks counts shared extents once per file."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def fs_free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


class Budget:
    """Wall-clock budget of the suite: big cases are measured only while time remains, so
    ``python -m bench`` stays inside its 10 minutes on a slow disk."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def fs_type(path: Path) -> str:
    """Filesystem type of `path` from /proc/mounts (longest matching mount point)."""
    target = str(path.resolve())
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, fields[2]
    return kind
