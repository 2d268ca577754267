"""The storage-driver contract: what every registered driver must do, run unchanged against
each of them: every entry of the registry (storage.DRIVERS), so a new driver is picked up
as soon as it is registered, and must pass this file as it is (qcow2 runs where qemu-img does).

Only the protocol is used here (no file paths, no formats), so a driver that stores disks
elsewhere (e.g. Ceph RBD) can pass it too; what is specific to one driver stays in its own
test module."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.drivers import driver_options, forget_tables, needs_qemu_img

from lightkeeper.storage import (
    DRIVERS,
    Capabilities,
    ChecksumMismatch,
    DiskBusy,
    DiskExists,
    DiskNotFound,
    LiveSnapshotUnsupported,
    NoSpace,
    SnapshotBusy,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotRef,
    StorageDriver,
    StorageError,
    StorageIOError,
    make_driver,
)
from lightkeeper.storage.base import UNRECORDED_DISK

MiB = 1024 * 1024
DISK = "lhdisk-ab12cd34"
SNAP = "lhsnap-ab12cd34"
OFFSETS = (0, 4096 + 7, MiB - 3, 32 * MiB, 64 * MiB - 100)


class Refused(Exception):
    """What the test fence raises: the job lost its lease."""


_NEEDS = {"qcow2": needs_qemu_img}  # what a driver needs of the test machine


@pytest.fixture(params=[pytest.param(n, marks=_NEEDS.get(n, ())) for n in sorted(DRIVERS)])
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def options(name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The driver's own settings (a namespace of its own for rbd), also for subprocesses."""
    return driver_options(name, request)


@pytest.fixture
def driver(name: str, tmp_path: Path, options: dict[str, Any]) -> StorageDriver:
    return make_driver(name, tmp_path, **options)


@pytest.fixture
def disk(driver: StorageDriver) -> Iterator[str]:
    """A 64 MiB sparse disk with a small pattern at several (unaligned) offsets."""
    driver.create_disk(DISK, 64 * MiB)
    for i, offset in enumerate(OFFSETS):
        driver.write(DISK, offset, _pattern(i, 100))
    yield DISK


def _pattern(seed: int, length: int) -> bytes:
    return bytes((seed * 31 + k) % 251 for k in range(length))


def _ignore(_: int) -> None:
    pass


def _refuse() -> None:
    raise Refused


def _no_leftovers(driver: StorageDriver, root: Path) -> None:
    """No temp file under the data dir, and nothing abandoned for cleanup_temporary."""
    assert sorted(root.rglob("*.tmp-*")) == []
    assert driver.cleanup_temporary() == 0


def reference_block_checksum(content: bytes) -> str:
    """The snapshot checksum straight from its definition (storage/checksum.py)."""
    digests = b"".join(
        hashlib.sha256(content[i : i + MiB]).digest() for i in range(0, len(content), MiB)
    )
    return "b1m-sha256:" + hashlib.sha256(digests + len(content).to_bytes(8, "big")).hexdigest()


# -- round trip ------------------------------------------------------------------------------


def test_round_trip_restores_snapshot_time_content(
    tmp_path: Path, driver: StorageDriver, disk: str
) -> None:
    before = driver.disk_sha256(disk)
    seen: list[int] = []
    checksum = driver.create_snapshot(disk, SNAP, seen.append)
    assert seen[0] == 0 and seen[-1] == 100 and seen == sorted(set(seen))
    assert checksum.startswith("b1m-sha256:")
    assert checksum == driver.snapshot_checksum(DISK, SNAP)
    assert driver.snapshot_sha256(DISK, SNAP) == before

    for offset in OFFSETS:
        driver.write(disk, offset, b"\xff" * 100)
    driver.write(disk, 10 * MiB, b"new data in a former hole")
    assert driver.disk_sha256(disk) != before

    seen.clear()
    assert driver.disk_checksum(disk) != checksum
    driver.restore_snapshot(disk, SNAP, checksum, seen.append)
    assert seen[0] == 0 and seen[-1] == 100 and seen == sorted(set(seen))
    assert driver.disk_sha256(disk) == before
    assert driver.disk_checksum(disk) == checksum
    assert [driver.read(disk, o, 100) for o in OFFSETS] == [_pattern(i, 100) for i in range(5)]
    assert driver.read(disk, 10 * MiB, 25) == bytes(25)
    assert driver.snapshot_exists(DISK, SNAP)  # restoring keeps the snapshot
    _no_leftovers(driver, tmp_path)


