"""qcow2 driver: each disk is one qcow2 image and its snapshots are internal snapshots in it.

Internal snapshots make create and apply cost proportional to allocated metadata, not to
the virtual size, and let a running QEMU snapshot the disk itself (capability live_snapshot).
All image access goes through ``qemu-img``/``qemu-io``: qemu owns the format and its
locking, so this module never parses qcow2 itself. Layout under `root`:

* ``disks/<id>.qcow2`` and ``disks/<id>.lock`` (our flock, for our own operations);
* ``disks/<id>.restoring`` — redo record of an apply in flight (see restore_snapshot);
* ``disks/<disk>.snapshots/<snap>.size`` — the record of a snapshot: its virtual size,
  which qemu-img 7.2 does not report (an image grown later no longer has it), published
  atomically before the tag is made and removed after the tag, under the disk lock;
* ``disks/<disk>.snapshots/<snap>.blocks`` — the snapshot's block table (blocks.py), sealed
  with the disk's *trust epoch* and holding the snapshot's cluster map;
* ``disks/<disk>.seal`` — the image file's identity (inode, size, ctime, mtime) after the
  driver's last own change to it, and the trust epoch;
* ``disks/<disk>.base`` — the snapshot the disk's content was last taken as or rolled back to;
* ``tmp/`` — raw exports and write buffers; temps everywhere are ``*.tmp-<hex>``.

Integrity at the speed of the format: qemu never writes a cluster a snapshot still uses (a
guest write copies it first), so a snapshot's data can change only by a writer outside
qemu's format rules. Every change the driver makes checks first that the image is as its
last own change left it; if not, something else wrote it (a running guest, or anything at
all), and the trust epoch moves on: every snapshot sealed in an older epoch is verified whole
by its next Apply (and sealed again). A new
snapshot's table reuses its parent's digest for every block whose clusters the two share
(``qemu-img map``: same host offsets) and hashes the rest straight from the image file.

Snapshot ids are the internal snapshot tags, so the same id may be a snapshot of two disks.
A snapshot of a disk exists when both its record and its tag do; snapshots() lists the
records, so a tag whose record was quarantined is out of sight and a record whose tag is
gone (crash, QMP) is still reported for orphan cleanup. Deleting a disk deletes its
snapshots' data (the tags) and leaves their records to delete_snapshot.

Data dirs of older versions kept ``snapshots/<id>.ref`` markers (``{"disk", "size"}``):
the driver turns each into its record at start-up, the record published before the marker
is unlinked, so a crash in between only repeats the step (idempotent).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from lightkeeper.domain.attachment import Attachment, file_attachment

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
from .blocks import (
    UNKNOWN,
    BlockTable,
    Segment,
    changed_blocks,
    drop_orphan_tables,
    inherited_table,
    read_segments,
    read_table,
    write_table,
    zero_table,
)
from .checksum import BLOCK_SIZE, BlockHasher, ChecksumHasher, PlainSha256, hasher_for
from .copy import hash_sparse, pwrite_all
from .files import (
    TMP_MARK,
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
)

logger = logging.getLogger("lightkeeper.storage")

SECTOR = 512
"""qemu sizes images (and raw offset windows) in whole sectors."""

_LOCK_ERROR = re.compile(r'Failed to get (?:shared )?"[^"]+" lock')
_NO_SPACE = ("No space left on device", "Disk quota exceeded")
_NO_FILE = "No such file or directory"
_NO_SNAPSHOT = ("Can't find snapshot", "snapshot not found")
_PROGRESS = re.compile(rb"\((\d+)(?:\.\d+)?/100%\)")
_ENV = {**os.environ, "LC_ALL": "C"}  # qemu's messages embed strerror(): keep them English


def _failure(output: str, missing: StorageError | None) -> StorageError:
    """Map a failed qemu command's message to the protocol's errors."""
    first = next((line for line in output.splitlines() if line.strip()), "qemu tool failed")
    if _LOCK_ERROR.search(output):
        return DiskBusy(f"image in use by another process: {first}")
    if any(text in output for text in _NO_SPACE):
        return NoSpace(first)
    if missing is not None and (_NO_FILE in output or any(text in output for text in _NO_SNAPSHOT)):
        return missing
    return StorageIOError(first)


def _run(args: Sequence[str], missing: StorageError | None = None, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(
            list(args), capture_output=True, text=True, env=_ENV, cwd=cwd, check=False
        )
    except OSError as exc:  # qemu-utils not installed
        raise StorageIOError(f"cannot run {args[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise _failure(proc.stderr + proc.stdout, missing)
    return proc.stdout


def _run_with_progress(
    args: Sequence[str], progress: ProgressCallback, missing: StorageError | None
) -> None:
    """Run a ``-p`` qemu-img command, relaying its ``(NN.NN/100%)`` updates as they come."""
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=stderr, env=_ENV)
        except OSError as exc:
            raise StorageIOError(f"cannot run {args[0]}: {exc}") from exc
        assert proc.stdout is not None
        with proc:
            pending = b""
            while chunk := os.read(proc.stdout.fileno(), 4096):
                *done, pending = (pending + chunk).replace(b"\r", b"\n").split(b"\n")
                for match in map(_PROGRESS.search, done):
                    if match:
                        progress(int(match.group(1)))
        if proc.returncode != 0:
            stderr.seek(0)
            raise _failure(stderr.read().decode(errors="replace"), missing)


class _Percent:
    """One non-decreasing 0..100 report stitched from stages that each count 0..100."""

    def __init__(self, callback: ProgressCallback) -> None:
        self._callback = callback
        self._last = -1

    def emit(self, percent: int) -> None:
        if percent > self._last:
            self._last = percent
            self._callback(percent)

    def stage(self, low: int, high: int) -> ProgressCallback:
        return lambda percent: self.emit(low + (high - low) * min(percent, 100) // 100)


class Qcow2Driver:
    """StorageDriver over qcow2 images with internal snapshots, live ones included."""

    capabilities = Capabilities(live_snapshot=True, converts_images=True, vm_holds_snapshots=True)

    def __init__(
        self,
        root: Path,
        *,
        on_chunk: ChunkHook = no_chunk_hook,
        on_table: ChunkHook = no_chunk_hook,
    ) -> None:
        """`on_chunk` runs after every chunk an export hashes, `on_table` before a block
        table is written (fault injection, tests only)."""
        self._disks = root / "disks"
        self._snapshots = root / "snapshots"
        self._tmp = root / "tmp"
        self._on_chunk = on_chunk
        self._on_table = on_table
        for directory in (root, self._disks, self._snapshots, self._tmp):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.pool = pool_id(root)
        self._migrate_markers()

    # -- paths -------------------------------------------------------------------------

    def attachment(self, disk_id: str) -> Attachment:
        return file_attachment(self.disk_path(disk_id), "qcow2")

    def disk_path(self, disk_id: str) -> Path:
        """The image file (file-backed drivers only: tests and benchmarks look inside)."""
        return self._disks / f"{checked_id(disk_id)}.qcow2"

    def _lock_path(self, disk_id: str) -> Path:
        return self._disks / f"{checked_id(disk_id)}.lock"

    def _intent_path(self, disk_id: str) -> Path:
        return self._disks / f"{checked_id(disk_id)}.restoring"

    def _record_path(self, disk_id: str, snapshot_id: str) -> Path:
        """Also rejects all-digit ids: qemu looks a tag up as a numeric snapshot id first."""
        if checked_id(snapshot_id).isdigit():
            raise ValueError(f"snapshot id {snapshot_id!r} would be taken for a qemu snapshot id")
        return self._disks / f"{checked_id(disk_id)}.snapshots" / f"{snapshot_id}.size"

    @contextmanager
    def _temp(self, directory: Path, name: str) -> Iterator[tuple[Path, int]]:
        """A private, flocked (so cleanup_temporary skips it) temp file, removed on exit."""
        path = directory / f"{name}{TMP_MARK}{secrets.token_hex(6)}"
        with translated():
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield path, fd
        finally:
            unlink_quiet(path)
            os.close(fd)

    # -- locking -----------------------------------------------------------------------

    @contextmanager
    def lock_disk(self, disk_id: str) -> Iterator[None]:
        """Our flock on ``<disk>.lock`` (excludes our own concurrent operations). A foreign
        holder of the image, such as a running QEMU, is reported as DiskBusy by the qemu
        command that meets its lock instead: qemu's OFD image locks are its own business."""
        path = self._lock_path(disk_id)
        with translated():
            fd = None
            while fd is None:
                fd = flock_current(path, disk_id)
        try:
            yield
        finally:
            os.close(fd)

    @contextmanager
    def lock_snapshot(self, disk_id: str, snapshot_id: str) -> Iterator[None]:
        """flock the record: restore and delete take it, so neither pulls a snapshot from
        under the other."""
        try:
            fd = os.open(self._record_path(disk_id, snapshot_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise _missing(disk_id, snapshot_id) from None
        except OSError as exc:
            raise StorageIOError(str(exc)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SnapshotBusy(f"snapshot {snapshot_id} is locked by another operation") from None
        try:
            yield
        finally:
            os.close(fd)

    # -- qemu helpers --------------------------------------------------------------------

    def _info(self, disk_id: str) -> dict[str, Any]:
        """Image metadata, read with force-share: header fields are safe to read under a VM."""
        out = _run(
            [
                "qemu-img",
                "info",
                "-U",
                "--output=json",
                "-f",
                "qcow2",
                str(self.disk_path(disk_id)),
            ],
            DiskNotFound(disk_id),
        )
        info: dict[str, Any] = json.loads(out)
        return info

    def _tags(self, disk_id: str) -> list[str]:
        return [str(s["name"]) for s in self._info(disk_id).get("snapshots", [])]

    def _export(
        self,
        source: Sequence[str],
        hasher: Callable[[int], ChecksumHasher],
        size: int | None,
        progress: ProgressCallback | None,
        missing: StorageError,
        pace: Pace | None = None,
    ) -> ChecksumHasher:
        """Convert `source` into a sparse raw temp file and hash it.

        ``qemu-img convert`` walks block status, so unallocated ranges cost neither reading
        nor writing, and hash_sparse skips the holes it leaves: the total cost follows the
        allocated data. The hash covers the first `size` bytes (default: all of them).
        """
        percent = _Percent(progress or (lambda _: None))
        with self._temp(self._tmp, "export.raw") as (path, fd):
            # convert (re)creates the file in place: same inode, so mode and flock survive.
            _run_with_progress(
                ["qemu-img", "convert", "-p", *source, "-O", "raw", str(path)],
                percent.stage(0, 50),
                missing,
            )
            with translated():
                total = os.fstat(fd).st_size if size is None else size
                result = hasher(total)
                hash_sparse(fd, total, result, percent.stage(50, 100), self._on_chunk, pace)
        return result

    def _snapshot_source(self, disk_id: str, snapshot_id: str, force_share: bool) -> list[str]:
        share = ["-U"] if force_share else []
        path = str(self.disk_path(disk_id))
        return [*share, "-f", "qcow2", "-l", f"snapshot.name={snapshot_id}", path]

    def _snapshot_hash(
        self,
        disk_id: str,
        snapshot_id: str,
        hasher: Callable[[int], ChecksumHasher],
        progress: ProgressCallback | None = None,
        force_share: bool = True,
        pace: Pace | None = None,
    ) -> ChecksumHasher:
        """Hash a stored snapshot. Force-share is safe: a snapshot's clusters are
        copy-on-write (refcount >= 2) and its table is swapped in by one header update,
        so a VM writing the image never changes what we read."""
        size = self._read_record(disk_id, snapshot_id)
        if snapshot_id not in self._tags(disk_id):
            raise _missing(disk_id, snapshot_id)
        source = self._snapshot_source(disk_id, snapshot_id, force_share)
        missing = _missing(disk_id, snapshot_id)
        return self._export(source, hasher, size, progress, missing, pace)

    def _write_record(self, disk_id: str, snapshot_id: str, size: int) -> None:
        path = self._record_path(disk_id, snapshot_id)
        with translated():
            if not path.parent.is_dir():
                path.parent.mkdir(mode=0o700, exist_ok=True)
                fsync_dir(self._disks)
            replace_file(path, str(size).encode())

    def _read_record(self, disk_id: str, snapshot_id: str) -> int:
        try:
            return int(self._record_path(disk_id, snapshot_id).read_bytes())
        except FileNotFoundError:
            raise _missing(disk_id, snapshot_id) from None
        except OSError as exc:
            raise StorageIOError(str(exc)) from exc
        except ValueError as exc:
            raise StorageIOError(f"unreadable record of snapshot {snapshot_id}: {exc}") from exc

    def _drop_record(self, disk_id: str, snapshot_id: str) -> None:
        path = self._record_path(disk_id, snapshot_id)
        with translated():
            unlink_quiet(path)
            unlink_quiet(self._table_path(disk_id, snapshot_id))
            if path.parent.is_dir():
                fsync_dir(path.parent)

    # -- block tables and the trust epoch ------------------------------------------------

    def _table_path(self, disk_id: str, snapshot_id: str) -> Path:
        return self._record_path(disk_id, snapshot_id).with_suffix(".blocks")

    def _seal_path(self, disk_id: str) -> Path:
        return self._disks / f"{checked_id(disk_id)}.seal"

    def _base_path(self, disk_id: str) -> Path:
        return self._disks / f"{checked_id(disk_id)}.base"

    def _image_identity(self, disk_id: str) -> str:
        try:
            return identity(self.disk_path(disk_id).stat())
        except FileNotFoundError:
            raise DiskNotFound(disk_id) from None

    def _seal_state(self, disk_id: str) -> tuple[int, str] | None:
        """(epoch, image identity after the driver's last own change), None if unknown."""
        try:
            state = json.loads(self._seal_path(disk_id).read_bytes())
            return int(state["epoch"]), str(state["image"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _write_seal(self, disk_id: str, epoch: int) -> None:
        state = {"epoch": epoch, "image": self._image_identity(disk_id)}
        with translated():
            replace_file(self._seal_path(disk_id), json.dumps(state).encode())

    def _current_epoch(self, disk_id: str) -> int:
        """The trust epoch, moved on (and recorded) if the image changed since the driver's
        last own change: someone else wrote it. Caller holds the disk lock."""
        state = self._seal_state(disk_id)
        if state is None:
            self._write_seal(disk_id, 1)  # no history: nothing sealed before counts
            return 1
        epoch, image = state
        if image != self._image_identity(disk_id):
            epoch += 1
            self._write_seal(disk_id, epoch)
        return epoch

    @contextmanager
    def _own_change(self, disk_id: str) -> Iterator[int]:
        """Around a change the driver makes to the image (caller holds the disk lock):
        yields the epoch, then records the image as this change left it."""
        epoch = self._current_epoch(disk_id)
        try:
            yield epoch
        finally:
            if self.disk_exists(disk_id):
                self._write_seal(disk_id, epoch)

    def _save_table(
        self,
        disk_id: str,
        snapshot_id: str,
        table: BlockTable,
        epoch: int,
        cluster_map: list[Segment] | None,
    ) -> None:
        seal = json.dumps({"epoch": epoch, "map": cluster_map}).encode()
        self._on_table()
        with translated():
            write_table(self._table_path(disk_id, snapshot_id), table.resealed(seal))

    def _load_table(
        self, disk_id: str, snapshot_id: str, size: int, epoch: int
    ) -> BlockTable | None:
        """The snapshot's table if it is whole and sealed in `epoch`."""
        table = read_table(self._table_path(disk_id, snapshot_id), size)
        if table is None or _decode_seal(table.seal)[0] != epoch:
            return None
        return table

    def _set_base(self, disk_id: str, snapshot_id: str) -> None:
        with translated():
            replace_file(self._base_path(disk_id), snapshot_id.encode())

    def _parent(self, disk_id: str, size: int) -> tuple[BlockTable, list[Segment]]:
        """The base snapshot's table and cluster map; else the table of an empty disk
        (everything with data is hashed, straight from the image). Any epoch will do: qemu
        never rewrites a cluster a snapshot uses, so a table records what qemu wrote there;
        a cluster changed behind qemu's back is corruption, which Apply and the scrubber
        find in the snapshots that share it."""
        with suppress(FileNotFoundError, ValueError, StorageError):
            snapshot_id = self._base_path(disk_id).read_text().strip()
            parent_size = self._read_record(disk_id, snapshot_id)
            table = read_table(self._table_path(disk_id, snapshot_id), parent_size)
            cluster_map = _decode_seal(table.seal)[1] if table is not None else None
            if table is not None and cluster_map is not None:
                return table, cluster_map
        return zero_table(size), []

    def _cluster_map(self, disk_id: str) -> list[Segment]:
        """Where the active image's bytes live: host offsets of data, None for zeros,
        UNKNOWN for data qemu cannot place in the file (compressed clusters)."""
        out = _run(
            ["qemu-img", "map", "--output=json", "-f", "qcow2", str(self.disk_path(disk_id))],
            DiskNotFound(disk_id),
        )
        segments: list[Segment] = []
        for entry in json.loads(out):
            start, length = int(entry["start"]), int(entry["length"])
            if entry.get("zero") or not entry.get("data"):
                place: int | None = None
            else:
                place = int(entry["offset"]) if "offset" in entry else UNKNOWN
            if segments and segments[-1][2] is None and place is None:
                segments[-1] = (segments[-1][0], segments[-1][1] + length, None)
            else:
                segments.append((start, length, place))
        return segments

    def _table_of_active(
        self, disk_id: str, size: int, progress: ProgressCallback
    ) -> tuple[BlockTable, list[Segment]] | None:
        """The table of the image's current content (a snapshot just taken offline): its
        parent's digests plus the blocks whose clusters differ, read from the image file.
        None when a changed block lives where the file cannot be read directly."""
        parent, parent_map = self._parent(disk_id, size)
        cluster_map = self._cluster_map(disk_id)
        changed = changed_blocks(size, cluster_map, parent_map, parent.size)
        unplaced = [(start, length) for start, length, place in cluster_map if place == UNKNOWN]
        if any(_overlaps(start, length, changed) for start, length in unplaced):
            return None
        with (
            translated(),
            opened(self.disk_path(disk_id), os.O_RDONLY, DiskNotFound(disk_id)) as fd,
        ):
            reader = read_segments(fd, cluster_map)
            table = inherited_table(size, parent, changed, reader, progress, self._on_chunk)
        return table, cluster_map

    def _migrate_markers(self) -> None:
        """Turn the ``snapshots/<id>.ref`` markers of older versions into records (see the
        module docstring); a marker of a busy disk waits for the next start."""
        for marker in self._snapshots.glob("*.ref"):
            try:
                old = json.loads(marker.read_bytes())
                disk_id, size = checked_id(old["disk"]), int(old["size"])
            except FileNotFoundError:
                continue  # migrated meanwhile by another process starting
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.warning("snapshot marker %s left in place: %s", marker, exc)
                continue
            with suppress(DiskBusy), self.lock_disk(disk_id):
                if marker.exists():
                    self._write_record(disk_id, marker.stem, size)
                    with translated():
                        unlink_quiet(marker)
                        fsync_dir(self._snapshots)

    def _drop_tag(self, disk_id: str, snapshot_id: str) -> None:
        """Delete every internal snapshot named `snapshot_id` (qemu allows duplicate names)."""
        path = str(self.disk_path(disk_id))
        with self._own_change(disk_id):
            while snapshot_id in self._tags(disk_id):
                _run(["qemu-img", "snapshot", "-q", "-d", snapshot_id, path])

    def _abandon(self, disk_id: str, snapshot_id: str) -> None:
        """Best-effort undo of a failed create; what stays (e.g. the image is held by a VM)
        keeps its record, so snapshots() reports it for orphan cleanup."""
        with suppress(StorageError):
            if self.disk_exists(disk_id):
                self._drop_tag(disk_id, snapshot_id)
            self._drop_record(disk_id, snapshot_id)

    def _finish_interrupted_restore(self, disk_id: str) -> bool:
        """Redo an apply that a crash interrupted (caller holds the disk lock).

        ``snapshot -a`` is not atomic as a whole (see restore_snapshot), so a crash can
        leave flag/refcount inconsistencies; ``check -r all`` repairs them and re-applying
        the already verified snapshot is idempotent, so the disk ends as the caller asked.
        """
        intent = self._intent_path(disk_id)
        try:
            snapshot_id = intent.read_text().strip()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageIOError(str(exc)) from exc
        path = str(self.disk_path(disk_id))
        if self.disk_exists(disk_id):
            with self._own_change(disk_id):
                # check exits non-zero when it found problems even if it fixed them; an
                # image it could not fix makes the apply below fail loudly instead.
                with suppress(StorageIOError):
                    _run(["qemu-img", "check", "-q", "-r", "all", "-f", "qcow2", path])
                if snapshot_id in self._tags(disk_id):
                    _run(["qemu-img", "snapshot", "-q", "-a", snapshot_id, path])
        with translated():
            unlink_quiet(intent)
            fsync_dir(self._disks)
        return True

    # -- disks -------------------------------------------------------------------------

    def create_disk(self, disk_id: str, size_bytes: int, base_image: Path | None = None) -> None:
        """Built as a temp image and linked into place, so a crash never leaves half a disk."""
        path = self.disk_path(disk_id)
        _check_size(size_bytes)
        with self.lock_disk(disk_id):
            if path.exists():
                raise DiskExists(disk_id)
            with self._temp(self._disks, path.name) as (tmp, fd):
                if base_image is None:
                    _run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp), str(size_bytes)])
                else:
                    self._convert_base(base_image, tmp, size_bytes)
                with translated():
                    os.fsync(fd)
                    try:
                        os.link(tmp, path)
                    except FileExistsError:
                        raise DiskExists(disk_id) from None
                    unlink_quiet(self._base_path(disk_id))  # of an earlier disk of this id
                    fsync_dir(self._disks)
            self._write_seal(disk_id, (self._seal_state(disk_id) or (0, ""))[0] + 1)

    @staticmethod
    def _convert_base(base_image: Path, tmp: Path, size_bytes: int) -> None:
        missing = StorageIOError(f"no base image {base_image}")
        info = json.loads(_run(["qemu-img", "info", "--output=json", str(base_image)], missing))
        if int(info["virtual-size"]) > size_bytes:
            raise ValueError(f"base image ({info['virtual-size']} B) larger than disk")
        fmt = str(info["format"])
        _run(["qemu-img", "convert", "-f", fmt, "-O", "qcow2", str(base_image), str(tmp)], missing)
        _run(["qemu-img", "resize", "-q", "-f", "qcow2", str(tmp), str(size_bytes)])

    def delete_disk(self, disk_id: str) -> None:
        """Takes the lock so a disk is never deleted under a running operation (DiskBusy)."""
        with self.lock_disk(disk_id), translated():
            for path in (
                self.disk_path(disk_id),
                self._intent_path(disk_id),
                self._base_path(disk_id),
                self._seal_path(disk_id),
            ):
                unlink_quiet(path)
            unlink_quiet(self._lock_path(disk_id))  # lock_disk re-checks the inode
            fsync_dir(self._disks)

    def disk_exists(self, disk_id: str) -> bool:
        return self.disk_path(disk_id).is_file()

    def disk_size(self, disk_id: str) -> int:
        return int(self._info(disk_id)["virtual-size"])

    def resize_disk(self, disk_id: str, size_bytes: int) -> None:
        _check_size(size_bytes)
        with self.lock_disk(disk_id):
            self._finish_interrupted_restore(disk_id)
            current = self.disk_size(disk_id)
            if size_bytes < current:
                raise ValueError(f"cannot shrink disk {disk_id} from {current} to {size_bytes}")
            if size_bytes > current:
                path = str(self.disk_path(disk_id))
                with self._own_change(disk_id):
                    _run(["qemu-img", "resize", "-q", "-f", "qcow2", path, str(size_bytes)])

    def read(self, disk_id: str, offset: int, length: int) -> bytes:
        """Exports the sector-aligned window through qemu's raw offset/size filter."""
        size = self.disk_size(disk_id)
        check_range(size, offset, length)
        if length == 0:
            return b""
        start = offset - offset % SECTOR
        end = min(-(-(offset + length) // SECTOR) * SECTOR, size)
        window = {
            "driver": "raw",
            "offset": start,
            "size": end - start,
            "file": {
                "driver": "qcow2",
                "file": {"driver": "file", "filename": str(self.disk_path(disk_id))},
            },
        }
        with self._temp(self._tmp, "read.raw") as (path, fd):
            _run(
                ["qemu-img", "convert", "json:" + json.dumps(window), "-O", "raw", str(path)],
                DiskNotFound(disk_id),
            )
            with translated():
                return os.pread(fd, length, offset - start)

    def write(self, disk_id: str, offset: int, data: bytes) -> None:
        """qemu-io writes from a staged file; its flush makes the write durable."""
        with self.lock_disk(disk_id):
            self._finish_interrupted_restore(disk_id)
            check_range(self.disk_size(disk_id), offset, len(data))
            if not data:
                return
            with self._temp(self._tmp, "write") as (path, fd):
                with translated():
                    pwrite_all(fd, data, 0)
                # qemu-io splits commands on spaces: name the buffer relative to cwd.
                command = f"write -q -s {path.name} {offset} {len(data)}"
                image = str(self.disk_path(disk_id))
                with self._own_change(disk_id):
                    _run(
                        ["qemu-io", "-f", "qcow2", "-c", command, "-c", "flush", image],
                        DiskNotFound(disk_id),
                        cwd=self._tmp,
                    )

    def disk_sha256(self, disk_id: str) -> str:
        source = ["-f", "qcow2", str(self.disk_path(disk_id))]
        return self._export(source, PlainSha256, None, None, DiskNotFound(disk_id)).hexdigest()

    def disk_checksum(self, disk_id: str) -> str:
        source = ["-f", "qcow2", str(self.disk_path(disk_id))]
        return self._export(source, BlockHasher, None, None, DiskNotFound(disk_id)).hexdigest()

    # -- snapshots ---------------------------------------------------------------------

    def create_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> str:
        """Offline ``qemu-img snapshot -c`` under the disk lock, then its block table: the
        image still is the snapshot, so its cluster map is the snapshot's, and only blocks
        whose clusters the parent does not share are hashed (module docstring).

        The record is written first, so a crash at any point leaves something
        snapshots() reports (and delete_snapshot removes) rather than a hidden tag. A
        leftover tag of an interrupted attempt, which has no record, is replaced. A refused
        ``fence`` abandons the snapshot like any other failure. A crash before the table is
        saved leaves a snapshot that Apply verifies whole.
        """
        percent = _Percent(progress)
        percent.emit(0)
        with self.lock_disk(disk_id):
            self._finish_interrupted_restore(disk_id)
            size = self._prepare(disk_id, snapshot_id)
            if snapshot_id in self._tags(disk_id):
                self._drop_tag(disk_id, snapshot_id)
            self._write_record(disk_id, snapshot_id, size)
            try:
                path = str(self.disk_path(disk_id))
                with self._own_change(disk_id) as epoch:
                    _run(["qemu-img", "snapshot", "-q", "-c", snapshot_id, path])
                percent.emit(5)
                found = self._table_of_active(disk_id, size, percent.stage(5, 99))
                cluster_map: list[Segment] | None = None
                if found is None:
                    hashed = self._snapshot_hash(
                        disk_id, snapshot_id, BlockHasher, percent.stage(5, 99), False
                    )
                    table = BlockTable(size, _digests(hashed))
                else:
                    table, cluster_map = found
                fence()
                self._save_table(disk_id, snapshot_id, table, epoch, cluster_map)
                self._set_base(disk_id, snapshot_id)
            except BaseException:
                self._abandon(disk_id, snapshot_id)
                raise
        percent.emit(100)
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
        """The VM takes internal snapshot `snapshot_id`; we hash it with force-share.

        A leftover tag cannot be removed while the VM holds the image, so it is reported as
        SnapshotExists instead of being replaced.
        """
        percent = _Percent(progress)
        percent.emit(0)
        with self.lock_disk(disk_id):
            size = self._prepare(disk_id, snapshot_id)
            if snapshot_id in self._tags(disk_id):
                raise SnapshotExists(snapshot_id)
            self._write_record(disk_id, snapshot_id, size)
            try:
                epoch = self._current_epoch(disk_id)
                take(snapshot_id)
                percent.emit(5)
                hashed = self._snapshot_hash(
                    disk_id, snapshot_id, BlockHasher, percent.stage(5, 99)
                )
                fence()
                # The guest writes on, so the image's map is no longer the snapshot's: the
                # table has none, and the next snapshot hashes whatever holds data.
                table = BlockTable(size, _digests(hashed))
                self._save_table(disk_id, snapshot_id, table, epoch, None)
                self._set_base(disk_id, snapshot_id)
            except BaseException:
                self._abandon(disk_id, snapshot_id)
                raise
        percent.emit(100)
        return table.checksum

    def _prepare(self, disk_id: str, snapshot_id: str) -> int:
        """Refuse an existing snapshot; return the disk's current virtual size."""
        self._record_path(disk_id, snapshot_id)  # validates the ids before anything is touched
        size = self.disk_size(disk_id)
        if self.snapshot_exists(disk_id, snapshot_id):
            raise SnapshotExists(snapshot_id)
        return size

    def restore_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        expected_checksum: str,
        progress: ProgressCallback,
        *,
        fence: Fence = no_fence,
    ) -> None:
        """Verify the snapshot, then ``qemu-img snapshot -a`` it onto the image in place.

        Why in place and not on a copy: the switch itself is one synced write of the active
        L1 table (256 B for 16 GiB; one 4 KiB sector up to 256 GiB), so a crash leaves the
        old or the new content. Around it, though, qemu raises the snapshot's refcounts
        before, and rewrites the L1 flags and drops the old refcounts after, each synced
        separately; killing it in that window (strace fault injection) left an image that
        ``qemu-img check`` reports as corrupt (OFLAG_COPIED on a shared L2 table, plus
        leaks). Rather than copying a whole image (cost ~ all its snapshots' data), a redo
        record ``<disk>.restoring`` is written first and removed after; the next operation
        on the disk or cleanup_temporary() repairs the image and re-applies (idempotent).
        ``fence`` is asked before that record, the first change to the image.

        A snapshot whose table is the recorded checksum and sealed in the current trust
        epoch is not read (module docstring); any other is exported and verified whole, and
        sealed in this epoch if it is good.
        """
        percent = _Percent(progress)
        percent.emit(0)
        with self.lock_disk(disk_id), self.lock_snapshot(disk_id, snapshot_id):
            self._finish_interrupted_restore(disk_id)
            size = self._read_record(disk_id, snapshot_id)
            epoch = self._current_epoch(disk_id)
            table = self._load_table(disk_id, snapshot_id, size, epoch)
            if table is None or table.checksum != expected_checksum.lower():
                digests = self._check_whole(
                    disk_id,
                    snapshot_id,
                    expected_checksum,
                    size,
                    percent.stage(0, 95),
                    force_share=False,
                )
                if digests is not None:
                    self._reseal(disk_id, snapshot_id, BlockTable(size, digests), epoch)
            fence()
            intent = self._intent_path(disk_id)
            with translated():
                replace_file(intent, snapshot_id.encode())
            path = str(self.disk_path(disk_id))
            with self._own_change(disk_id):
                _run(["qemu-img", "snapshot", "-q", "-a", snapshot_id, path])
            self._set_base(disk_id, snapshot_id)
            with translated():
                unlink_quiet(intent)
                fsync_dir(self._disks)
        percent.emit(100)

    def _check_whole(
        self,
        disk_id: str,
        snapshot_id: str,
        expected_checksum: str,
        size: int,
        progress: ProgressCallback,
        *,
        force_share: bool,
        pace: Pace | None = None,
    ) -> bytes | None:
        """Export and hash the snapshot (ChecksumMismatch); the block digests of a good one
        (None when `expected_checksum` is a legacy plain sha256)."""

        def hasher(_: int) -> ChecksumHasher:
            return hasher_for(expected_checksum, size)

        result = self._snapshot_hash(disk_id, snapshot_id, hasher, progress, force_share, pace)
        actual = result.hexdigest()
        if actual != expected_checksum.lower():
            raise ChecksumMismatch(expected_checksum, actual)
        return result.digests() if isinstance(result, BlockHasher) else None

    def _reseal(self, disk_id: str, snapshot_id: str, table: BlockTable, epoch: int) -> None:
        """Seal a table just verified whole in `epoch`, keeping the cluster map it had."""
        old = read_table(self._table_path(disk_id, snapshot_id), table.size)
        cluster_map = _decode_seal(old.seal)[1] if old is not None else None
        self._save_table(disk_id, snapshot_id, table, epoch, cluster_map)

    def held_elsewhere(self, disk_id: str) -> bool:
        """Local storage: no client but this host's drivers and machines."""
        return False

    def fence_disk(self, disk_id: str) -> None:
        """Local storage: a machine of this disk runs on this host only (nothing to cut)."""

    def delete_snapshot(
        self, disk_id: str, snapshot_id: str, *, fence: Fence | None = None
    ) -> None:
        """Removes the internal snapshot, then the record; missing pieces are fine."""
        try:
            with self.lock_snapshot(disk_id, snapshot_id):
                if self.disk_exists(disk_id):
                    with self.lock_disk(disk_id):
                        if fence is not None:
                            fence()
                        self._drop_tag(disk_id, snapshot_id)
                elif fence is not None:
                    fence()
                self._drop_record(disk_id, snapshot_id)
        except SnapshotNotFound:
            return

    def snapshot_exists(self, disk_id: str, snapshot_id: str) -> bool:
        try:
            self._read_record(disk_id, snapshot_id)
            return snapshot_id in self._tags(disk_id)
        except (SnapshotNotFound, DiskNotFound):
            return False

    def snapshots(self) -> list[SnapshotRef]:
        return sorted(
            SnapshotRef(record.parent.name.removesuffix(".snapshots"), record.stem)
            for record in self._disks.glob("*.snapshots/*.size")
        )

    def snapshot_sha256(self, disk_id: str, snapshot_id: str) -> str:
        return self._snapshot_hash(disk_id, snapshot_id, PlainSha256).hexdigest()

    def snapshot_checksum(self, disk_id: str, snapshot_id: str) -> str:
        return self._snapshot_hash(disk_id, snapshot_id, BlockHasher).hexdigest()

    def verify_snapshot(
        self,
        disk_id: str,
        snapshot_id: str,
        expected_checksum: str,
        progress: ProgressCallback,
        *,
        pace: Pace | None = None,
    ) -> None:
        """Export and hash the snapshot (force-share: under a running guest too, no lock).
        A match seals its table in the current epoch only if the image is still as the
        driver's last own change left it, before and after the read."""
        size = self._read_record(disk_id, snapshot_id)
        before = self._seal_state(disk_id)
        digests = self._check_whole(
            disk_id, snapshot_id, expected_checksum, size, progress, force_share=True, pace=pace
        )
        if digests is not None and before is not None:
            epoch, image = before
            if image == self._image_identity(disk_id) and self._seal_state(disk_id) == before:
                self._reseal(disk_id, snapshot_id, BlockTable(size, digests), epoch)

    # -- housekeeping ------------------------------------------------------------------

    def cleanup_temporary(self) -> int:
        """Removes abandoned temps (in-flight ones are flocked) and completes interrupted
        applies; a disk that cannot be repaired now (e.g. held by a running VM) keeps its redo
        record, so the next operation on it retries and reports the error."""
        removed = 0
        with translated():
            for directory in (self._disks, self._snapshots, self._tmp, *self._record_dirs()):
                for tmp in directory.glob(f"*{TMP_MARK}*"):
                    removed += remove_if_abandoned(tmp)
            removed += drop_orphan_tables(self._disks, ".size")
        for intent in self._disks.glob("*.restoring"):
            with suppress(StorageError), self.lock_disk(intent.stem):
                removed += self._finish_interrupted_restore(intent.stem)
        return removed

    def quarantine_snapshot(self, disk_id: str, snapshot_id: str) -> Path:
        """The record moves to ``quarantine/snapshots/``; the internal snapshot stays inside
        its disk image (taking it out would rewrite the image), still intact, until the disk
        is deleted or an operator drops the tag (``qemu-img snapshot -d``)."""
        with self.lock_snapshot(disk_id, snapshot_id), translated():
            return quarantine_file(
                self._record_path(disk_id, snapshot_id), self._disks.parent, "snapshots"
            )

    def _record_dirs(self) -> list[Path]:
        return [path for path in self._disks.glob("*.snapshots") if path.is_dir()]


def _digests(hasher: ChecksumHasher) -> bytes:
    assert isinstance(hasher, BlockHasher)
    return hasher.digests()


def _decode_seal(seal: bytes) -> tuple[int, list[Segment] | None]:
    """(epoch, cluster map) of a table's seal; (0, None) for one that is not ours."""
    try:
        state = json.loads(seal)
        cluster_map = state["map"]
        segments = (
            None
            if cluster_map is None
            else [(int(a), int(b), None if c is None else int(c)) for a, b, c in cluster_map]
        )
        return int(state["epoch"]), segments
    except (ValueError, KeyError, TypeError):
        return 0, None


def _overlaps(start: int, length: int, blocks: Sequence[int]) -> bool:
    first, last = start // BLOCK_SIZE, (start + length - 1) // BLOCK_SIZE
    return any(first <= block <= last for block in blocks)


def _missing(disk_id: str, snapshot_id: str) -> SnapshotNotFound:
    return SnapshotNotFound(f"{snapshot_id} of disk {disk_id}")


def _check_size(size_bytes: int) -> None:
    if size_bytes <= 0 or size_bytes % SECTOR:
        raise ValueError(f"disk size must be a positive multiple of {SECTOR}, got {size_bytes}")
