"""StorageDriver over Ceph RBD images, through librbd/librados (Debian's python3-rbd and
python3-rados; PyPI has no binding: README, "Ceph RBD").

Every node that reaches the pool sees the same disks, snapshots and block tables, so any node
may snapshot or roll back any disk (``capabilities.shared_pool``). In the pool (and the
configured RADOS namespace):

* ``lk.<disk>`` — a disk, an RBD image (format 2, layering + exclusive-lock + object-map +
  fast-diff). A disk made from a base image is a *clone* of ``lkbase.<key>@base``: the base
  is imported once per image file version, snapshotted and protected, as Cinder and Proxmox
  do, so a new disk costs metadata, not a copy.
* ``lk.<disk>@<snapshot>`` — a snapshot, an RBD snapshot of it. Apply is
  ``rollback_to_snap`` (RBD rolls objects back one by one, so an intent,
  ``lightkeeper.restoring`` in the image's metadata, is written first and a crash in the
  middle is finished by the next operation on the disk or by ``cleanup_temporary``).
* ``lktable.<disk>.<snapshot>`` — its block table (blocks.py), a RADOS object written whole.
  A snapshot's table is its parent's (the disk's base snapshot, ``lightkeeper.base``) with the
  blocks ``diff_iterate`` reports changed since the parent hashed afresh: RBD's own change
  tracking (object map / fast-diff). Its seal is the snapshot's RBD id: RBD snapshots are
  read-only, so a table sealed with the id of the snapshot of that name still vouches for it;
  the scrubber reads them back anyway (what no seal sees: a medium that decayed).
* ``lklock.<disk>`` and ``lklock.<disk>.<snapshot>`` — lock objects under a lease
  (storage/rbd_locks.py): a holder that is a dead process of this host, or whose lease ran
  out (a dead or stalled node), is broken and its Ceph client blocklisted; a live one makes
  the disk or snapshot busy (DiskBusy/SnapshotBusy).
  While it holds a disk, the driver also holds the image's own exclusive lock
  (``lock_acquire``), so another client writing the image (a VM, ``rbd`` by hand) makes the
  disk busy rather than being overwritten; the image's metadata says which Lightkeeper
  client took it, so the lock of one whose lock object was broken is broken too (and its
  client blocklisted) at once instead of after Ceph's watch timeout, as is the lock of a
  client that no longer watches the image (dead).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from lightkeeper.domain.attachment import Attachment, rbd_attachment

from .base import (
    Capabilities,
    ChecksumMismatch,
    ChunkHook,
    DiskBusy,
    DiskExists,
    DiskNotFound,
    Fence,
    NoSpace,
    Pace,
    ProgressCallback,
    SnapshotBusy,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotRef,
    StorageError,
    StorageIOError,
    checked_id,
    no_chunk_hook,
    no_fence,
)
from .blocks import BlockTable, TableDamaged, block_count, inherited_table
from .checksum import BLOCK_SIZE, BlockHasher, ChecksumHasher, PlainSha256, hasher_for
from .copy import CHUNK
from .files import check_range, quarantine_file, replace_file, translated
from .rbd_locks import LeasedLocks, this_process

logger = logging.getLogger("lightkeeper.storage.rbd")

DISK_PREFIX = "lk."
BASE_PREFIX = "lkbase."
TABLE_PREFIX = "lktable."
LOCK_PREFIX = "lklock."
QUARANTINE_PREFIX = "lkq."
"""A quarantined snapshot is renamed ``lkq.<id>``: out of ``snapshots()``, not deleted."""
BASE_SNAP = "base"
USER_SNAPSHOT = 0
"""RBD_SNAP_NAMESPACE_TYPE_USER: snapshots RBD keeps for itself (trash, group, mirror) have
names of its own and are never ours."""
BASE_KEY = "lightkeeper.base"
RESTORING_KEY = "lightkeeper.restoring"
HOLDER_KEY = "lightkeeper.holder"
"""Which process (host:pid:start) and Ceph client took the image's exclusive lock last."""
CONNECT_TIMEOUT = 10


def _bindings() -> tuple[Any, Any]:
    """librados and librbd, or why not (they are Debian packages, not PyPI ones)."""
    try:
        import rados
        import rbd
    except ImportError as exc:
        raise StorageIOError(
            "the rbd storage driver needs Debian's python3-rados and python3-rbd on this "
            f"interpreter's path (README, 'Ceph RBD'): {exc}"
        ) from None
    return rados, rbd