def test_checksums_follow_their_definitions(driver: StorageDriver) -> None:
    driver.create_disk(DISK, 3 * MiB)
    driver.write(DISK, MiB + 5, b"abc")
    content = bytearray(3 * MiB)
    content[MiB + 5 : MiB + 8] = b"abc"
    plain = hashlib.sha256(content).hexdigest()
    assert driver.disk_sha256(DISK) == plain
    assert driver.disk_checksum(DISK) == reference_block_checksum(bytes(content))
    checksum = driver.create_snapshot(DISK, SNAP, _ignore)
    assert checksum == reference_block_checksum(bytes(content))
    assert driver.disk_checksum(DISK) == checksum  # what the snapshot recorded, read off the disk
    assert driver.snapshot_sha256(DISK, SNAP) == plain
    driver.write(DISK, 0, b"later")
    driver.restore_snapshot(DISK, SNAP, plain, _ignore)  # a legacy plain sha256 is accepted
    assert driver.read(DISK, 0, 5) == bytes(5)


def _page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_a_round_trip_costs_memory_that_follows_the_data(driver: StorageDriver) -> None:
    """Page faults of a snapshot and a rollback, a cost that no clock times: none beyond a few
    hundred for an empty disk, nor, once a first round has run, for a disk with data. Before,
    every snapshot and rollback allocated three or four 8 MiB buffers up front (6,144 page
    faults or more a round, most of an empty disk's snapshot) and threw them away."""

    def round_trip(disk_id: str, data: bytes) -> int:
        driver.create_disk(disk_id, 64 * MiB)
        if data:
            driver.write(disk_id, 8 * MiB, data)
        before = _page_faults()
        checksum = driver.create_snapshot(disk_id, SNAP, _ignore)
        driver.restore_snapshot(disk_id, SNAP, checksum, _ignore)
        faults = _page_faults() - before
        driver.delete_snapshot(disk_id, SNAP)
        return faults

    round_trip("lhdisk-warm0000", bytes(range(256)) * 4096)  # imports, threads, first buffers
    assert round_trip("lhdisk-empty000", b"") < 1000
    assert round_trip("lhdisk-data0000", bytes(range(256)) * 4096) < 1000  # 1 MiB of data


def test_progress_is_monotonic_and_ends_at_100(tmp_path: Path, driver: StorageDriver) -> None:
    driver.create_disk(DISK, 64 * MiB)
    for offset in (0, 20 * MiB, 50 * MiB):
        driver.write(DISK, offset, os.urandom(3 * MiB))
    for run in ("snapshot", "restore", "verified restore"):
        seen: list[int] = []
        if run == "snapshot":
            sha = driver.create_snapshot(DISK, SNAP, seen.append)
        else:
            if run == "verified restore":
                forget_tables(driver, tmp_path)
            driver.restore_snapshot(DISK, SNAP, sha, seen.append)
        assert seen[0] == 0 and seen[-1] == 100, run
        assert seen == sorted(set(seen)), run  # strictly increasing: throttled, no repeats
        if run != "restore":  # a trusted restore may read nothing (a qcow2 switch)
            assert len(seen) >= 3, run  # intermediate updates, by data copied or verified


# -- checksum mismatch -----------------------------------------------------------------------


def test_checksum_mismatch_leaves_disk_untouched(
    tmp_path: Path, driver: StorageDriver, disk: str
) -> None:
    driver.create_snapshot(disk, SNAP, _ignore)
    driver.write(disk, 0, b"after snapshot")
    wrong = driver.create_snapshot(disk, "lhsnap-second", _ignore)  # other content's checksum
    driver.write(disk, 0, b"current state!")
    current = driver.disk_sha256(disk)

    with pytest.raises(ChecksumMismatch) as info:
        driver.restore_snapshot(disk, SNAP, wrong, _ignore)
    assert info.value.expected == wrong
    assert driver.disk_sha256(disk) == current
    _no_leftovers(driver, tmp_path)


# -- disks, resize and missing objects ---------------------------------------------------------


def test_disk_lifecycle_and_bounds(driver: StorageDriver) -> None:
    driver.create_disk(DISK, MiB)
    assert driver.disk_exists(DISK) and driver.disk_size(DISK) == MiB
    with pytest.raises(DiskExists):
        driver.create_disk(DISK, MiB)
    with pytest.raises(ValueError):
        driver.create_disk("lhdisk-empty", 0)
    for bad_write in ((MiB - 1, b"ab"), (-1, b"a")):
        with pytest.raises(ValueError):
            driver.write(DISK, *bad_write)
    with pytest.raises(ValueError):
        driver.read(DISK, MiB, 1)
    assert driver.read(DISK, MiB, 0) == b""

    driver.delete_disk(DISK)
    driver.delete_disk(DISK)  # idempotent
    assert not driver.disk_exists(DISK)


