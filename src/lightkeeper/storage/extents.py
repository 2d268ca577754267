"""Where a file's bytes live: Linux ``FIEMAP``, as block-table segments (blocks.py).

On a reflink filesystem (XFS, btrfs) a snapshot clone shares the disk's extents, and a
later write to either gets new ones (copy-on-write): a range whose extent is at the same
physical address in the snapshot and in its parent holds the same bytes. Ranges the
filesystem cannot place exactly (delayed allocation, inline or encoded data) are UNKNOWN;
unwritten (preallocated) extents read as zeros.
"""

from __future__ import annotations

import fcntl
import struct

from .blocks import UNKNOWN, Segment

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 0x1
_LAST = 0x1
_UNWRITTEN = 0x800
_NOT_PLACED = 0x2 | 0x4 | 0x8 | 0x80 | 0x100 | 0x200 | 0x400
"""UNKNOWN, DELALLOC, ENCODED, DATA_ENCRYPTED, NOT_ALIGNED, DATA_INLINE, DATA_TAIL."""

_HEAD = struct.Struct("=QQIIII")  # fm_start, fm_length, flags, mapped, count, reserved
_EXTENT = struct.Struct("=QQQQQIIII")  # logical, physical, length, 2 reserved, flags, 3 reserved
_BATCH = 512


class FiemapUnsupported(OSError):
    """The filesystem has no FIEMAP (tmpfs, some FUSE): changes cannot be located."""


def file_segments(fd: int, size: int) -> list[Segment]:
    """The extents of fd[0:size] (flushed first, so none is still being allocated)."""
    segments: list[Segment] = []
    start = 0
    while start < size:
        request = bytearray(_HEAD.size + _BATCH * _EXTENT.size)
        _HEAD.pack_into(request, 0, start, size - start, FIEMAP_FLAG_SYNC, 0, _BATCH, 0)
        try:
            fcntl.ioctl(fd, FS_IOC_FIEMAP, request)
        except OSError as exc:
            raise FiemapUnsupported(exc.errno, f"FIEMAP: {exc.strerror}") from exc
        mapped = _HEAD.unpack_from(request, 0)[3]
        if not mapped:
            break
        last = False
        for i in range(mapped):
            logical, physical, length, _, _, flags, _, _, _ = _EXTENT.unpack_from(
                request, _HEAD.size + i * _EXTENT.size
            )
            if flags & _UNWRITTEN:
                place: int | None = None
            elif flags & _NOT_PLACED:
                place = UNKNOWN
            else:
                place = physical
            if logical < size:
                segments.append((logical, min(length, size - logical), place))
            start = logical + length
            last = bool(flags & _LAST)
        if last:
            break
    return segments
