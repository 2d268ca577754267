"""The storage-driver contract and its errors.

Drivers only move disk bytes; they know nothing of HTTP, databases or Tencent, so the
service layer can swap formats (raw, qcow2; later network pools) without touching callers.
The contract comes in parts (datapath, inspection, housekeeping) whose union is
`StorageDriver`; optional features are declared as `Capabilities`.
Only `StorageError` subclasses (and `ValueError` for caller bugs) may escape a driver.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from lightkeeper.domain.attachment import Attachment

ProgressCallback = Callable[[int], None]
"""Receives a whole percent 0..100, non-decreasing, at least 0 and 100, at most ~101 calls."""

Fence = Callable[[], None]
"""Called under the disk lock right before a driver publishes a result (renames a finished
copy into place, switches an image to a snapshot); whatever it raises stops the operation
with nothing published. The job layer passes one that re-checks the job's lease, so a worker
that lost its lease never changes a disk another worker may be using."""


def no_fence() -> None:
    """The default fence: publishing is always allowed (admin and test callers)."""


ChunkHook = Callable[[], None]
"""Called after each chunk a copy or hash pass moves; whatever it raises (an OSError) fails
the operation part-way, like an error of the disk. Fault injection (faults.py) uses it."""


def no_chunk_hook() -> None:
    """The default chunk hook: copies run undisturbed."""


Pace = Callable[[int], None]
"""Hears the bytes a verification has just read; may sleep (a scrub's bandwidth limit)."""


_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def checked_id(ident: str) -> str:
    """Ids may become file names, so reject anything that could escape a directory."""
    if not _ID_RE.fullmatch(ident):
        raise ValueError(f"invalid storage id {ident!r}")
    return ident


class SnapshotRef(NamedTuple):
    """A stored snapshot: snapshots are addressed by their disk and their id together."""

    disk_id: str
    snapshot_id: str


UNRECORDED_DISK = "unrecorded-disk"
"""The disk ``snapshots()`` reports for data stored by an older version that did not record
its disk (raw driver only); such a snapshot is found under any disk id."""


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


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a driver can do beyond the contract, declared instead of found by isinstance.

    Callers branch on these and fall back to the generic path (an offline copy) otherwise.
    """

    live_snapshot: bool = False
    """``create_snapshot_live`` works: a running hypervisor can snapshot the open disk."""
    reflink: bool = False
    """Snapshot copies share extents copy-on-write (cost ~ metadata, not data)."""
    change_tracking: bool = False
    """The driver can tell which blocks changed since a snapshot (incremental backups)."""
    shared_pool: bool = False
    """Disks live in storage every node sees (e.g. Ceph): another node may open them."""
    converts_images: bool = False
    """``create_disk``'s base image may be in any format qemu-img reads (else raw bytes)."""
    vm_holds_snapshots: bool = False
    """A running VM holds the image its snapshots live in (qcow2's internal snapshots): it
    must delete them itself. Else (rbd) the driver deletes them under a running VM too."""


class LiveSnapshotUnsupported(StorageError):
    """``create_snapshot_live`` on a driver whose capabilities say it cannot: a caller bug."""


class DiskDatapath(Protocol):
    """Making, changing and removing disks and their snapshots: the job layer's side."""

    def create_disk(self, disk_id: str, size_bytes: int, base_image: Path | None = None) -> None:
        """Create a sparse disk, optionally starting with `base_image`'s bytes (DiskExists)."""
        ...

    def delete_disk(self, disk_id: str) -> None:
        """Remove the disk; a missing disk is not an error so retries are safe."""
        ...

    def resize_disk(self, disk_id: str, size_bytes: int) -> None:
        """Grow the disk; shrinking would silently destroy data, so it raises ValueError."""
        ...

    def write(self, disk_id: str, offset: int, data: bytes) -> None:
        """Durable (synced) write inside the disk bounds, under the disk lock."""
        ...

    def attachment(self, disk_id: str) -> Attachment:
        """What a hypervisor needs to open the disk (it need not exist yet)."""
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

    def create_snapshot_live(
        self,
        disk_id: str,
        snapshot_id: str,
        take: Callable[[str], None],
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> str:
        """Only with ``capabilities.live_snapshot`` (else LiveSnapshotUnsupported): snapshot an
        image a running VM holds open. ``take(tag)`` makes the VM take the internal snapshot
        ``tag``; the driver then records it and returns its checksum (read without the image's
        write lock). Same result contract as ``create_snapshot``."""
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
        older versions is still accepted (verified at plain-sha256 speed). A snapshot whose
        block table (blocks.py) is the recorded one and whose driver seal shows its data
        unwritten since it was last checked is installed without being read; any other is
        verified whole first (ChecksumMismatch, the disk untouched).
        """
        ...

    def verify_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        expected_checksum: str,
        progress: ProgressCallback,
        *,
        pace: Pace | None = None,
    ) -> None:
        """Read all of the snapshot's data and compare it with `expected_checksum`
        (ChecksumMismatch). A match renews the seal Apply relies on. Takes no lock that
        Apply or delete would wait for: the scrubber and ``admin snapshot verify`` run it."""
        ...

    def fence_disk(self, disk_id: str) -> None:
        """Before a machine boots on the disk: cut every other client off it, so a machine
        that outlived its node (issue #15) can never write it again. Shared pools
        blocklist the holder of the image's lock (Ceph); on local storage the machine's
        node is this host, whose machines the compute driver finds itself: nothing to do."""
        ...

    def delete_snapshot(
        self, disk_id: str, snapshot_id: str, *, fence: Fence | None = None
    ) -> None:
        """Remove the snapshot's data; a missing snapshot is not an error.

        With a ``fence`` (a job discarding an earlier attempt's data) the deletion runs under
        the disk lock and ``fence`` is called right before anything is removed: a worker that
        lost its lease then removes nothing, and one that stalls after its fence holds the
        disk lock, so the job's new owner cannot publish in between."""
        ...


class Inspection(Protocol):
    """Read-only questions about stored data: admin "verify", tests and the API's checks."""

    def disk_exists(self, disk_id: str) -> bool: ...

    def disk_size(self, disk_id: str) -> int: ...

    def read(self, disk_id: str, offset: int, length: int) -> bytes: ...

    def disk_sha256(self, disk_id: str) -> str:
        """Hex sha256 of the logical content, holes counted as zeros."""
        ...

    def disk_checksum(self, disk_id: str) -> str:
        """The block checksum (``b1m-sha256:``, checksum.py) of the logical content: what a
        snapshot of the disk taken now would record, at a cost that follows the data, not
        the disk size (holes take a precomputed digest)."""
        ...

    def snapshot_exists(self, disk_id: str, snapshot_id: str) -> bool: ...

    def held_elsewhere(self, disk_id: str) -> bool:
        """Another client holds the disk for writing (shared pools: a Ceph client with the
        image's exclusive lock that is not a Lightkeeper one); local storage: False."""
        ...

    def snapshot_sha256(self, disk_id: str, snapshot_id: str) -> str:
        """Hex sha256 of the snapshot's logical content, holes counted as zeros."""
        ...

    def snapshot_checksum(self, disk_id: str, snapshot_id: str) -> str:
        """Block checksum of the stored snapshot (hole-cheap), comparable with what
        create_snapshot returned: the integrity check behind an admin "verify"."""
        ...


class Housekeeping(Protocol):
    """Recovery after crashes and mutual exclusion: what a server start and the jobs need."""

    def snapshots(self) -> list[SnapshotRef]:
        """Every snapshot whose data is stored (sorted), so orphans can be found after a
        crash."""
        ...

    def cleanup_temporary(self) -> int:
        """Remove temp files abandoned by crashed copies; returns how many were removed."""
        ...

    def quarantine_snapshot(self, disk_id: str, snapshot_id: str) -> Path:
        """Move a snapshot's data out of sight (``snapshots`` no longer lists it) into the
        ``quarantine/`` folder of the data dir, without deleting anything; returns where it
        went. For data whose record is missing: nobody can prove it is garbage."""
        ...

    def lock_snapshot(self, disk_id: str, snapshot_id: str) -> AbstractContextManager[None]:
        """Exclusive, non-blocking: raises SnapshotBusy if another holder has it."""
        ...

    def lock_disk(self, disk_id: str) -> AbstractContextManager[None]:
        """Exclusive, non-blocking, cross-process disk lock (DiskBusy if held elsewhere).

        Not re-entrant: write/create_snapshot/restore_snapshot take it themselves.
        """
        ...

    @property
    def pool(self) -> str:
        """The id of the storage these disks live in (``lhpool-xxxxxxxx``), the same for
        every node that reaches it: which nodes may run a job on a disk (issue #13)."""
        ...


class StorageDriver(DiskDatapath, Inspection, Housekeeping, Protocol):
    """Disk images and their point-in-time snapshots, addressed by opaque ids: a snapshot by
    its disk's id and its own (SnapshotNotFound when asked for under another disk).

    Ids such as ``lhdisk-ab12cd34`` / ``lhsnap-ab12cd34`` must match
    ``[A-Za-z0-9][A-Za-z0-9_-]{0,63}`` (ValueError otherwise) because they may become file
    names. A new driver is one module implementing this plus one line in the registry
    (storage/__init__.py); tests/storage/test_contract.py is what it must pass.
    """

    @property
    def capabilities(self) -> Capabilities:
        """Optional features (see Capabilities); the generic path is used without them."""
        ...