def test_create_disk_from_base_image(tmp_path: Path, driver: StorageDriver) -> None:
    base = tmp_path / "base.img"
    content = _pattern(7, 10_000) + bytes(512 - 10_000 % 512)
    base.write_bytes(content)
    driver.create_disk(DISK, 8 * MiB, base_image=base)
    assert driver.disk_size(DISK) == 8 * MiB
    assert driver.read(DISK, 0, len(content)) == content
    expected = hashlib.sha256(content + bytes(8 * MiB - len(content))).hexdigest()
    assert driver.disk_sha256(DISK) == expected
    with pytest.raises(ValueError):  # the base image does not fit
        driver.create_disk("lhdisk-small", 4096, base_image=base)
    assert not driver.disk_exists("lhdisk-small")


def test_resize_grows_only_and_a_snapshot_keeps_its_size(driver: StorageDriver, disk: str) -> None:
    checksum = driver.create_snapshot(disk, SNAP, _ignore)
    driver.resize_disk(disk, 128 * MiB)
    assert driver.disk_size(disk) == 128 * MiB
    assert driver.read(disk, 100 * MiB, 10) == bytes(10)  # the new space reads as zeros
    with pytest.raises(ValueError):
        driver.resize_disk(disk, 64 * MiB)
    driver.resize_disk(disk, 128 * MiB)  # same size: nothing to do
    driver.write(disk, 100 * MiB, b"beyond the old end")
    assert driver.snapshot_checksum(DISK, SNAP) == checksum
    driver.restore_snapshot(disk, SNAP, checksum, _ignore)
    assert driver.disk_size(disk) == 64 * MiB  # the snapshot's size comes back too


def test_missing_objects_raise_not_found(driver: StorageDriver, disk: str) -> None:
    with pytest.raises(DiskNotFound):
        driver.disk_sha256("lhdisk-missing")
    with pytest.raises(DiskNotFound):
        driver.disk_size("lhdisk-missing")
    with pytest.raises(DiskNotFound):
        driver.create_snapshot("lhdisk-missing", SNAP, _ignore)
    with pytest.raises(SnapshotNotFound):
        driver.restore_snapshot(disk, "lhsnap-missing", "0" * 64, _ignore)
    with pytest.raises(SnapshotNotFound):
        driver.snapshot_sha256(DISK, "lhsnap-missing")
    with pytest.raises(SnapshotNotFound):
        driver.snapshot_checksum(DISK, "lhsnap-missing")
    with pytest.raises(SnapshotNotFound), driver.lock_snapshot(DISK, "lhsnap-missing"):
        pass
    assert not driver.disk_exists("lhdisk-missing")
    assert not driver.snapshot_exists(DISK, "lhsnap-missing")
    driver.delete_disk("lhdisk-missing")  # deleting what is gone is fine
    driver.delete_snapshot(DISK, "lhsnap-missing")

    driver.create_snapshot(disk, SNAP, _ignore)
    with pytest.raises(SnapshotExists):
        driver.create_snapshot(disk, SNAP, _ignore)
    assert driver.snapshots() == [SnapshotRef(DISK, SNAP)]
    driver.delete_snapshot(DISK, SNAP)
    driver.delete_snapshot(DISK, SNAP)  # idempotent
    assert not driver.snapshot_exists(DISK, SNAP) and driver.snapshots() == []


OTHER = "lhdisk-other"


def test_a_snapshot_asked_for_under_another_disk_is_not_found(
    driver: StorageDriver, disk: str
) -> None:
    driver.create_disk(OTHER, MiB)
    checksum = driver.create_snapshot(disk, SNAP, _ignore)
    assert not driver.snapshot_exists(OTHER, SNAP)
    for lookup in (driver.snapshot_sha256, driver.snapshot_checksum, driver.quarantine_snapshot):
        with pytest.raises(SnapshotNotFound):
            lookup(OTHER, SNAP)
    with pytest.raises(SnapshotNotFound), driver.lock_snapshot(OTHER, SNAP):
        pass
    with pytest.raises(SnapshotNotFound):
        driver.restore_snapshot(OTHER, SNAP, checksum, _ignore)
    driver.delete_snapshot(OTHER, SNAP)  # not there: nothing to do
    assert driver.snapshot_exists(DISK, SNAP) and driver.snapshot_checksum(DISK, SNAP) == checksum


