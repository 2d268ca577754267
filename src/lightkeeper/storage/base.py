"""The storage-driver contract and its errors.

Drivers only move disk bytes; they know nothing of HTTP, databases or Tencent, so the
service layer can swap formats (raw today, qcow2 later) without touching callers.
Only `StorageError` subclasses (and `ValueError` for caller bugs) may escape a driver.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, runtime_checkable

ProgressCallback = Callable[[int], None]
"""Receives a whole percent 0..100, non-decreasing, at least 0 and 100, at most ~101 calls."""

Fence = Callable[[], None]
"""Called under the disk lock right before a driver publishes a result (renames a finished
copy into place, switches an image to a snapshot); whatever it raises stops the operation
with nothing published. The job layer passes one that re-checks the job's lease, so a worker
that lost its lease never changes a disk another worker may be using."""


def no_fence() -> None:
    """The default fence: publishing is always allowed (admin and test callers)."""


class StorageError(Exception):
    """Base of every failure a driver reports, so callers can map one type to an API error."""


class DiskNotFound(StorageError):
    pass


class DiskExists(StorageError):
    pass


class SnapshotNotFound(StorageError):
    pass


class SnapshotExists(StorageError):
    pass


class DiskBusy(StorageError):
    """Another process or operation holds the disk's lock; retry later rather than wait."""


class SnapshotBusy(StorageError):
    """Another process or operation holds the snapshot's lock (e.g. reading it)."""


class ChecksumMismatch(StorageError):
    """Snapshot content differs from its recorded checksum; the disk was left untouched."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"snapshot checksum {actual} does not match expected {expected}")
        self.expected = expected
        self.actual = actual


class NoSpace(StorageError):
    """ENOSPC/EDQUOT: distinct so the API can answer with a quota error instead of a 500."""


class StorageIOError(StorageError):
    """Any other OS-level failure (EIO, EACCES...); the original OSError is `__cause__`."""


class StorageDriver(Protocol):
    format: str  # image format a hypervisor opens the disk with: "raw" or "qcow2"

    """Disk images and their point-in-time snapshots, addressed by opaque ids.

    Ids such as ``lhdisk-ab12cd34`` / ``lhsnap-ab12cd34`` must match
    ``[A-Za-z0-9][A-Za-z0-9_-]{0,63}`` (ValueError otherwise) because they become file names.
    """

    def create_disk(self, disk_id: str, size_bytes: int, base_image: Path | None = None) -> None:
        """Create a sparse disk, optionally starting with `base_image`'s bytes (DiskExists)."""
        ...

    def delete_disk(self, disk_id: str) -> None:
        """Remove the disk; a missing disk is not an error so retries are safe."""
        ...

    def disk_exists(self, disk_id: str) -> bool: ...

    def disk_path(self, disk_id: str) -> Path:
        """The image file a hypervisor attaches (it need not exist yet)."""
        ...

    def disk_size(self, disk_id: str) -> int: ...

    def resize_disk(self, disk_id: str, size_bytes: int) -> None:
        """Grow the disk; shrinking would silently destroy data, so it raises ValueError."""
        ...

    def read(self, disk_id: str, offset: int, length: int) -> bytes: ...

    def write(self, disk_id: str, offset: int, data: bytes) -> None:
        """Durable (synced) write inside the disk bounds, under the disk lock."""
        ...

    def disk_sha256(self, disk_id: str) -> str:
        """Hex sha256 of the logical content, holes counted as zeros."""
        ...

    def create_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> str:
        """Crash-safe, read-only point-in-time copy of the disk; returns its block checksum.

        The block checksum (``"b1m-sha256:<hex>"``, see storage/checksum.py) depends only on
        the logical content and costs nothing for holes, unlike a plain sha256.
        """
        ...

    def restore_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        expected_checksum: str,
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> None:
        """Atomically replace the disk with the snapshot if the snapshot matches its checksum.

        `expected_checksum` is what create_snapshot returned; a plain sha256 hex recorded by
        older versions is still accepted (verified at plain-sha256 speed).
        """
        ...

    def delete_snapshot(self, snapshot_id: str) -> None: ...

    def snapshot_exists(self, snapshot_id: str) -> bool: ...

    def snapshot_ids(self) -> list[str]:
        """Every snapshot whose data is stored, so orphans can be found after a crash."""
        ...

    def snapshot_sha256(self, snapshot_id: str) -> str:
        """Hex sha256 of the snapshot's logical content, holes counted as zeros."""
        ...

    def snapshot_checksum(self, snapshot_id: str) -> str:
        """Block checksum of the stored snapshot (hole-cheap), comparable with what
        create_snapshot returned: the integrity check behind an admin "verify"."""
        ...

    def cleanup_temporary(self) -> int:
        """Remove temp files abandoned by crashed copies; returns how many were removed."""
        ...

    def quarantine_snapshot(self, snapshot_id: str) -> Path:
        """Move a snapshot's data out of sight (``snapshot_ids`` no longer lists it) into the
        ``quarantine/`` folder of the data dir, without deleting anything; returns where it
        went. For data whose record is missing: nobody can prove it is garbage."""
        ...

    def lock_snapshot(self, snapshot_id: str) -> AbstractContextManager[None]:
        """Exclusive, non-blocking: raises SnapshotBusy if another holder has it."""
        ...

    def lock_disk(self, disk_id: str) -> AbstractContextManager[None]:
        """Exclusive, non-blocking, cross-process disk lock (DiskBusy if held elsewhere).

        Not re-entrant: write/create_snapshot/restore_snapshot take it themselves.
        """
        ...


@runtime_checkable
class LiveSnapshotStorage(Protocol):
    """Optional: a format whose snapshots a running hypervisor can take (qcow2 internal)."""

    def create_snapshot_live(
        self,
        disk_id: str,
        snapshot_id: str,
        take: Callable[[str], None],
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> str:
        """Snapshot an image a running VM holds open: ``take(tag)`` makes the VM take the
        internal snapshot ``tag``; the driver then records it and returns its checksum (read
        without the image's write lock). Same result contract as ``create_snapshot``."""
        ...