class RbdDriver:
    """StorageDriver over RBD images in one pool (and RADOS namespace) of a Ceph cluster."""

    capabilities = Capabilities(live_snapshot=True, shared_pool=True, change_tracking=True)

    def __init__(
        self,
        root: Path,
        *,
        pool: str = "rbd",
        namespace: str = "",
        conf: Path | None = None,
        client: str = "admin",
        on_chunk: ChunkHook = no_chunk_hook,
        on_table: ChunkHook = no_chunk_hook,
    ) -> None:
        """``root`` (the data dir) keeps only quarantine notes; ``conf`` None: librados's
        own search ($CEPH_CONF, /etc/ceph/ceph.conf). Hooks: fault injection, tests only."""
        self._root = root
        self._pool_name = pool
        self._namespace = namespace
        self._conf = conf
        self._client = client
        self._on_chunk = on_chunk
        self._on_table = on_table
        self._rados, self._rbd = _bindings()
        self._errors: tuple[type[Exception], ...] = (self._rados.Error, self._rbd.Error)
        self._cluster: Any = None
        self._ioctx: Any = None
        self._connect_lock = threading.Lock()
        self._holder = this_process()
        self._locks = LeasedLocks(self._rados, lambda: self.ioctx, self._connected_cluster)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- connection and names -----------------------------------------------------------

    @property
    def ioctx(self) -> Any:
        """The pool's I/O context, connected on first use (a clear error if Ceph is not
        reachable, instead of a hang at start)."""
        if self._ioctx is None:
            with self._connect_lock, self._translated():
                if self._ioctx is None:
                    cluster = self._rados.Rados(
                        conffile=str(self._conf) if self._conf else "", rados_id=self._client
                    )
                    try:
                        cluster.connect(timeout=CONNECT_TIMEOUT)
                        ioctx = cluster.open_ioctx(self._pool_name)
                    except self._rados.Error as exc:
                        cluster.shutdown()
                        raise StorageIOError(
                            f"cannot reach Ceph pool {self._pool_name!r} as client."
                            f"{self._client}: {exc}"
                        ) from None
                    ioctx.set_namespace(self._namespace)
                    self._cluster, self._ioctx = cluster, ioctx
        return self._ioctx

    def _connected_cluster(self) -> Any:
        _ = self.ioctx
        return self._cluster

    @functools.cached_property
    def pool(self) -> str:
        """The same on every node: derived from the cluster's fsid, pool and namespace
        (computed once: the API asks it on every snapshot call)."""
        ioctx = self.ioctx
        assert self._cluster is not None
        where = f"{self._cluster.get_fsid()}/{ioctx.get_pool_name()}/{self._namespace}"
        return "lhpool-" + _base36(hashlib.sha256(where.encode()).digest())[:8]

    def close(self) -> None:
        if self._ioctx is not None:
            self._ioctx.close()
            self._cluster.shutdown()
            self._ioctx = self._cluster = None

    @staticmethod
    def _image_name(disk_id: str) -> str:
        return DISK_PREFIX + checked_id(disk_id)

    @staticmethod
    def _table_key(disk_id: str, snapshot_id: str) -> str:
        return f"{TABLE_PREFIX}{checked_id(disk_id)}.{checked_id(snapshot_id)}"

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """librados/librbd errors as StorageErrors (the specific ones are caught first by
        the callers); OSErrors too (quarantine notes)."""
        rados, rbd = self._rados, self._rbd
        try:
            with translated():
                yield
        except (rbd.NoSpace, rbd.DiskQuotaExceeded) as exc:
            raise NoSpace(str(exc)) from exc
        except (rados.Error, rbd.Error) as exc:  # (two hierarchies: neither derives from
            code = getattr(exc, "errno", None)  # the other, nor from OSError)
            if code == errno.ENOSPC:
                raise NoSpace(str(exc)) from exc
            if code == errno.ESHUTDOWN:  # blocklisted (we stalled past a lease): reconnect
                self.close()
            raise StorageIOError(str(exc)) from exc

    @contextmanager
    def _image(
        self, disk_id: str, snapshot: str | None = None, read_only: bool = True
    ) -> Iterator[Any]:
        """An open handle on the disk (or one of its snapshots); DiskNotFound /
        SnapshotNotFound when it is not there."""
        rbd = self._rbd
        name = self._image_name(disk_id)
        if snapshot is not None:
            checked_id(snapshot)
        with self._translated():
            try:
                image = rbd.Image(self.ioctx, name, snapshot=snapshot, read_only=read_only)
            except rbd.ImageNotFound:
                if snapshot is not None and self.disk_exists(disk_id):
                    raise SnapshotNotFound(f"{disk_id}@{snapshot}") from None
                raise DiskNotFound(disk_id) from None
            try:
                yield image
            finally:
                image.close()

    # -- locks -----------------------------------------------------------------------------

    @contextmanager
    def _locked(self, key: str, busy: StorageError) -> Iterator[None]:
        with self._translated(), self._locks.held(key, busy):
            yield

    @contextmanager
    def _locked_image(self, disk_id: str) -> Iterator[Any]:
        """The disk's lock object, then a writable handle holding the image's exclusive
        lock (DiskBusy if another client holds that: a VM, another tool), with any restore
        a crash interrupted finished first."""
        rbd = self._rbd
        with (
            self.lock_disk(disk_id),
            self._image(disk_id, read_only=False) as image,
            self._translated(),
        ):
            self._acquire_image_lock(disk_id, image)
            try:
                self._finish_interrupted_restore(image)
                yield image
            finally:
                with suppress(rbd.Error):
                    image.lock_release()

    def _acquire_image_lock(self, disk_id: str, image: Any) -> None:
        """The image's exclusive lock, recording which Ceph client of which process took
        it. The caller holds the disk's lock object, so an owner of the image's lock is
        stale when it is the Lightkeeper client recorded as its taker (its lock object was
        broken: it died, or stalled past its lease), or when it no longer watches the image
        (dead: a lock object's break blocklists its client, which ends its watches; a node
        killed after librbd gave it the lock but before it recorded itself is one). A stale
        lock is broken, which blocklists its client, so nothing it had in flight can still
        land. A live owner of another kind (a VM, a tool) makes the disk busy at once
        (librbd would ask its client to hand the lock over, or wait ~30 s for a dead one)."""
        rbd = self._rbd
        owners = [o["owner"] for o in image.lock_get_owners()]
        if owners:
            if self._live_foreign_owner(image, owners[0]):
                raise DiskBusy(f"disk {disk_id} is held by another Ceph client ({owners[0]})")
            image.lock_break(rbd.RBD_LOCK_MODE_EXCLUSIVE, owners[0])
        # (librbd itself takes the lock for the metadata write, a moment before the record
        # lands: the watch rule above covers a process killed in between.)
        mine = self._client_address(image)
        image.metadata_set(HOLDER_KEY, json.dumps({"holder": self._holder, "client": mine}))
        try:
            image.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
        except (rbd.ReadOnlyImage, rbd.ImageBusy):
            raise DiskBusy(f"disk {disk_id} is held by another Ceph client") from None
        owners = [o["owner"] for o in image.lock_get_owners()]
        if owners != [mine]:  # (the owner is a client's address: it must be this one's)
            image.metadata_set(
                HOLDER_KEY, json.dumps({"holder": self._holder, "client": owners[0]})
            )

    def _live_foreign_owner(self, image: Any, owner: str) -> bool:
        """The image's lock `owner` is a live client other than the recorded Lightkeeper
        one: it still watches the image (see _acquire_image_lock)."""
        watching = {str(w["addr"]) for w in image.watchers_list()}
        return owner in watching and owner != self._recorded_client(image)

    def _client_address(self, image: Any) -> str:
        """This process's Ceph client address, as the image's lock owners name clients: its
        own handle's watch on the image is listed with this client's instance id."""
        me = self._connected_cluster().get_instance_id()
        for watcher in image.watchers_list():
            if watcher["id"] == me:
                return str(watcher["addr"])
        raise StorageIOError(f"this client ({me}) does not watch the image it opened")

    def _recorded_client(self, image: Any) -> str | None:
        """The Ceph client that the image's metadata says took its lock for Lightkeeper."""
        try:
            return str(json.loads(image.metadata_get(HOLDER_KEY))["client"])
        except (KeyError, ValueError, TypeError, self._rbd.Error):
            return None

    @contextmanager
    def lock_disk(self, disk_id: str) -> Iterator[None]:
        """The disk's lock object: excludes every other operation of every node. Not the
        image's own exclusive lock, which a running VM's librbd holds: the operations that
        write the image from here (write, snapshots at rest, restore, resize, delete) take
        that themselves, and another client holding it makes them DiskBusy."""
        busy = DiskBusy(f"disk {disk_id} is locked by another operation")
        with self._locked(LOCK_PREFIX + checked_id(disk_id), busy):
            yield

    @contextmanager
    def lock_snapshot(self, disk_id: str, snapshot_id: str) -> Iterator[None]:
        if not self.snapshot_exists(disk_id, snapshot_id):
            raise SnapshotNotFound(f"{disk_id}@{snapshot_id}")
        key = f"{LOCK_PREFIX}{checked_id(disk_id)}.{checked_id(snapshot_id)}"
        with self._locked(
            key, SnapshotBusy(f"snapshot {snapshot_id} is locked by another operation")
        ):
            yield

    # -- disks -----------------------------------------------------------------------------

    def attachment(self, disk_id: str) -> Attachment:
        return rbd_attachment(
            self._pool_name, self._namespace, self._image_name(disk_id), self._conf, self._client
        )

    def create_disk(self, disk_id: str, size_bytes: int, base_image: Path | None = None) -> None:
        rbd = self._rbd
        name = self._image_name(disk_id)
        if size_bytes <= 0:
            raise ValueError(f"disk size must be positive, got {size_bytes}")
        try:
            base_size = base_image.stat().st_size if base_image is not None else 0
        except OSError:
            raise StorageIOError(f"no base image {base_image}") from None
        if base_size > size_bytes:
            raise ValueError(f"base image of {base_size} B does not fit a {size_bytes} B disk")
        with self._translated():
            try:
                if base_image is None:
                    rbd.RBD().create(
                        self.ioctx, name, size_bytes, old_format=False, features=self._features
                    )
                    return
                base = self._base(base_image)
                rbd.RBD().clone(
                    self.ioctx, base, BASE_SNAP, self.ioctx, name, features=self._features
                )
            except rbd.ImageExists:
                raise DiskExists(disk_id) from None
            with self._image(disk_id, read_only=False) as image:
                if image.size() < size_bytes:
                    image.resize(size_bytes)

    @property
    def _features(self) -> int:
        rbd = self._rbd
        return int(
            rbd.RBD_FEATURE_LAYERING
            | rbd.RBD_FEATURE_EXCLUSIVE_LOCK
            | rbd.RBD_FEATURE_OBJECT_MAP
            | rbd.RBD_FEATURE_FAST_DIFF
        )

    def _base(self, base_image: Path) -> str:
        """The protected base image of this version of ``base_image``, imported once."""
        rbd = self._rbd
        stat = base_image.stat()
        version = f"{base_image.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
        name = BASE_PREFIX + hashlib.sha256(version.encode()).hexdigest()[:16]
        if name in rbd.RBD().list(self.ioctx):
            return name
        busy = DiskBusy(f"base image {base_image} is being imported by another process")
        with self._locked(LOCK_PREFIX + name, busy):
            if name in rbd.RBD().list(self.ioctx):
                return name
            tmp = f"{name}.tmp-{uuid.uuid4().hex[:8]}"
            rbd.RBD().create(
                self.ioctx, tmp, stat.st_size, old_format=False, features=self._features
            )
            try:
                with rbd.Image(self.ioctx, tmp) as image, base_image.open("rb") as source:
                    for offset in range(0, stat.st_size, CHUNK):
                        data = source.read(CHUNK)
                        if data.count(0) != len(data):  # (holes stay holes)
                            image.write(data, offset)
                    image.flush()
                    image.create_snap(BASE_SNAP)
                    image.protect_snap(BASE_SNAP)
                rbd.RBD().rename(self.ioctx, tmp, name)
            except BaseException:
                with suppress(rbd.Error):
                    self._remove_image(tmp)
                raise
        return name

    def delete_disk(self, disk_id: str) -> None:
        if not self.disk_exists(disk_id):
            return
        with self._translated():
            with self._locked_image(disk_id) as image:
                for snap in _user_snaps(image):
                    self._drop_snap(image, disk_id, snap["name"])
            self._remove_image(self._image_name(disk_id))

    def _remove_image(self, name: str) -> None:
        rbd = self._rbd
        with rbd.Image(self.ioctx, name) as image:
            for snap in _user_snaps(image):
                if image.is_protected_snap(snap["name"]):
                    image.unprotect_snap(snap["name"])
                image.remove_snap(snap["name"])
        try:
            rbd.RBD().remove(self.ioctx, name)
        except rbd.ImageBusy:
            raise DiskBusy(f"image {name} is open in another Ceph client") from None

    def disk_exists(self, disk_id: str) -> bool:
        rbd = self._rbd
        with self._translated():
            try:
                with rbd.Image(self.ioctx, self._image_name(disk_id), read_only=True):
                    return True
            except rbd.ImageNotFound:
                return False

    def disk_size(self, disk_id: str) -> int:
        with self._image(disk_id) as image:
            return int(image.size())

    def resize_disk(self, disk_id: str, size_bytes: int) -> None:
        with self._locked_image(disk_id) as image:
            current = int(image.size())
            if size_bytes < current:
                raise ValueError(f"cannot shrink {disk_id} from {current} to {size_bytes} bytes")
            if size_bytes > current:
                image.resize(size_bytes)

    def read(self, disk_id: str, offset: int, length: int) -> bytes:
        with self._image(disk_id) as image:
            check_range(int(image.size()), offset, length)
            return bytes(image.read(offset, length)) if length else b""

    def write(self, disk_id: str, offset: int, data: bytes) -> None:
        with self._locked_image(disk_id) as image:
            check_range(int(image.size()), offset, len(data))
            if data:
                image.write(data, offset)
                image.flush()

    def disk_sha256(self, disk_id: str) -> str:
        with self._image(disk_id) as image, self._translated():
            return self._hash(image, PlainSha256(int(image.size())), None, _ignore)

    def disk_checksum(self, disk_id: str) -> str:
        with self._image(disk_id) as image, self._translated():
            return self._hash(image, BlockHasher(int(image.size())), None, _ignore)

    # -- snapshots -------------------------------------------------------------------------

    def create_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> str:
        """``create_snap`` under the disk lock (the image's exclusive lock: no other writer),
        then its table from the parent's and ``diff_iterate``. A crash before the table is
        written leaves a snapshot that snapshots() lists and Apply verifies whole."""
        shown = _Percent(progress)
        shown(0)
        with self._locked_image(disk_id) as image:
            if self._snap_id(image, snapshot_id) is not None:
                raise SnapshotExists(snapshot_id)
            fence()
            with self._translated():
                image.create_snap(snapshot_id)
                try:
                    table = self._table_of(disk_id, image, snapshot_id, shown)
                    fence()
                    self._save_table(disk_id, snapshot_id, table, image)
                    image.metadata_set(BASE_KEY, snapshot_id)
                except BaseException:
                    with suppress(*self._errors):
                        self._drop_snap(image, disk_id, snapshot_id)
                    raise
        shown(100)
        return table.checksum

    def _table_of(
        self, disk_id: str, image: Any, snapshot_id: str, progress: ProgressCallback
    ) -> BlockTable:
        """The new snapshot's table: its parent's with what changed since hashed afresh, or
        every data block when there is no usable parent."""
        with self._image(disk_id, snapshot=snapshot_id) as snap:
            size = int(snap.size())
            parent = self._parent(disk_id, image)
            if parent is None:
                hasher = BlockHasher(size)
                self._hash(snap, hasher, None, progress)
                return BlockTable(size, hasher.digests())
            parent_id, table = parent
            extents: list[tuple[int, int]] = []

            def changed(offset: int, length: int, _exists: bool) -> int:
                extents.append((offset, length))
                return 0

            snap.diff_iterate(0, size, parent_id, changed)
            blocks = _touched_blocks(size, extents, table.size)

            def read(offset: int, view: memoryview) -> None:
                view[:] = snap.read(offset, len(view))

            return inherited_table(size, table, blocks, read, progress, self._on_chunk)

    def _parent(self, disk_id: str, image: Any) -> tuple[str, BlockTable] | None:
        """The disk's base snapshot and its table, if both are there and whole."""
        try:
            parent_id = str(image.metadata_get(BASE_KEY))
        except (KeyError, self._rbd.Error):
            return None
        snap_id = self._snap_id(image, parent_id)
        if snap_id is None:
            return None
        table = self._load_table(disk_id, parent_id, snap_id)
        return None if table is None else (parent_id, table)

    def create_snapshot_live(
        self,
        disk_id: str,
        snapshot_id: str,
        take: Callable[[str], None],
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> str:
        """The VM takes it (QEMU's rbd driver: an RBD snapshot of the image its librbd holds
        the exclusive lock of, after draining its in-flight writes), so only the disk's lock
        object is taken here, not the image's lock; then the table, as for create_snapshot:
        an RBD snapshot is read-only whoever took it, so it is incremental too."""
        shown = _Percent(progress)
        shown(0)
        with self.lock_disk(disk_id), self._image(disk_id) as image:
            if self._snap_id(image, snapshot_id) is not None:
                raise SnapshotExists(snapshot_id)
            fence()
            take(snapshot_id)
            try:
                with self._image(disk_id) as current, self._translated():
                    if self._snap_id(current, snapshot_id) is None:
                        raise StorageIOError(f"the machine took no snapshot {snapshot_id}")
                    table = self._table_of(disk_id, current, snapshot_id, shown)
                    fence()
                    self._save_table(disk_id, snapshot_id, table, current)
                with self._image(disk_id, read_only=False) as writable, self._translated():
                    writable.metadata_set(BASE_KEY, snapshot_id)  # (librbd asks the VM's)
            except BaseException:
                with (
                    suppress(StorageError, *self._errors),
                    self._image(disk_id, read_only=False) as writable,
                ):
                    self._drop_snap(writable, disk_id, snapshot_id)
                raise
        shown(100)
        return table.checksum

    def restore_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        expected_checksum: str,
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> None:
        """Verify (unless its sealed table is the recorded checksum), then roll the image
        back in place behind a redo intent: a crash in the middle is finished later, so the
        disk ends old (fence refused, mismatch) or wholly the snapshot."""
        shown = _Percent(progress)
        shown(0)
        with self._locked_image(disk_id) as image, self.lock_snapshot(disk_id, snapshot_id):
            snap_id = self._snap_id(image, snapshot_id)
            if snap_id is None:
                raise SnapshotNotFound(f"{disk_id}@{snapshot_id}")
            table = self._load_table(disk_id, snapshot_id, snap_id)
            if table is None or table.checksum != expected_checksum.lower():
                self._check_whole(disk_id, snapshot_id, expected_checksum, image, shown.up_to(95))
            fence()
            with self._translated():
                image.metadata_set(RESTORING_KEY, snapshot_id)
                image.rollback_to_snap(snapshot_id)
                image.metadata_set(BASE_KEY, snapshot_id)
                image.metadata_remove(RESTORING_KEY)
        shown(100)

    def _finish_interrupted_restore(self, image: Any) -> None:
        """Caller holds the disk: roll back again onto the snapshot a crash interrupted."""
        try:
            snapshot_id = str(image.metadata_get(RESTORING_KEY))
        except (KeyError, self._rbd.Error):
            return
        with self._translated():
            if self._snap_id(image, snapshot_id) is not None:
                image.rollback_to_snap(snapshot_id)
                image.metadata_set(BASE_KEY, snapshot_id)
            image.metadata_remove(RESTORING_KEY)

    def _check_whole(
        self,
        disk_id: str,
        snapshot_id: str,
        expected: str,
        image: Any,
        progress: ProgressCallback,
        pace: Pace | None = None,
    ) -> None:
        """Read the snapshot whole; a match seals its table again (ChecksumMismatch else)."""
        with self._image(disk_id, snapshot=snapshot_id) as snap, self._translated():
            size = int(snap.size())
            hasher = hasher_for(expected, size)
            actual = self._hash(snap, hasher, pace, progress)
            if actual != expected.lower():
                raise ChecksumMismatch(expected, actual)
            if isinstance(hasher, BlockHasher):
                self._save_table(disk_id, snapshot_id, BlockTable(size, hasher.digests()), image)

    def verify_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        expected_checksum: str,
        progress: ProgressCallback,
        *,
        pace: Pace | None = None,
    ) -> None:
        with self._image(disk_id) as image:
            if self._snap_id(image, snapshot_id) is None:
                raise SnapshotNotFound(f"{disk_id}@{snapshot_id}")
            self._check_whole(disk_id, snapshot_id, expected_checksum, image, progress, pace)

    def delete_snapshot(
        self, disk_id: str, snapshot_id: str, *, fence: Fence | None = None
    ) -> None:
        """Removing an RBD snapshot needs no hold on the image itself (librbd has the holder
        of its exclusive lock, a running VM say, remove it): a fenced delete takes the disk's
        lock object, then the snapshot's; an unfenced one the snapshot's only."""
        if not self.snapshot_exists(disk_id, snapshot_id):
            return
        with ExitStack() as held:
            if fence is not None:
                held.enter_context(self.lock_disk(disk_id))
            held.enter_context(self.lock_snapshot(disk_id, snapshot_id))
            image = held.enter_context(self._image(disk_id, read_only=False))
            if fence is not None:
                fence()
            with self._translated():
                self._drop_snap(image, disk_id, snapshot_id)

    def held_elsewhere(self, disk_id: str) -> bool:
        """A live client holds the image's exclusive lock, and the image's metadata does not
        name it as the Lightkeeper client that took it last (a stale lock is broken anyway)."""
        # (librbd lists lock owners on a writable handle only; opening one takes no lock)
        with self._image(disk_id, read_only=False) as image, self._translated():
            owners = [o["owner"] for o in image.lock_get_owners()]
            return bool(owners) and self._live_foreign_owner(image, owners[0])

    def fence_disk(self, disk_id: str) -> None:
        """Break the image's exclusive lock if any client holds it (a VM that outlived its
        node, say), which blocklists that client on the OSDs: it can write nothing more."""
        rbd = self._rbd
        with (
            self.lock_disk(disk_id),
            self._image(disk_id, read_only=False) as image,
            self._translated(),
        ):
            for owner in [o["owner"] for o in image.lock_get_owners()]:
                logger.warning("disk %s: fencing off Ceph client %s", disk_id, owner)
                image.lock_break(rbd.RBD_LOCK_MODE_EXCLUSIVE, owner)

    def _drop_snap(self, image: Any, disk_id: str, snapshot_id: str) -> None:
        """The snapshot, then its table: a crash in between leaves an orphan table, which
        cleanup_temporary removes."""
        rbd = self._rbd
        try:
            if image.is_protected_snap(snapshot_id):
                image.unprotect_snap(snapshot_id)
            image.remove_snap(snapshot_id)
        except rbd.ImageNotFound:
            pass
        with suppress(self._rados.ObjectNotFound):
            self.ioctx.remove_object(self._table_key(disk_id, snapshot_id))

    def snapshot_exists(self, disk_id: str, snapshot_id: str) -> bool:
        try:
            with self._image(disk_id) as image:
                return self._snap_id(image, snapshot_id) is not None
        except DiskNotFound:
            return False

    def _snap_id(self, image: Any, snapshot_id: str) -> int | None:
        checked_id(snapshot_id)
        with self._translated():
            for snap in image.list_snaps():
                if snap["name"] == snapshot_id:
                    return int(snap["id"])
        return None

    def snapshots(self) -> list[SnapshotRef]:
        rbd = self._rbd
        found = []
        with self._translated():
            for name in rbd.RBD().list(self.ioctx):
                if not name.startswith(DISK_PREFIX):
                    continue
                disk_id = name[len(DISK_PREFIX) :]
                with (
                    suppress(rbd.ImageNotFound),
                    rbd.Image(self.ioctx, name, read_only=True) as image,
                ):
                    found += [
                        SnapshotRef(disk_id, s["name"])
                        for s in _user_snaps(image)
                        if not s["name"].startswith(QUARANTINE_PREFIX)
                    ]
        return sorted(found)

    def snapshot_sha256(self, disk_id: str, snapshot_id: str) -> str:
        with self._image(disk_id, snapshot=snapshot_id) as snap, self._translated():
            return self._hash(snap, PlainSha256(int(snap.size())), None, _ignore)

    def snapshot_checksum(self, disk_id: str, snapshot_id: str) -> str:
        with self._image(disk_id, snapshot=snapshot_id) as snap, self._translated():
            return self._hash(snap, BlockHasher(int(snap.size())), None, _ignore)

    # -- tables ----------------------------------------------------------------------------

    def _save_table(self, disk_id: str, snapshot_id: str, table: BlockTable, image: Any) -> None:
        snap_id = self._snap_id(image, snapshot_id)
        seal = json.dumps({"snap_id": snap_id}).encode()
        self._on_table()
        with self._translated():
            self.ioctx.write_full(
                self._table_key(disk_id, snapshot_id), table.resealed(seal).encode()
            )

    def _load_table(self, disk_id: str, snapshot_id: str, snap_id: int) -> BlockTable | None:
        """The snapshot's table if it is whole and sealed with this snapshot's RBD id."""
        rados = self._rados
        key = self._table_key(disk_id, snapshot_id)
        with self._translated():
            try:
                size, _ = self.ioctx.stat(key)
                table = BlockTable.decode(bytes(self.ioctx.read(key, size)))
            except (rados.ObjectNotFound, TableDamaged):
                return None
        try:
            sealed = json.loads(table.seal).get("snap_id")
        except (ValueError, AttributeError):
            return None
        return table if sealed == snap_id else None

    # -- reading ---------------------------------------------------------------------------

    def _hash(
        self, image: Any, hasher: ChecksumHasher, pace: Pace | None, progress: ProgressCallback
    ) -> str:
        """Feed every allocated extent of ``image`` (holes are zeros) to ``hasher``."""
        size = int(image.size())
        extents: list[tuple[int, int]] = []

        def found(offset: int, length: int, exists: bool) -> int:
            if exists:
                extents.append((offset, length))
            return 0

        image.diff_iterate(0, size, None, found)
        total = max(1, sum(length for _, length in extents))
        done = 0
        for offset, length in _merged(extents):
            for start in range(offset, offset + length, CHUNK):
                step = min(CHUNK, offset + length - start)
                hasher.update_range(start, image.read(start, step))
                self._on_chunk()
                done += step
                if pace is not None:
                    pace(step)
                progress(min(99, done * 100 // total))
        return hasher.hexdigest()

    # -- housekeeping ----------------------------------------------------------------------

    def cleanup_temporary(self) -> int:
        """Abandoned base imports, interrupted restores, tables without a snapshot."""
        rbd = self._rbd
        removed = 0
        with self._translated():
            names = list(rbd.RBD().list(self.ioctx))
            for name in names:
                if name.startswith(BASE_PREFIX) and ".tmp-" in name:
                    base = name.split(".tmp-")[0]
                    with suppress(DiskBusy), self._locked(LOCK_PREFIX + base, DiskBusy(base)):
                        self._remove_image(name)
                        removed += 1
            disks = {n[len(DISK_PREFIX) :] for n in names if n.startswith(DISK_PREFIX)}
            for disk_id in disks:
                with suppress(StorageError), self._image(disk_id) as image:
                    try:
                        image.metadata_get(RESTORING_KEY)
                    except KeyError:
                        continue
                with suppress(StorageError), self._locked_image(disk_id):
                    removed += 1  # (_locked_image finished it)
            live = {f"{TABLE_PREFIX}{ref.disk_id}.{ref.snapshot_id}" for ref in self.snapshots()}
            for obj in self.ioctx.list_objects():
                if obj.key.startswith(TABLE_PREFIX) and obj.key not in live:
                    with suppress(self._rados.ObjectNotFound):
                        self.ioctx.remove_object(obj.key)
                        removed += 1
        return removed

    def quarantine_snapshot(self, disk_id: str, snapshot_id: str) -> Path:
        """Renamed ``lkq.<id>`` inside its image (intact, out of snapshots()); a note in the
        data dir's ``quarantine/snapshots/`` says where it went."""
        with (
            self.lock_snapshot(disk_id, snapshot_id),
            self._image(disk_id, read_only=False) as image,
            self._translated(),
        ):
            hidden = QUARANTINE_PREFIX + snapshot_id
            image.rename_snap(snapshot_id, hidden)
            with suppress(self._rados.ObjectNotFound):
                self.ioctx.remove_object(self._table_key(disk_id, snapshot_id))
            note = self._root / "tmp" / f"{snapshot_id}.rbd.json"
            note.parent.mkdir(mode=0o700, exist_ok=True)
            where = {"pool": self._pool_name, "namespace": self._namespace}
            where |= {"image": self._image_name(disk_id), "snapshot": hidden}
            replace_file(note, json.dumps(where).encode())
            return quarantine_file(note, self._root, "snapshots")


def _user_snaps(image: Any) -> list[dict[str, Any]]:
    """The image's own snapshots (not those RBD keeps in its trash, group or mirror
    namespaces, which have names of its own)."""
    return [s for s in image.list_snaps() if s.get("namespace", USER_SNAPSHOT) == USER_SNAPSHOT]


class _Percent:
    """Whole percents, non-decreasing, each at most once."""

    def __init__(self, progress: ProgressCallback) -> None:
        self._progress = progress
        self._last = -1

    def __call__(self, percent: int) -> None:
        if percent > self._last:
            self._last = percent
            self._progress(percent)

    def up_to(self, ceiling: int) -> ProgressCallback:
        return lambda percent: self(percent * ceiling // 100)


def _ignore(_: int) -> None:
    pass


def _merged(extents: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Sorted extents with adjacent ones joined (diff_iterate reports per object)."""
    start = end = -1
    for offset, length in sorted(extents):
        if offset <= end:
            end = max(end, offset + length)
            continue
        if end > start:
            yield start, end - start
        start, end = offset, offset + length
    if end > start:
        yield start, end - start


def _touched_blocks(size: int, extents: list[tuple[int, int]], parent_size: int) -> list[int]:
    """The blocks an extent of the diff touches, and every block past the parent's end."""
    blocks: set[int] = set()
    for offset, length in extents:
        blocks.update(range(offset // BLOCK_SIZE, (offset + length - 1) // BLOCK_SIZE + 1))
    first_new = parent_size // BLOCK_SIZE
    blocks.update(range(first_new, block_count(size)))
    return sorted(b for b in blocks if b < block_count(size))


def _base36(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = []
    while number:
        number, rest = divmod(number, 36)
        out.append(digits[rest])
    return "".join(out) or "0"