def test_snapshots_lists_disk_and_snapshot_pairs(driver: StorageDriver, disk: str) -> None:
    driver.create_disk(OTHER, MiB)
    driver.create_snapshot(OTHER, "lhsnap-b", _ignore)
    driver.create_snapshot(disk, SNAP, _ignore)
    assert driver.snapshots() == [SnapshotRef(DISK, SNAP), SnapshotRef(OTHER, "lhsnap-b")]
    driver.delete_snapshot(OTHER, "lhsnap-b")
    assert driver.snapshots() == [SnapshotRef(DISK, SNAP)]


def _old_raw_snapshot(root: Path, driver: StorageDriver) -> None:
    """Older versions kept ``snapshots/<snap>.img`` alone, without its disk."""
    shutil.copyfile(root / "disks" / f"{DISK}.img", root / "snapshots" / f"{SNAP}.img")


def _old_qcow2_snapshot(root: Path, driver: StorageDriver) -> None:
    """Older versions kept a ``snapshots/<snap>.ref`` marker beside the internal snapshot."""
    image = root / "disks" / f"{DISK}.qcow2"
    subprocess.run(["qemu-img", "snapshot", "-c", SNAP, str(image)], check=True)
    marker = {"disk": DISK, "size": driver.disk_size(DISK)}
    (root / "snapshots" / f"{SNAP}.ref").write_text(json.dumps(marker))


_OLD_LAYOUTS = {"raw": _old_raw_snapshot, "qcow2": _old_qcow2_snapshot}
"""How each driver's older versions stored a snapshot (file paths: the one exception here)."""


def test_a_snapshot_stored_by_an_older_version_is_found_and_restores(
    tmp_path: Path, name: str, driver: StorageDriver, disk: str
) -> None:
    if name not in _OLD_LAYOUTS:
        pytest.skip(f"{name} has no older layout")
    content = driver.disk_sha256(disk)  # a plain sha256, as older versions recorded
    _OLD_LAYOUTS[name](tmp_path, driver)
    driver.write(disk, 0, b"later")
    for _ in range(2):  # starting again over a migrated data dir changes nothing
        driver = make_driver(name, tmp_path)
        (ref,) = driver.snapshots()
        assert ref.snapshot_id == SNAP and ref.disk_id in (DISK, UNRECORDED_DISK)
        assert driver.snapshot_exists(DISK, SNAP) and driver.snapshot_sha256(DISK, SNAP) == content
    assert not list((tmp_path / "snapshots").glob("*.ref"))
    driver.restore_snapshot(disk, SNAP, content, _ignore)
    assert driver.disk_sha256(disk) == content
    driver.delete_snapshot(disk, SNAP)
    assert driver.snapshots() == []


@pytest.mark.parametrize("bad_id", ["../escape", "", "a/b", ".hidden", "x" * 65])
def test_ids_that_could_escape_the_directory_are_rejected(
    driver: StorageDriver, disk: str, bad_id: str
) -> None:
    with pytest.raises(ValueError):
        driver.disk_exists(bad_id)
    with pytest.raises(ValueError):
        driver.create_snapshot(disk, bad_id, _ignore)
    assert driver.snapshots() == []


# -- locks -------------------------------------------------------------------------------------


def test_locks_exclude_our_own_operations(driver: StorageDriver, disk: str) -> None:
    checksum = driver.create_snapshot(disk, SNAP, _ignore)
    with driver.lock_disk(disk):  # a separate holder => excludes the driver's own calls too
        for call in (
            lambda: driver.write(disk, 0, b"x"),
            lambda: driver.create_snapshot(disk, "lhsnap-other", _ignore),
            lambda: driver.restore_snapshot(disk, SNAP, checksum, _ignore),
            lambda: driver.delete_disk(disk),
        ):
            with pytest.raises(DiskBusy):
                call()
        with pytest.raises(DiskBusy), driver.lock_disk(disk):  # not re-entrant
            pass
    assert not driver.snapshot_exists(DISK, "lhsnap-other")
    with driver.lock_snapshot(DISK, SNAP):
        with pytest.raises(SnapshotBusy):
            driver.delete_snapshot(DISK, SNAP)
        with pytest.raises(SnapshotBusy):
            driver.restore_snapshot(disk, SNAP, checksum, _ignore)
    driver.write(disk, 0, b"x")  # released
    driver.delete_snapshot(DISK, SNAP)


