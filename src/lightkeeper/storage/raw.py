"""Raw driver: each disk and snapshot is one sparse image file.

Raw is the simplest format that still makes snapshots cheap (sparse copy or reflink) and
lets a crash-safe rename swap a whole disk atomically. Layout under `root`:
``disks/<id>.img``, ``disks/<id>.lock``, ``snapshots/<id>.img``, temp files ``*.tmp-<hex>``,
``disks/<disk>.snapshots/<snap>.img``: the record of a snapshot's disk, beside it
``<snap>.blocks``, the snapshot's block table (blocks.py), and ``disks/<disk>.base``: the
snapshot the disk's current content was last copied to or from (the next snapshot's parent).

A snapshot's table is sealed with the identity of its image file (inode, size, change and
modification times): a write to the image, or a chmod to make one, moves its ctime, which
no user can set back. A snapshot on a reflink filesystem copies from its parent's table the
digest of every block whose extents the two share (FIEMAP), so it hashes only what changed;
a full copy hashes what it writes, as it reads everything anyway.

The record is a hard link to the snapshot's image, made before the image is published (one
more ``link`` of the same temp file, see files.atomic_file): a snapshot belongs to the disk
whose record is the same inode as ``snapshots/<snap>.img``. Being the same file is what makes
it crash-safe without a journal: a crash leaves either no image, or an image with its
record; a leftover record of an attempt that never published (or of a deleted image) is a
different inode, so it proves nothing, and cleanup_temporary removes it under its disk's
lock. Deleting removes the record before the image, so no record keeps deleted data alive.

The layout of older versions (``snapshots/<snap>.img`` alone) is this one without records,
so nothing is migrated: the disk of such an image was never recorded and cannot be learned
from its bytes, so it is found under any disk id (the service asks with the disk its
database records) and listed under ``UNRECORDED_DISK``. Snapshot ids are unique across the
disks of one data dir (SnapshotExists otherwise): the images share one folder.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from pathlib import Path

from lightkeeper.domain.attachment import Attachment, file_attachment

from .base import (
    UNRECORDED_DISK,
    Capabilities,
    ChecksumMismatch,
    ChunkHook,
    DiskBusy,
    DiskExists,
    DiskNotFound,
    Fence,
    LiveSnapshotUnsupported,
    Pace,
    ProgressCallback,
    SnapshotBusy,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotRef,
    StorageIOError,
    checked_id,
    no_chunk_hook,
    no_fence,
)
from .blocks import (
    BlockTable,
    changed_blocks,
    drop_orphan_tables,
    inherited_table,
    read_table,
    write_table,
)
from .checksum import BlockHasher, ChecksumHasher, PlainSha256, hasher_for
from .copy import clone_or_copy, hash_sparse, pread_into, pwrite_all, reflink_works
from .extents import FiemapUnsupported, file_segments
from .files import (
    TMP_MARK,
    atomic_file,
    check_range,
    flock_current,
    fsync_dir,
    identity,
    opened,
    pool_id,
    quarantine_file,
    remove_if_abandoned,
    replace_file,
    translated,
    unlink_quiet,
    until_commit,
)


class RawDriver:
    """StorageDriver over sparse raw image files on a local POSIX filesystem."""

    def __init__(
        self,
        root: Path,
        *,
        on_chunk: ChunkHook = no_chunk_hook,
        on_table: ChunkHook = no_chunk_hook,
    ) -> None:
        """`on_chunk` runs after every chunk a copy moves, `on_table` before a block table is
        written (fault injection, tests only)."""
        self._disks = root / "disks"
        self._snapshots = root / "snapshots"
        self._on_chunk = on_chunk
        self._on_table = on_table
        for directory in (root, self._disks, self._snapshots):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.pool = pool_id(root)
        # Copies still try a reflink each time (a copy may cross filesystems); this only
        # declares what the data dir's filesystem does.
        self.capabilities = Capabilities(reflink=reflink_works(self._snapshots))

    # -- paths -------------------------------------------------------------------------

    def attachment(self, disk_id: str) -> Attachment:
        return file_attachment(self.disk_path(disk_id), "raw")

    def disk_path(self, disk_id: str) -> Path:
        """The image file (file-backed drivers only: tests and benchmarks look inside)."""
        return self._disk_path(disk_id)

    def _disk_path(self, disk_id: str) -> Path:
        return self._disks / f"{checked_id(disk_id)}.img"

    def _lock_path(self, disk_id: str) -> Path:
        return self._disks / f"{checked_id(disk_id)}.lock"

    def _snapshot_path(self, snapshot_id: str) -> Path:
        return self._snapshots / f"{checked_id(snapshot_id)}.img"

    def _open_disk(self, disk_id: str, flags: int) -> AbstractContextManager[int]:
        return opened(self._disk_path(disk_id), flags, DiskNotFound(disk_id))

    def _record_path(self, disk_id: str, snapshot_id: str) -> Path:
        return self._disks / f"{checked_id(disk_id)}.snapshots" / f"{checked_id(snapshot_id)}.img"

    @contextmanager
    def _open_snapshot(self, disk_id: str, snapshot_id: str) -> Iterator[int]:
        """The image of `disk_id`'s snapshot; SnapshotNotFound if it is another disk's."""
        missing = SnapshotNotFound(f"{snapshot_id} of disk {checked_id(disk_id)}")
        with opened(self._snapshot_path(snapshot_id), os.O_RDONLY, missing) as fd:
            image = os.fstat(fd)
            mine = _inode(self._record_path(disk_id, snapshot_id)) == (image.st_dev, image.st_ino)
            if not mine and self._owner(snapshot_id, image) != UNRECORDED_DISK:
                raise missing  # another disk's (the scan runs only off the common path)
            yield fd

    def _owner(self, snapshot_id: str, image: os.stat_result) -> str:
        """The disk whose record is the same file as `image`, else UNRECORDED_DISK."""
        for record in self._disks.glob(f"*.snapshots/{checked_id(snapshot_id)}.img"):
            if _inode(record) == (image.st_dev, image.st_ino):
                return record.parent.name.removesuffix(".snapshots")
        return UNRECORDED_DISK

    def _new_record(self, disk_id: str, snapshot_id: str) -> Path:
        """Clear the way for a new record (caller holds the disk lock and saw no image, so
        any record there is a leftover)."""
        record = self._record_path(disk_id, snapshot_id)
        if not record.parent.is_dir():
            record.parent.mkdir(mode=0o700, exist_ok=True)
            fsync_dir(self._disks)
        unlink_quiet(record)
        return record

    def _drop_record(self, disk_id: str, snapshot_id: str) -> None:
        record = self._record_path(disk_id, snapshot_id)
        unlink_quiet(record)
        unlink_quiet(self._table_path(disk_id, snapshot_id))
        if record.parent.is_dir():
            fsync_dir(record.parent)

    # -- block tables ------------------------------------------------------------------

    def _table_path(self, disk_id: str, snapshot_id: str) -> Path:
        return self._record_path(disk_id, snapshot_id).with_suffix(".blocks")

    def _base_path(self, disk_id: str) -> Path:
        return self._disks / f"{checked_id(disk_id)}.base"

    def _save_table(self, disk_id: str, snapshot_id: str, table: BlockTable, fd: int) -> None:
        """Seal `table` with the image's identity now (`fd`: the published image)."""
        self._on_table()
        write_table(self._table_path(disk_id, snapshot_id), table.resealed(_seal(fd)))

    def _set_base(self, disk_id: str, snapshot_id: str) -> None:
        replace_file(self._base_path(disk_id), snapshot_id.encode())

    def _parent(self, disk_id: str) -> tuple[Path, BlockTable] | None:
        """The image and table of the disk's base snapshot, if both are there and whole."""
        try:
            snapshot_id = checked_id(self._base_path(disk_id).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        image = self._snapshot_path(snapshot_id)
        inode = _inode(image)
        if inode is None or inode != _inode(self._record_path(disk_id, snapshot_id)):
            return None
        size = image.stat().st_size
        table = read_table(self._table_path(disk_id, snapshot_id), size)
        return None if table is None else (image, table)

    def _trusted_table(
        self, disk_id: str, snapshot_id: str, fd: int, expected: str
    ) -> BlockTable | None:
        """The snapshot's table if Apply may rely on it without reading the data: whole, the
        recorded checksum, and sealed with the image as it is now."""
        table = read_table(self._table_path(disk_id, snapshot_id), os.fstat(fd).st_size)
        if table is None or table.checksum != expected.lower() or table.seal != _seal(fd):
            return None
        return table

    def _inherited(
        self,
        src: int,
        dst: int,
        size: int,
        parent: tuple[Path, BlockTable],
        progress: ProgressCallback,
    ) -> BlockTable | None:
        """The clone `dst`'s table from its parent's: only blocks whose extents are not the
        parent's are hashed (read from `src`, the disk, whose pages are the cached ones).
        None when the filesystem cannot map extents."""
        image, table = parent
        try:
            with opened(image, os.O_RDONLY, SnapshotNotFound(image.name)) as parent_fd:
                theirs = file_segments(parent_fd, table.size)
                mine = file_segments(dst, size)
        except (FiemapUnsupported, SnapshotNotFound):
            return None
        changed = changed_blocks(size, mine, theirs, table.size)

        def read(offset: int, view: memoryview) -> None:
            pread_into(src, view, offset)

        return inherited_table(size, table, changed, read, progress, self._on_chunk)

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
            fd = flock_current(path, disk_id)
        try:
            yield
        finally:
            os.close(fd)

    @contextmanager
    def lock_snapshot(self, disk_id: str, snapshot_id: str) -> Iterator[None]:
        """flock the snapshot image itself: restore and delete take it, so a snapshot that
        another process is reading (or restoring from) is reported busy, not yanked away."""
        with self._open_snapshot(disk_id, snapshot_id) as fd:
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
        with translated(), self.lock_disk(disk_id):
            if path.exists():
                raise DiskExists(disk_id)
            with atomic_file(path, DiskExists(disk_id)) as fd:
                if base_image is not None:
                    self._copy_base(base_image, fd, size_bytes)
                os.ftruncate(fd, size_bytes)

    def _copy_base(self, base_image: Path, dst_fd: int, size_bytes: int) -> None:
        with opened(base_image, os.O_RDONLY, StorageIOError(f"no base image {base_image}")) as src:
            base_size = os.fstat(src).st_size
            if base_size > size_bytes:
                raise ValueError(f"base image ({base_size} B) larger than disk ({size_bytes} B)")
            clone_or_copy(src, dst_fd, base_size, on_chunk=self._on_chunk)

    def delete_disk(self, disk_id: str) -> None:
        """Takes the lock so a disk is never deleted under a running snapshot (DiskBusy)."""
        with translated(), self.lock_disk(disk_id):
            unlink_quiet(self._disk_path(disk_id))
            unlink_quiet(self._base_path(disk_id))
            unlink_quiet(self._lock_path(disk_id))  # lock_disk re-checks the inode
            fsync_dir(self._disks)

    def disk_exists(self, disk_id: str) -> bool:
        return self._disk_path(disk_id).is_file()

    def disk_size(self, disk_id: str) -> int:
        with translated(), self._open_disk(disk_id, os.O_RDONLY) as fd:
            return os.fstat(fd).st_size

    def resize_disk(self, disk_id: str, size_bytes: int) -> None:
        with (
            translated(),
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
        with translated(), self._open_disk(disk_id, os.O_RDONLY) as fd:
            check_range(os.fstat(fd).st_size, offset, length)
            buf = bytearray(length)
            pread_into(fd, memoryview(buf), offset)
            return bytes(buf)

    def write(self, disk_id: str, offset: int, data: bytes) -> None:
        with (
            translated(),
            self.lock_disk(disk_id),
            self._open_disk(disk_id, os.O_WRONLY) as fd,
        ):
            check_range(os.fstat(fd).st_size, offset, len(data))
            pwrite_all(fd, data, offset)
            os.fdatasync(fd)  # size is unchanged, so data sync is enough for durability

    def disk_sha256(self, disk_id: str) -> str:
        return self._content_checksum(self._open_disk(disk_id, os.O_RDONLY), PlainSha256)

    def disk_checksum(self, disk_id: str) -> str:
        return self._content_checksum(self._open_disk(disk_id, os.O_RDONLY), BlockHasher)

    # -- snapshots ---------------------------------------------------------------------

    def create_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> str:
        """Copies under the disk lock, which is what makes the copy point-in-time. The block
        table comes from the same pass: a full copy hashes what it wrote; a clone hashes only
        the blocks it does not share with the disk's base snapshot (the whole disk if there
        is none). A crash before the table is saved leaves a snapshot Apply verifies whole."""
        final = self._snapshot_path(snapshot_id)
        with (
            translated(),
            self.lock_disk(disk_id),
            self._open_disk(disk_id, os.O_RDONLY) as src,
        ):
            if final.exists():
                raise SnapshotExists(snapshot_id)
            record = self._new_record(disk_id, snapshot_id)
            size = os.fstat(src).st_size
            parent = self._parent(disk_id)
            shown = until_commit(progress)
            hasher = BlockHasher(size)
            with atomic_file(final, SnapshotExists(snapshot_id), fence, record) as dst:
                method = clone_or_copy(
                    src, dst, size, shown, hasher, self._on_chunk, hash_clone=parent is None
                )
                table = None
                if method == "reflink" and parent is not None:
                    table = self._inherited(src, dst, size, parent, shown)
                    if table is None:
                        hash_sparse(src, size, hasher, shown, self._on_chunk)
                if table is None:
                    table = BlockTable(size, hasher.digests())
                os.fchmod(dst, 0o400)
            with opened(final, os.O_RDONLY, SnapshotNotFound(snapshot_id)) as published:
                self._save_table(disk_id, snapshot_id, table, published)
            self._set_base(disk_id, snapshot_id)
            progress(100)
        return table.checksum

    def create_snapshot_live(
        self,
        disk_id: str,
        snapshot_id: str,
        take: Callable[[str], None],
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> str:
        """A raw file has no internal snapshots for a VM to take (capabilities say so)."""
        raise LiveSnapshotUnsupported("raw disks are snapshotted at rest (create_snapshot)")

    def restore_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        expected_checksum: str,
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> None:
        """Verify-then-swap in one pass: the temp copy is hashed as it is written and only
        renamed over the disk if it matches, so the disk is untouched on mismatch and the
        checked bytes are exactly the installed ones. Open handles on the old disk keep
        seeing old data, so the instance must be stopped first. A legacy plain-sha256
        `expected_checksum` is verified as such (cost then grows with the disk size).

        A snapshot whose sealed table holds (see the module docstring) was checked when it was
        made or last verified and not written since: it is installed without reading it (a
        clone costs metadata only); any other is verified whole, and sealed again if good.
        """
        disk = self._disk_path(disk_id)
        with translated(), self.lock_disk(disk_id), self.lock_snapshot(disk_id, snapshot_id):
            if not disk.is_file():
                raise DiskNotFound(disk_id)
            with self._open_snapshot(disk_id, snapshot_id) as src:
                size = os.fstat(src).st_size
                trusted = self._trusted_table(disk_id, snapshot_id, src, expected_checksum)
                hasher = None if trusted else hasher_for(expected_checksum, size)
                with atomic_file(disk, None, fence) as dst:
                    clone_or_copy(src, dst, size, until_commit(progress), hasher, self._on_chunk)
                    actual = expected_checksum.lower() if hasher is None else hasher.hexdigest()
                    if actual != expected_checksum.lower():
                        raise ChecksumMismatch(expected_checksum, actual)
                if isinstance(hasher, BlockHasher):
                    self._save_table(disk_id, snapshot_id, BlockTable(size, hasher.digests()), src)
            self._set_base(disk_id, snapshot_id)
            progress(100)

    def held_elsewhere(self, disk_id: str) -> bool:
        """Local storage: no client but this host's drivers and machines."""
        return False

    def fence_disk(self, disk_id: str) -> None:
        """Local storage: a machine of this disk runs on this host only (nothing to cut)."""

    def delete_snapshot(
        self, disk_id: str, snapshot_id: str, *, fence: Fence | None = None
    ) -> None:
        """The record goes first: a crash in between leaves an unrecorded image (listed, so
        orphan cleanup finds it), never a record holding deleted data. Only a fenced delete
        takes the disk lock: DeleteSnapshots must not wait for another snapshot's copy."""
        if not self.snapshot_exists(disk_id, snapshot_id):
            return
        with translated(), ExitStack() as held:
            if fence is not None:
                held.enter_context(self.lock_disk(disk_id))
            held.enter_context(self.lock_snapshot(disk_id, snapshot_id))
            if fence is not None:
                fence()
            self._drop_record(disk_id, snapshot_id)
            unlink_quiet(self._snapshot_path(snapshot_id))
            fsync_dir(self._snapshots)

    def snapshot_exists(self, disk_id: str, snapshot_id: str) -> bool:
        try:
            with translated(), self._open_snapshot(disk_id, snapshot_id):
                return True
        except SnapshotNotFound:
            return False

    def snapshots(self) -> list[SnapshotRef]:
        with translated():
            owners: dict[tuple[int, int] | None, str] = {
                _inode(record): record.parent.name.removesuffix(".snapshots")
                for record in self._disks.glob("*.snapshots/*.img")
            }
            owners.pop(None, None)  # a record deleted meanwhile
            return sorted(
                SnapshotRef(owners.get(_inode(image), UNRECORDED_DISK), image.stem)
                for image in self._snapshots.glob("*.img")
            )

    def snapshot_sha256(self, disk_id: str, snapshot_id: str) -> str:
        return self._content_checksum(self._open_snapshot(disk_id, snapshot_id), PlainSha256)

    def snapshot_checksum(self, disk_id: str, snapshot_id: str) -> str:
        return self._content_checksum(self._open_snapshot(disk_id, snapshot_id), BlockHasher)

    def verify_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        expected_checksum: str,
        progress: ProgressCallback,
        *,
        pace: Pace | None = None,
    ) -> None:
        """Hash every data byte of the image; if it matches, seal its table again with the
        image's identity from *before* the read, and only if that identity still holds after
        it (a write meanwhile leaves the old seal, so nothing unread is vouched for). No lock:
        a scrub must not make Apply or DeleteSnapshots wait."""
        with translated(), self._open_snapshot(disk_id, snapshot_id) as fd:
            before = _seal(fd)
            size = os.fstat(fd).st_size
            hasher = hasher_for(expected_checksum, size)
            hash_sparse(fd, size, hasher, progress, self._on_chunk, pace)
            actual = hasher.hexdigest()
            if actual != expected_checksum.lower():
                raise ChecksumMismatch(expected_checksum, actual)
            if isinstance(hasher, BlockHasher) and _seal(fd) == before:
                with suppress(FileNotFoundError):  # deleted meanwhile: nothing to seal
                    self._save_table(disk_id, snapshot_id, BlockTable(size, hasher.digests()), fd)

    # -- housekeeping ------------------------------------------------------------------

    def cleanup_temporary(self) -> int:
        """Safe even while copies run: in-flight temps are flocked by their writer."""
        removed = 0
        with translated():
            for directory in (self._disks, self._snapshots):
                for tmp in directory.glob(f"*{TMP_MARK}*"):
                    removed += remove_if_abandoned(tmp)
            for record in self._disks.glob("*.snapshots/*.img"):
                removed += self._remove_if_leftover(record)
            removed += drop_orphan_tables(self._disks, ".img")
        return removed

    def _remove_if_leftover(self, record: Path) -> bool:
        """A record that is not its snapshot's image is left by a crash; under its disk's
        lock (skipped while busy) no create that is about to publish it can be running."""
        try:
            with self.lock_disk(record.parent.name.removesuffix(".snapshots")):
                if _inode(record) == _inode(self._snapshots / record.name):
                    return False
                os.unlink(record)
                fsync_dir(record.parent)
                return True
        except (DiskBusy, FileNotFoundError):
            return False

    def quarantine_snapshot(self, disk_id: str, snapshot_id: str) -> Path:
        """The image moves to ``quarantine/snapshots/`` (under its lock: not while read); its
        record is dropped first, like delete_snapshot does."""
        with translated(), self.lock_snapshot(disk_id, snapshot_id):
            self._drop_record(disk_id, snapshot_id)
            return quarantine_file(
                self._snapshot_path(snapshot_id), self._snapshots.parent, "snapshots"
            )

    def _content_checksum(
        self, image: AbstractContextManager[int], hasher: Callable[[int], ChecksumHasher]
    ) -> str:
        with translated(), image as fd:
            size = os.fstat(fd).st_size
            result = hasher(size)
            hash_sparse(fd, size, result, None, self._on_chunk)
            return result.hexdigest()


def _seal(fd: int) -> bytes:
    """The image's identity (files.identity; see the module docstring)."""
    return identity(os.fstat(fd)).encode()


def _inode(path: Path) -> tuple[int, int] | None:
    """What tells two names of one file apart from two files (None: no such file)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino
