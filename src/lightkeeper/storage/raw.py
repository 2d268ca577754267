"""Raw driver: each disk and snapshot is one sparse image file.

Raw is the simplest format that still makes snapshots cheap (sparse copy or reflink) and
lets a crash-safe rename swap a whole disk atomically. Layout under `root`:
``disks/<id>.img``, ``disks/<id>.lock``, ``snapshots/<id>.img``, temp files ``*.tmp-<hex>``.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

from .base import (
    ChecksumMismatch,
    DiskBusy,
    DiskExists,
    DiskNotFound,
    NoSpace,
    ProgressCallback,
    SnapshotBusy,
    SnapshotExists,
    SnapshotNotFound,
    StorageError,
    StorageIOError,
)
from .checksum import BlockHasher, block_checksum, hasher_for, plain_sha256
from .copy import clone_or_copy, pread_into, pwrite_all

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TMP_MARK = ".tmp-"
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


@contextmanager
def _translated() -> Iterator[None]:
    """Turn OSError into StorageError so callers never need to know errno."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise NoSpace(str(exc)) from exc
        raise StorageIOError(str(exc)) from exc


@contextmanager
def _opened(path: Path, flags: int, missing: StorageError) -> Iterator[int]:
    try:
        fd = os.open(path, flags | os.O_CLOEXEC)
    except FileNotFoundError:
        raise missing from None
    try:
        yield fd
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    """Make a rename/unlink durable: without this a crash may resurrect the old entry."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quiet(path: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


@contextmanager
def _atomic_file(final: Path, exists_error: StorageError | None) -> Iterator[int]:
    """Yield a temp file beside `final`; publish it only if the body succeeds.

    A crash or error at any instant leaves the old `final` (or none) or the complete new
    one, never a mixture. `exists_error` refuses to clobber an existing `final` (atomically,
    via link); None replaces it. The temp stays flocked so `cleanup_temporary` skips it.
    """
    tmp = final.with_name(f"{final.name}{_TMP_MARK}{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    published = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield fd
        os.fsync(fd)
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
        _fsync_dir(final.parent)
    finally:
        if not published:
            with suppress(OSError):
                os.unlink(tmp)
        os.close(fd)


def _until_commit(progress: ProgressCallback) -> ProgressCallback:
    """Hold back 100 until the result is published, so 100 means durable, not merely copied."""
    return lambda percent: progress(min(percent, 99))


def _check_range(size: int, offset: int, length: int) -> None:
    if offset < 0 or length < 0 or offset + length > size:
        raise ValueError(f"range [{offset}, {offset + length}) outside disk of {size} bytes")


class RawDriver:
    """StorageDriver over sparse raw image files on a local POSIX filesystem."""

    format = "raw"

    def __init__(self, root: Path) -> None:
        self._disks = root / "disks"
        self._snapshots = root / "snapshots"
        for directory in (root, self._disks, self._snapshots):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- paths -------------------------------------------------------------------------

    @staticmethod
    def _checked(ident: str) -> str:
        """Ids become file names, so reject anything that could escape the directory."""
        if not _ID_RE.fullmatch(ident):
            raise ValueError(f"invalid storage id {ident!r}")
        return ident

    def disk_path(self, disk_id: str) -> Path:
        return self._disk_path(disk_id)

    def _disk_path(self, disk_id: str) -> Path:
        return self._disks / f"{self._checked(disk_id)}.img"

    def _lock_path(self, disk_id: str) -> Path:
        return self._disks / f"{self._checked(disk_id)}.lock"

    def _snapshot_path(self, snapshot_id: str) -> Path:
        return self._snapshots / f"{self._checked(snapshot_id)}.img"

    def _open_disk(self, disk_id: str, flags: int) -> AbstractContextManager[int]:
        return _opened(self._disk_path(disk_id), flags, DiskNotFound(disk_id))

    def _open_snapshot(self, snapshot_id: str) -> AbstractContextManager[int]:
        return _opened(self._snapshot_path(snapshot_id), os.O_RDONLY, SnapshotNotFound(snapshot_id))

    # -- locking -----------------------------------------------------------------------

    @contextmanager
    def lock_disk(self, disk_id: str) -> Iterator[None]:
        """flock `<disk>.lock`: per open file description, so it excludes threads and processes.

        Retries if the lock file was unlinked (by delete_disk) between our open and flock,
        since holding a lock on an orphaned inode would exclude nobody.
        """
        path = self._lock_path(disk_id)
        fd = None
        while fd is None:
            fd = _flock_current(path, disk_id)
        try:
            yield
        finally:
            os.close(fd)

    @contextmanager
    def lock_snapshot(self, snapshot_id: str) -> Iterator[None]:
        """flock the snapshot image itself: restore and delete take it, so a snapshot that
        another process is reading (or restoring from) is reported busy, not yanked away."""
        with self._open_snapshot(snapshot_id) as fd:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SnapshotBusy(
                    f"snapshot {snapshot_id} is locked by another operation"
                ) from None
            yield

    # -- disks -------------------------------------------------------------------------

    def create_disk(self, disk_id: str, size_bytes: int, base_image: Path | None = None) -> None:
        path = self._disk_path(disk_id)
        if size_bytes <= 0:
            raise ValueError(f"disk size must be positive, got {size_bytes}")
        with _translated(), self.lock_disk(disk_id):
            if path.exists():
                raise DiskExists(disk_id)
            with _atomic_file(path, DiskExists(disk_id)) as fd:
                if base_image is not None:
                    self._copy_base(base_image, fd, size_bytes)
                os.ftruncate(fd, size_bytes)

    @staticmethod
    def _copy_base(base_image: Path, dst_fd: int, size_bytes: int) -> None:
        with _opened(base_image, os.O_RDONLY, StorageIOError(f"no base image {base_image}")) as src:
            base_size = os.fstat(src).st_size
            if base_size > size_bytes:
                raise ValueError(f"base image ({base_size} B) larger than disk ({size_bytes} B)")
            clone_or_copy(src, dst_fd, base_size)

    def delete_disk(self, disk_id: str) -> None:
        """Takes the lock so a disk is never deleted under a running snapshot (DiskBusy)."""
        with _translated(), self.lock_disk(disk_id):
            _unlink_quiet(self._disk_path(disk_id))
            _unlink_quiet(self._lock_path(disk_id))  # lock_disk re-checks the inode
            _fsync_dir(self._disks)

    def disk_exists(self, disk_id: str) -> bool:
        return self._disk_path(disk_id).is_file()

    def disk_size(self, disk_id: str) -> int:
        with _translated(), self._open_disk(disk_id, os.O_RDONLY) as fd:
            return os.fstat(fd).st_size

    def resize_disk(self, disk_id: str, size_bytes: int) -> None:
        with (
            _translated(),
            self.lock_disk(disk_id),
            self._open_disk(disk_id, os.O_RDWR) as fd,
        ):
            current = os.fstat(fd).st_size
            if size_bytes < current:
                raise ValueError(f"cannot shrink disk {disk_id} from {current} to {size_bytes}")
            if size_bytes > current:
                os.ftruncate(fd, size_bytes)
                os.fsync(fd)

    def read(self, disk_id: str, offset: int, length: int) -> bytes:
        with _translated(), self._open_disk(disk_id, os.O_RDONLY) as fd:
            _check_range(os.fstat(fd).st_size, offset, length)
            buf = bytearray(length)
            pread_into(fd, memoryview(buf), offset)
            return bytes(buf)

    def write(self, disk_id: str, offset: int, data: bytes) -> None:
        with (
            _translated(),
            self.lock_disk(disk_id),
            self._open_disk(disk_id, os.O_WRONLY) as fd,
        ):
            _check_range(os.fstat(fd).st_size, offset, len(data))
            pwrite_all(fd, data, offset)
            os.fdatasync(fd)  # size is unchanged, so data sync is enough for durability

    def disk_sha256(self, disk_id: str) -> str:
        return _content_checksum(self._open_disk(disk_id, os.O_RDONLY), plain_sha256)

    # -- snapshots ---------------------------------------------------------------------

    def create_snapshot(self, disk_id: str, snapshot_id: str, progress: ProgressCallback) -> str:
        """Copies under the disk lock, which is what makes the copy point-in-time. The block
        checksum is computed in the same pass, from what was written (or cloned)."""
        final = self._snapshot_path(snapshot_id)
        with (
            _translated(),
            self.lock_disk(disk_id),
            self._open_disk(disk_id, os.O_RDONLY) as src,
        ):
            if final.exists():
                raise SnapshotExists(snapshot_id)
            size = os.fstat(src).st_size
            hasher = BlockHasher(size)
            with _atomic_file(final, SnapshotExists(snapshot_id)) as dst:
                clone_or_copy(src, dst, size, _until_commit(progress), hasher)
                os.fchmod(dst, 0o400)
            progress(100)
        return hasher.hexdigest()

    def restore_snapshot(
        self, disk_id: str, snapshot_id: str, expected_checksum: str, progress: ProgressCallback
    ) -> None:
        """Verify-then-swap in one pass: the temp copy is hashed as it is written and only
        renamed over the disk if it matches, so the disk is untouched on mismatch and the
        checked bytes are exactly the installed ones. Open handles on the old disk keep
        seeing old data, so the instance must be stopped first. A legacy plain-sha256
        `expected_checksum` is verified as such (cost then grows with the disk size).
        """
        disk = self._disk_path(disk_id)
        with _translated(), self.lock_disk(disk_id), self.lock_snapshot(snapshot_id):
            if not disk.is_file():
                raise DiskNotFound(disk_id)
            with self._open_snapshot(snapshot_id) as src, _atomic_file(disk, None) as dst:
                size = os.fstat(src).st_size
                hasher = hasher_for(expected_checksum, size)
                clone_or_copy(src, dst, size, _until_commit(progress), hasher)
                actual = hasher.hexdigest()
                if actual != expected_checksum.lower():
                    raise ChecksumMismatch(expected_checksum, actual)
            progress(100)

    def delete_snapshot(self, snapshot_id: str) -> None:
        if not self.snapshot_exists(snapshot_id):
            return
        with _translated(), self.lock_snapshot(snapshot_id):
            _unlink_quiet(self._snapshot_path(snapshot_id))
            _fsync_dir(self._snapshots)

    def snapshot_exists(self, snapshot_id: str) -> bool:
        return self._snapshot_path(snapshot_id).is_file()

    def snapshot_ids(self) -> list[str]:
        return sorted(p.stem for p in self._snapshots.glob("*.img"))

    def snapshot_sha256(self, snapshot_id: str) -> str:
        return _content_checksum(self._open_snapshot(snapshot_id), plain_sha256)

    def snapshot_checksum(self, snapshot_id: str) -> str:
        return _content_checksum(self._open_snapshot(snapshot_id), block_checksum)

    # -- housekeeping ------------------------------------------------------------------

    def cleanup_temporary(self) -> int:
        """Safe even while copies run: in-flight temps are flocked by their writer."""
        removed = 0
        with _translated():
            for directory in (self._disks, self._snapshots):
                for tmp in directory.glob(f"*{_TMP_MARK}*"):
                    removed += _remove_if_abandoned(tmp)
        return removed


def _content_checksum(
    opened: AbstractContextManager[int], checksum: Callable[[int, int], str]
) -> str:
    with _translated(), opened as fd:
        return checksum(fd, os.fstat(fd).st_size)


def _flock_current(path: Path, disk_id: str) -> int | None:
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


def _remove_if_abandoned(tmp: Path) -> bool:
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