_HOLDER = """
import json, sys
from pathlib import Path
from lightkeeper.storage import DRIVERS
with DRIVERS[sys.argv[1]](Path(sys.argv[2]), **json.loads(sys.argv[4])).lock_disk(sys.argv[3]):
    print("locked", flush=True)
    sys.stdin.read()
"""


def test_disk_lock_excludes_another_process(
    name: str, tmp_path: Path, driver: StorageDriver, disk: str, options: dict[str, Any]
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, name, str(tmp_path), disk, json.dumps(options)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DiskBusy):
            driver.create_snapshot(disk, SNAP, _ignore)
        assert not driver.snapshot_exists(DISK, SNAP)
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    driver.create_snapshot(disk, SNAP, _ignore)


# -- fences, failures and crash points ---------------------------------------------------------


def test_refused_fence_publishes_nothing(tmp_path: Path, driver: StorageDriver, disk: str) -> None:
    """A worker that lost its lease must leave no snapshot and an unchanged disk."""
    checksum = driver.create_snapshot(disk, SNAP, _ignore)
    driver.write(disk, 0, b"changed since snapshot")
    current = driver.disk_sha256(disk)

    with pytest.raises(Refused):
        driver.create_snapshot(disk, "lhsnap-second", _ignore, fence=_refuse)
    assert not driver.snapshot_exists(DISK, "lhsnap-second")
    assert driver.snapshots() == [SnapshotRef(DISK, SNAP)]
    with pytest.raises(Refused):
        driver.restore_snapshot(disk, SNAP, checksum, _ignore, fence=_refuse)
    assert driver.disk_sha256(disk) == current
    _no_leftovers(driver, tmp_path)
    driver.create_snapshot(disk, "lhsnap-second", _ignore)  # nothing was left in the way


def test_a_fenced_delete_removes_nothing_when_refused_and_waits_for_the_disk(
    driver: StorageDriver, disk: str
) -> None:
    """A job discarding an earlier attempt's data: a worker that lost its lease removes
    nothing, and the deletion runs under the disk lock (so it cannot interleave with
    another worker's copy of the same disk)."""
    driver.create_snapshot(disk, SNAP, _ignore)
    with pytest.raises(Refused):
        driver.delete_snapshot(disk, SNAP, fence=_refuse)
    assert driver.snapshot_exists(disk, SNAP)
    with driver.lock_disk(disk), pytest.raises(DiskBusy):
        driver.delete_snapshot(disk, SNAP, fence=_ignore_fence)
    assert driver.snapshot_exists(disk, SNAP)
    driver.delete_snapshot(disk, SNAP, fence=_ignore_fence)
    assert not driver.snapshot_exists(disk, SNAP)


def _ignore_fence() -> None:
    """A fence that lets everything through (the worker still holds its lease)."""


def _small_disk(driver: StorageDriver) -> str:
    """Data in a few places: enough for one copy chunk (the hook runs after each chunk)."""
    driver.create_disk(DISK, 16 * MiB)
    for offset in (0, 5 * MiB):
        driver.write(DISK, offset, _pattern(offset, 4096))
    return DISK


@pytest.mark.parametrize(("code", "error"), [(errno.ENOSPC, NoSpace), (errno.EIO, StorageIOError)])
@pytest.mark.parametrize("operation", ["snapshot", "restore"])
def test_failure_part_way_is_mapped_and_leaves_no_trace(
    name: str,
    tmp_path: Path,
    code: int,
    error: type[StorageError],
    operation: str,
    options: dict[str, Any],
) -> None:
    """The chunk hook every driver takes (fault injection) fails the copy after its first
    chunk: the last instant before publishing, for a disk of one chunk."""
    failing = [False]

    def hook() -> None:
        if failing[0]:
            failing[0] = False  # one failure, at the first chunk of the next copy
            raise OSError(code, os.strerror(code))

    driver = DRIVERS[name](tmp_path, on_chunk=hook, **options)
    disk = _small_disk(driver)
    checksum = driver.create_snapshot(disk, SNAP, _ignore)
    driver.write(disk, 0, b"changed since snapshot")
    current = driver.disk_sha256(disk)

    forget_tables(driver, tmp_path)  # a restore then reads the snapshot whole: the hook is reached
    failing[0] = True
    with pytest.raises(error):
        if operation == "snapshot":
            driver.create_snapshot(disk, "lhsnap-second", _ignore)
        else:
            driver.restore_snapshot(disk, SNAP, checksum, _ignore)
    assert not failing[0], "the copy never reached the hook"
    assert not driver.snapshot_exists(DISK, "lhsnap-second")
    assert driver.snapshots() == [SnapshotRef(DISK, SNAP)]
    assert driver.disk_sha256(disk) == current
    _no_leftovers(driver, tmp_path)


