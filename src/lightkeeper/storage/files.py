"""File plumbing shared by the file-backed drivers (raw, qcow2): errno translation, crash-safe
publication of a new file, directory fsyncs, per-disk flocks and leftover temp files."""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from lightkeeper.domain import ids

from .base import (
    DiskBusy,
    Fence,
    NoSpace,
    ProgressCallback,
    StorageError,
    StorageIOError,
    no_fence,
)
from .copy import pwrite_all

TMP_MARK = ".tmp-"
POOL_FILE = "pool-id"
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextmanager
def translated() -> Iterator[None]:
    """Turn OSError into StorageError so callers never need to know errno."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise NoSpace(str(exc)) from exc
        raise StorageIOError(str(exc)) from exc


@contextmanager
def opened(path: Path, flags: int, missing: StorageError) -> Iterator[int]:
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except FileNotFoundError:
        raise missing from None
    try:
        yield fd
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Make a rename/unlink durable: without this a crash may resurrect the old entry."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quiet(path: Path) -> bool:
    """Remove `path` if it is there; True if this call removed it."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def replace_file(path: Path, data: bytes) -> None:
    """Durably replace a small file with `data` (atomic_file: old or new, never a part)."""
    with atomic_file(path, None) as fd:
        pwrite_all(fd, data, 0)


def identity(st: os.stat_result) -> str:
    """What any write or chmod of a file changes: device, inode, size, ctime, mtime (a write
    or chmod moves the ctime, which no user can set back)."""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_ctime_ns}:{st.st_mtime_ns}"


@contextmanager
def atomic_file(
    final: Path,
    exists_error: StorageError | None,
    fence: Fence = no_fence,
    record: Path | None = None,
) -> Iterator[int]:
    """Yield a temp file beside `final`; publish it only if the body succeeds.

    A crash or error at any instant leaves the old `final` (or none) or the complete new
    one, never a mixture. `exists_error` refuses to clobber an existing `final` (atomically,
    via link); None replaces it. `fence` is asked last, once the data is durable, so a
    refusal leaves `final` as it was. The temp stays flocked so `cleanup_temporary` skips it.
    `record` (which must not exist) becomes a hard link to the same file before `final`
    appears, so a published `final` always has it; it is removed again if publishing fails.
    """
    tmp = final.with_name(f"{final.name}{TMP_MARK}{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    published = linked = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield fd
        os.fsync(fd)
        fence()
        if record is not None:
            os.link(tmp, record)
            linked = True
            fsync_dir(record.parent)
        if exists_error is None:
            os.replace(tmp, final)
            published = True
        else:
            try:
                os.link(tmp, final)
            except FileExistsError:
                raise exists_error from None
            published = True
            os.unlink(tmp)
        fsync_dir(final.parent)
    finally:
        if not published:
            with suppress(OSError):
                os.unlink(tmp)
            if linked and record is not None:
                with suppress(OSError):
                    os.unlink(record)
        os.close(fd)


def until_commit(progress: ProgressCallback) -> ProgressCallback:
    """Hold back 100 until the result is published, so 100 means durable, not merely copied."""
    return lambda percent: progress(min(percent, 99))


def check_range(size: int, offset: int, length: int) -> None:
    if offset < 0 or length < 0 or offset + length > size:
        raise ValueError(f"range [{offset}, {offset + length}) outside disk of {size} bytes")


def flock_current(path: Path, disk_id: str) -> int | None:
    """Return an fd holding the lock on `path`, or None if the file was replaced meanwhile."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    keep = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        keep = _same_file(fd, path)
    except BlockingIOError:
        raise DiskBusy(f"disk {disk_id} is locked by another operation") from None
    finally:
        if not keep:
            os.close(fd)
    return fd if keep else None


def _same_file(fd: int, path: Path) -> bool:
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)


def remove_if_abandoned(tmp: Path) -> bool:
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.unlink(tmp)
    except (BlockingIOError, FileNotFoundError):  # still being written / already gone
        return False
    finally:
        os.close(fd)
    return True


QUARANTINE = "quarantine"


def quarantine_file(path: Path, root: Path, kind: str) -> Path:
    """Move `path` into ``<root>/quarantine/<kind>/`` (owner-only; a name already there gets a
    numeric suffix): kept, out of the driver's sight, for data nobody can prove is garbage."""
    target_dir = root / QUARANTINE / kind
    for directory in (root / QUARANTINE, target_dir):
        directory.mkdir(mode=0o700, exist_ok=True)
    target = target_dir / path.name
    suffix = 0
    while target.exists():
        suffix += 1
        target = target_dir / f"{path.name}.{suffix}"
    os.rename(path, target)
    fsync_dir(target_dir)
    fsync_dir(path.parent)
    return target


def pool_id(root: Path) -> str:
    """The id of the pool ``root`` is: read from its ``pool-id`` file, written once (owner-only,
    published with a link so two nodes starting together agree on one). Nodes sharing a data
    dir, or an NFS mount of it, therefore see the same pool (store/nodes.py, issue #13)."""
    path = root / POOL_FILE
    with translated():
        try:
            return _read_pool_id(path)
        except FileNotFoundError:
            pass
        try:
            with atomic_file(path, _PoolIdWritten(path)) as fd:
                os.write(fd, ids.new_id(ids.POOL).encode() + b"\n")
        except _PoolIdWritten:  # another node published its id first: that one holds
            pass
        return _read_pool_id(path)


class _PoolIdWritten(StorageError):
    """Another process wrote the pool id between our read and our publication."""


def _read_pool_id(path: Path) -> str:
    value = path.read_text(encoding="ascii", errors="replace").strip()
    if not ids.is_valid(ids.POOL, value):
        raise StorageIOError(f"{path} holds {value[:40]!r}, not a pool id (lhpool-xxxxxxxx)")
    return value
