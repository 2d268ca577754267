"""The device's sequential write and read speed, measured in the same run as the copies:
the upper limit any snapshot (which must read and write every allocated byte) can reach."""

from __future__ import annotations

import os
from pathlib import Path

from bench.datapath_util import PIECE, RandomPieces, mb_per_s, timed

READ_CHUNK = 8 * 1024 * 1024


def _write(path: Path, nbytes: int, pieces: RandomPieces) -> None:
    """Large sequential writes then one fsync: the figure includes reaching the device."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        for index in range(nbytes // PIECE):
            os.write(fd, pieces.piece(index))
        os.fsync(fd)
        # Evict this file only (clean pages after fsync): a per-file hint, unlike dropping
        # the whole page cache, so the read below comes from the device.
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _read(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    buf = bytearray(READ_CHUNK)
    try:
        while os.readv(fd, [buf]):
            pass
    finally:
        os.close(fd)


def measure_device(
    directory: Path, nbytes: int, pieces: RandomPieces, repeat: int = 2
) -> dict[str, float]:
    """Sequential write (+fsync) and uncached read of an `nbytes` file in `directory`; best
    of `repeat`, since a limit is what the device can reach, and other tenants only slow it."""
    path = directory / "device-probe.bin"
    writes, reads = [], []
    try:
        for _ in range(repeat):
            writes.append(timed(lambda: _write(path, nbytes, pieces)))
            reads.append(timed(lambda: _read(path)))
    finally:
        path.unlink(missing_ok=True)
    write = mb_per_s(nbytes, min(writes))
    read = mb_per_s(nbytes, min(reads))
    return {
        "bytes": nbytes,
        "repeat": repeat,
        "write_s": min(writes),
        "read_s": min(reads),
        "write_MBps": write,
        "read_MBps": read,
        "limit_MBps": min(write, read),
    }


def report_device(device: dict[str, float]) -> None:
    print(
        f"\nDevice (sequential, {device['bytes'] // 1024**2} MiB file, best of "
        f"{device['repeat']:.0f}; write includes fsync, "
        f"read after POSIX_FADV_DONTNEED of that file): write {device['write_MBps']:.0f} MB/s, "
        f"read {device['read_MBps']:.0f} MB/s, limit = min = {device['limit_MBps']:.0f} MB/s"
    )