_CRASHER = """
import json, os, sys
from pathlib import Path
from lightkeeper.storage import DRIVERS
def crash():
    os._exit(17)  # after the first chunk, SIGKILL-like: no cleanup handler runs
driver = DRIVERS[sys.argv[1]](Path(sys.argv[2]), on_chunk=crash, **json.loads(sys.argv[7]))
if sys.argv[3] == "snapshot":
    driver.create_snapshot(sys.argv[4], "lhsnap-crashed", lambda _: None)
else:
    driver.restore_snapshot(sys.argv[4], sys.argv[5], sys.argv[6], lambda _: None)
"""


@pytest.mark.parametrize("operation", ["snapshot", "restore"])
def test_crash_part_way_leaves_old_data_and_cleanable_leftovers(
    name: str, tmp_path: Path, driver: StorageDriver, operation: str, options: dict[str, Any]
) -> None:
    """A process killed in the middle of a copy: the disk keeps its old content, the next
    start's cleanup_temporary removes what the copy left, and a half-made snapshot is either
    absent or listed by snapshots() (so orphan handling can delete it)."""
    disk = _small_disk(driver)
    checksum = driver.create_snapshot(disk, SNAP, _ignore)
    driver.write(disk, 0, b"changed since snapshot")
    current = driver.disk_sha256(disk)

    forget_tables(driver, tmp_path)  # a restore then reads the snapshot whole: the hook is reached
    args = [name, str(tmp_path), operation, disk, SNAP, checksum, json.dumps(options)]
    crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(_CRASHER), *args], check=False)
    assert crashed.returncode == 17, "the copy never reached the crash point"

    driver.cleanup_temporary()
    assert sorted(tmp_path.rglob("*.tmp-*")) == []
    assert driver.disk_sha256(disk) == current
    for leftover in {ref.snapshot_id for ref in driver.snapshots()} - {SNAP}:
        assert leftover == "lhsnap-crashed"
        driver.delete_snapshot(DISK, leftover)
    assert driver.snapshots() == [SnapshotRef(DISK, SNAP)]
    driver.restore_snapshot(disk, SNAP, checksum, _ignore)  # the old snapshot still works


def test_quarantine_moves_a_snapshot_out_of_sight(
    tmp_path: Path, driver: StorageDriver, disk: str
) -> None:
    driver.create_snapshot(disk, SNAP, _ignore)
    moved = driver.quarantine_snapshot(DISK, SNAP)
    assert moved.exists() and tmp_path / "quarantine" in moved.parents
    assert driver.snapshots() == [] and not driver.snapshot_exists(DISK, SNAP)
    with pytest.raises(SnapshotNotFound):
        driver.quarantine_snapshot(DISK, SNAP)


# -- declared capabilities and the attachment ----------------------------------------------------


def test_capabilities_are_declared_and_honoured(driver: StorageDriver, disk: str) -> None:
    assert isinstance(driver.capabilities, Capabilities)
    if not driver.capabilities.live_snapshot:

        def take(_: str) -> None:
            raise AssertionError("a driver without live snapshots asked the machine")

        with pytest.raises(LiveSnapshotUnsupported):
            driver.create_snapshot_live(disk, SNAP, take, _ignore)
        assert not driver.snapshot_exists(DISK, SNAP)


def test_attachment_names_what_a_hypervisor_opens(driver: StorageDriver, disk: str) -> None:
    attachment = driver.attachment(disk)
    assert attachment == driver.attachment(disk)
    assert attachment.kind in ("file", "rbd")  # a new kind extends this test
    if attachment.kind == "file":
        assert attachment.path.is_file()
        opened = str(attachment.path)
    else:  # QEMU's rbd: spec (Debian's qemu-block-extra lets qemu-img open it)
        assert attachment.spec.startswith("rbd:") and attachment.format == "raw"
        opened = attachment.spec
    if shutil.which("qemu-img"):  # may be missing where only raw runs
        info = subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", opened],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(info.stdout)["format"] == attachment.format
