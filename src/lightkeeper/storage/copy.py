"""Sparse-aware byte movers for file-backed drivers (and the benchmark).

Disk images are mostly holes, so everything here walks SEEK_DATA/SEEK_HOLE extents:
holes are never read or written, and hashers only see data ranges (with their offsets);
each hasher decides what a hole costs (see checksum.py).
Functions raise plain OSError; drivers translate it into StorageError.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Protocol, cast

from .base import ChunkHook, ProgressCallback, no_chunk_hook

FICLONE = 0x40049409
CHUNK = 8 * 1024 * 1024
"""Large enough to amortise syscalls, small enough to keep progress and memory smooth."""


class Buffers:
    """CHUNK-sized buffers, lent and kept for the next copy. A new buffer costs a page fault
    per page before it holds a byte, whatever the data: allocated up front, three of them per
    snapshot were most of an empty disk's snapshot (docs/performance.md). So a copy takes a
    buffer only once it has data to move, and at most ``keep`` wait to be lent again."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._free: list[memoryview] = []
        self._lock = threading.Lock()

    def take(self) -> memoryview:
        with self._lock:
            if self._free:
                return self._free.pop()
        return memoryview(bytearray(CHUNK))

    def give_back(self, buf: memoryview) -> None:
        with self._lock:
            if len(self._free) < self._keep:
                self._free.append(buf)

    @contextmanager
    def lent(self) -> Iterator[memoryview]:
        buf = self.take()
        try:
            yield buf
        finally:
            self.give_back(buf)


BUFFERS = Buffers(keep=4)
"""Shared by the copies of every thread: 4 are two copies' checksum pipelines (32 MiB)."""


# errnos meaning "this kernel/filesystem can't do that", not "the copy failed".
_UNSUPPORTED = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}
)

CopyMethod = Literal["reflink", "copy_file_range", "read_write"]


class RangeHasher(Protocol):
    """Receives the data extents of a file in ascending offset order; gaps are holes."""

    def update_range(self, offset: int, data: bytes | bytearray | memoryview, /) -> None: ...


class _Progress:
    """Turns byte counts into de-duplicated whole percents: at most 101 callbacks per copy;
    calls `on_chunk` after every chunk (fault injection hooks in there)."""

    def __init__(
        self, callback: ProgressCallback | None, total: int, on_chunk: ChunkHook = no_chunk_hook
    ) -> None:
        self._callback = callback
        self._on_chunk = on_chunk
        self._total = total
        self._done = 0
        self._last = -1
        self._emit(0)

    def advance(self, nbytes: int) -> None:
        self._on_chunk()
        self._done += nbytes
        self._emit(self._done * 100 // self._total if self._total else 100)

    def finish(self) -> None:
        self._emit(100)

    def _emit(self, percent: int) -> None:
        if self._callback is not None and percent > self._last:
            self._last = percent
            self._callback(percent)


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """Yield (offset, length) of allocated ranges below `size` (everything if SEEK_DATA fails)."""
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole remains
                return
            if exc.errno in _UNSUPPORTED:
                yield pos, size - pos
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end - start
        pos = end


def _chunks(offset: int, length: int) -> Iterator[tuple[int, int]]:
    end = offset + length
    while offset < end:
        step = min(CHUNK, end - offset)
        yield offset, step
        offset += step


def pread_into(fd: int, view: memoryview, offset: int) -> memoryview:
    """Fill `view` from `offset` (pread may return short); EIO if the file ends early."""
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            raise OSError(errno.EIO, "file ended before expected size")
        got += n
    return view


def pwrite_all(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of `data` at `offset`, looping over short writes."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


def hash_sparse(
    fd: int,
    size: int,
    hasher: RangeHasher,
    progress: ProgressCallback | None = None,
    on_chunk: ChunkHook = no_chunk_hook,
    on_bytes: Callable[[int], None] | None = None,
) -> None:
    """Feed the data extents of fd[0:size] to `hasher`; progress counts allocated bytes.
    `on_bytes` hears each chunk's size once it is hashed (a scrub's bandwidth limit)."""
    extents = list(data_extents(fd, size))
    tracker = _Progress(progress, sum(length for _, length in extents), on_chunk)
    if extents:
        with BUFFERS.lent() as buf:
            for offset, length in extents:
                for chunk_offset, chunk_len in _chunks(offset, length):
                    data = pread_into(fd, buf[:chunk_len], chunk_offset)
                    hasher.update_range(chunk_offset, data)
                    tracker.advance(chunk_len)
                    if on_bytes is not None:
                        on_bytes(chunk_len)
    tracker.finish()


def _reflink(src_fd: int, dst_fd: int) -> bool:
    """Share src's extents with dst (btrfs, XFS...): O(1) copy-on-write instead of a copy."""
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return False
        raise
    return True


def _copy_file_range_exact(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    end = offset + length
    while offset < end:
        n = os.copy_file_range(src_fd, dst_fd, end - offset, offset, offset)
        if n == 0:
            raise OSError(errno.EIO, "source ended before expected size")
        offset += n


def _sparse_copy(
    src_fd: int,
    dst_fd: int,
    size: int,
    progress: ProgressCallback | None,
    hasher: RangeHasher | None,
    on_chunk: ChunkHook,
) -> CopyMethod:
    """Copy only data extents; the hash is read back from dst so it covers what was written.

    Each chunk's writeback starts as soon as it is copied and its hash runs on another thread
    while the next chunk copies, so the caller's final fsync and the checksum overlap the copy
    instead of following it.
    """
    extents = list(data_extents(src_fd, size))
    tracker = _Progress(progress, sum(length for _, length in extents), on_chunk)
    buf: memoryview | None = None  # only for a copy in user space
    in_kernel = hasattr(os, "copy_file_range")
    try:
        with _HashPipe(dst_fd, hasher) as hashes:
            for offset, length in extents:
                for chunk_offset, chunk_len in _chunks(offset, length):
                    if in_kernel:
                        try:
                            _copy_file_range_exact(src_fd, dst_fd, chunk_offset, chunk_len)
                        except OSError as exc:
                            if exc.errno not in _UNSUPPORTED:
                                raise
                            in_kernel = False  # redo this chunk and the rest in user space
                    if not in_kernel:
                        if buf is None:
                            buf = BUFFERS.take()
                        view = buf[:chunk_len]
                        pwrite_all(dst_fd, pread_into(src_fd, view, chunk_offset), chunk_offset)
                    start_writeback(dst_fd, chunk_offset, chunk_len)
                    hashes.submit(chunk_offset, chunk_len)
                    tracker.advance(chunk_len)
    finally:
        if buf is not None:
            BUFFERS.give_back(buf)
    tracker.finish()
    return "copy_file_range" if in_kernel else "read_write"


class _HashPipe:
    """Hashes copied chunks, read back from dst, on one worker thread, oldest first (the
    hasher needs ascending offsets). sha256, pread and copy_file_range all release the GIL,
    so with two cores the checksum adds little to the copy. At most two chunks wait."""

    def __init__(self, fd: int, hasher: RangeHasher | None) -> None:
        self._fd = fd
        self._hasher = hasher
        self._pool: ThreadPoolExecutor | None = None  # started by the first chunk
        self._taken: list[memoryview] = []  # at most two, from BUFFERS
        self._free: list[memoryview] = []
        self._pending: deque[tuple[Future[None], memoryview]] = deque()

    def submit(self, offset: int, length: int) -> None:
        if self._hasher is None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="lk-hash")
        if not self._free and len(self._taken) < 2:
            self._taken.append(BUFFERS.take())
            self._free.append(self._taken[-1])
        if not self._free:
            self._wait_oldest()
        buf = self._free.pop()
        future = self._pool.submit(self._hash, offset, buf[:length])
        self._pending.append((future, buf))

    def _hash(self, offset: int, view: memoryview) -> None:
        assert self._hasher is not None
        self._hasher.update_range(offset, pread_into(self._fd, view, offset))

    def _wait_oldest(self) -> None:
        future, buf = self._pending.popleft()
        self._free.append(buf)
        future.result()  # re-raises the worker's error here

    def __enter__(self) -> _HashPipe:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if self._pool is None:
            return
        try:
            while self._pending and exc_type is None:
                self._wait_oldest()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
            for buf in self._taken:  # no hash reads into them any more
                BUFFERS.give_back(buf)


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux/glibc: the final fsync does all the work
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], function)


_SYNC_FILE_RANGE = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing this range now (Linux ``sync_file_range``, as
    PostgreSQL does before a checkpoint's fsync). Only a hint: durability still comes from
    the caller's fsync, so a failure here is ignored."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def clone_or_copy(
    src_fd: int,
    dst_fd: int,
    size: int,
    progress: ProgressCallback | None = None,
    hasher: RangeHasher | None = None,
    on_chunk: ChunkHook = no_chunk_hook,
    *,
    hash_clone: bool = True,
) -> CopyMethod:
    """Make the empty file `dst_fd` hold src[0:size], holes preserved; return the method used.

    Reflink when the filesystem allows it (progress then tracks the hash pass), else a
    sparse copy. `hasher` receives the data extents of what dst now holds: read back from
    dst after a copy; read from src after a clone, which shares src's very extents, and src's
    pages are the ones likely cached (a new inode's are not: hashing the clone re-read the
    whole disk from the device, 3-5x slower on a loop-mounted XFS). With ``hash_clone``
    False a clone is not hashed (the caller hashes only what changed, blocks.py).
    """
    if _reflink(src_fd, dst_fd):
        os.ftruncate(dst_fd, size)
        if hasher is not None and hash_clone:
            hash_sparse(src_fd, size, hasher, progress, on_chunk)
        elif hasher is None:
            _Progress(progress, 0).finish()  # else the caller's own hashing reports progress
        return "reflink"
    os.ftruncate(dst_fd, size)  # all holes; only data extents get written
    return _sparse_copy(src_fd, dst_fd, size, progress, hasher, on_chunk)


def reflink_works(directory: Path) -> bool:
    """Whether files in `directory` can be reflinked (probed once with two tiny unnamed temp
    files), so a driver can declare the capability instead of discovering it per copy. Any
    failure (a full disk, say) answers False rather than stopping the driver from starting:
    copies try a reflink anyway."""
    try:
        with (
            tempfile.TemporaryFile(dir=directory) as src,
            tempfile.TemporaryFile(dir=directory) as dst,
        ):
            src.write(b"\0" * 4096)
            src.flush()
            return _reflink(src.fileno(), dst.fileno())
    except OSError:
        return False
