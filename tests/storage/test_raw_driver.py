"""RawDriver specifics: sparseness, reflinks, lock files, OS-level copy failures; the cases
every driver shares are in test_contract.py."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.mounts import loop_mounted

from lightkeeper.storage import (
    ChecksumMismatch,
    DiskBusy,
    NoSpace,
    RawDriver,
    StorageError,
    StorageIOError,
    make_driver,
)
from lightkeeper.storage import checksum as checksum_mod
from lightkeeper.storage import copy as copy_mod

MiB = 1024 * 1024
DISK = "lhdisk-ab12cd34"
SNAP = "lhsnap-ab12cd34"
OFFSETS = (0, 4096 + 7, MiB - 3, 32 * MiB, 64 * MiB - 100)


@pytest.fixture
def driver(tmp_path: Path) -> RawDriver:
    return RawDriver(tmp_path)


@pytest.fixture
def disk(driver: RawDriver) -> Iterator[str]:
    """A 64 MiB sparse disk with a small pattern at several offsets."""
    driver.create_disk(DISK, 64 * MiB)
    for i, offset in enumerate(OFFSETS):
        driver.write(DISK, offset, _pattern(i, 100))
    yield DISK


def _pattern(seed: int, length: int) -> bytes:
    return bytes((seed * 31 + k) % 251 for k in range(length))


def _temp_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp-*"))


def _ignore(_: int) -> None:
    pass


def reference_block_checksum(content: bytes) -> str:
    """The snapshot checksum straight from its definition, to check the hole-skipping code."""
    digests = b"".join(
        hashlib.sha256(content[i : i + MiB]).digest() for i in range(0, len(content), MiB)
    )
    return "b1m-sha256:" + hashlib.sha256(digests + len(content).to_bytes(8, "big")).hexdigest()


def _file_checksum(path: Path) -> str:
    with path.open("rb") as f:
        return checksum_mod.block_checksum(f.fileno(), os.fstat(f.fileno()).st_size)


def test_snapshot_keeps_holes_and_is_read_only(
    tmp_path: Path, driver: RawDriver, disk: str
) -> None:
    driver.create_snapshot(disk, SNAP, _ignore)
    st_snap = (tmp_path / "snapshots" / f"{SNAP}.img").stat()
    assert st_snap.st_size == 64 * MiB
    assert st_snap.st_blocks * 512 <= MiB  # five 100-byte writes, not 64 MiB of zeros
    assert st_snap.st_mode & 0o777 == 0o400
    assert _temp_files(tmp_path) == []


def test_checksum_mismatch_leaves_disk_untouched(
    tmp_path: Path, driver: RawDriver, disk: str
) -> None:
    sha = driver.create_snapshot(disk, SNAP, _ignore)
    driver.write(disk, 0, b"after snapshot")
    current = driver.disk_sha256(disk)
    snap_file = tmp_path / "snapshots" / f"{SNAP}.img"
    snap_file.chmod(0o600)
    with snap_file.open("r+b") as f:
        f.seek(32 * MiB)
        f.write(b"bit rot")

    with pytest.raises(ChecksumMismatch) as info:
        driver.restore_snapshot(disk, SNAP, sha, _ignore)
    assert info.value.expected == sha
    assert driver.disk_sha256(disk) == current
    assert _temp_files(tmp_path) == []


def test_lock_retries_when_lock_file_is_replaced_under_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, driver: RawDriver, disk: str
) -> None:
    """delete_disk unlinks the lock file; a lock won on the orphaned inode would exclude nobody."""
    lock_file = tmp_path / "disks" / f"{disk}.lock"
    real_flock = fcntl.flock
    replacement: list[int] = []

    def racing_flock(fd: int, operation: int) -> None:
        if not replacement:  # another process deletes and recreates the lock file, and holds it
            lock_file.unlink()
            replacement.append(os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600))
            real_flock(replacement[0], fcntl.LOCK_EX)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", racing_flock)
    try:
        with pytest.raises(DiskBusy):
            driver.write(disk, 0, b"x")
    finally:
        os.close(replacement[0])


def _failing_copy(code: int) -> Callable[..., int]:
    def copy_file_range(*_: object) -> int:
        raise OSError(code, os.strerror(code))

    return copy_file_range


@pytest.mark.parametrize(("code", "error"), [(errno.ENOSPC, NoSpace), (errno.EIO, StorageIOError)])
@pytest.mark.parametrize("operation", ["snapshot", "restore"])
def test_copy_failure_is_mapped_and_leaves_no_trace(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    driver: RawDriver,
    disk: str,
    code: int,
    error: type[StorageError],
    operation: str,
) -> None:
    sha = driver.create_snapshot(disk, SNAP, _ignore)
    driver.write(disk, 0, b"changed since snapshot")
    current = driver.disk_sha256(disk)
    monkeypatch.setattr(os, "copy_file_range", _failing_copy(code))

    with pytest.raises(error):
        if operation == "snapshot":
            driver.create_snapshot(disk, "lhsnap-second", _ignore)
        else:
            driver.restore_snapshot(disk, SNAP, sha, _ignore)

    assert _temp_files(tmp_path) == []
    assert not driver.snapshot_exists(DISK, "lhsnap-second")
    assert driver.disk_sha256(disk) == current


@pytest.mark.parametrize("code", [errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP])
def test_unsupported_copy_file_range_falls_back_to_read_write(
    monkeypatch: pytest.MonkeyPatch, driver: RawDriver, disk: str, code: int
) -> None:
    before = driver.disk_sha256(disk)
    monkeypatch.setattr(os, "copy_file_range", _failing_copy(code))
    checksum = driver.create_snapshot(disk, SNAP, _ignore)
    assert checksum == driver.snapshot_checksum(DISK, SNAP)
    assert driver.snapshot_sha256(DISK, SNAP) == before


def test_reflink_path_hashes_what_was_cloned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, driver: RawDriver, disk: str
) -> None:
    """ext4 cannot reflink, so stand in a whole-file copy to exercise the post-clone branch."""

    def fake_reflink(src_fd: int, dst_fd: int) -> bool:
        for offset, length in copy_mod.data_extents(src_fd, os.fstat(src_fd).st_size):
            copy_mod.pwrite_all(dst_fd, os.pread(src_fd, length, offset), offset)
        return True

    monkeypatch.setattr(copy_mod, "_reflink", fake_reflink)
    seen: list[int] = []
    disk_checksum = _file_checksum(tmp_path / "disks" / f"{disk}.img")
    assert driver.create_snapshot(disk, SNAP, seen.append) == disk_checksum
    assert driver.snapshot_checksum(DISK, SNAP) == disk_checksum
    assert driver.snapshot_sha256(DISK, SNAP) == driver.disk_sha256(disk)
    assert seen[0] == 0 and seen[-1] == 100 and seen == sorted(seen)


def test_real_reflink_on_xfs(tmp_path: Path) -> None:
    """On a filesystem that can share extents, snapshot and restore are clones: no data
    blocks are written, yet both still verify the content."""
    with loop_mounted(tmp_path, "xfs", 320 * MiB) as mount:
        xfs = RawDriver(mount / "lk")
        assert xfs.capabilities.reflink  # declared, not only discovered per copy
        xfs.create_disk(DISK, 64 * MiB)
        xfs.write(DISK, 5 * MiB, _pattern(3, 40 * MiB))
        used_before = _used_bytes(mount)
        checksum = xfs.create_snapshot(DISK, SNAP, _ignore)
        assert _used_bytes(mount) - used_before < MiB  # shared extents, not a 40 MiB copy
        assert checksum == _file_checksum(mount / "lk" / "disks" / f"{DISK}.img")
        original = xfs.disk_sha256(DISK)
        xfs.write(DISK, 6 * MiB, b"changed" * 1000)
        xfs.restore_snapshot(DISK, SNAP, checksum, _ignore)
        assert xfs.disk_sha256(DISK) == original
        with pytest.raises(ChecksumMismatch):
            xfs.restore_snapshot(DISK, SNAP, "b1m-sha256:" + "0" * 64, _ignore)
        assert xfs.disk_sha256(DISK) == original


def _used_bytes(mount: Path) -> int:
    stats = os.statvfs(mount)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def test_cleanup_temporary_removes_only_abandoned_temps(tmp_path: Path, driver: RawDriver) -> None:
    abandoned = [
        tmp_path / "disks" / f"{DISK}.img.tmp-0123abcd",
        tmp_path / "snapshots" / f"{SNAP}.img.tmp-4567ef01",
    ]
    for path in abandoned:
        path.write_bytes(b"half a copy")
    in_flight = tmp_path / "snapshots" / "lhsnap-busy.img.tmp-89abcdef"
    with in_flight.open("wb") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)
        assert driver.cleanup_temporary() == 2
    assert _temp_files(tmp_path) == [in_flight]
    assert driver.cleanup_temporary() == 1


def test_create_disk_from_base_image_is_sparse(tmp_path: Path, driver: RawDriver) -> None:
    base = tmp_path / "base.img"
    base.write_bytes(_pattern(7, 10_000))
    driver.create_disk(DISK, 8 * MiB, base_image=base)
    assert driver.disk_size(DISK) == 8 * MiB
    assert driver.read(DISK, 0, 10_000) == _pattern(7, 10_000)
    expected = hashlib.sha256(_pattern(7, 10_000) + bytes(8 * MiB - 10_000)).hexdigest()
    assert driver.disk_sha256(DISK) == expected
    assert (tmp_path / "disks" / f"{DISK}.img").stat().st_blocks * 512 <= 64 * 1024
    with pytest.raises(ValueError):
        driver.create_disk("lhdisk-small", 4096, base_image=base)
    assert not driver.disk_exists("lhdisk-small")


def test_deleted_disk_leaves_no_files(tmp_path: Path, driver: RawDriver) -> None:
    """The generic lifecycle is in test_contract.py; here: nothing stays on the filesystem."""
    driver.create_disk(DISK, MiB)
    driver.resize_disk(DISK, 2 * MiB)
    assert (tmp_path / "disks" / f"{DISK}.img").stat().st_size == 2 * MiB
    driver.delete_disk(DISK)
    assert sorted(p.name for p in (tmp_path / "disks").iterdir()) == []
    assert (tmp_path / "disks").stat().st_mode & 0o777 == 0o700


def test_make_driver(tmp_path: Path) -> None:
    assert isinstance(make_driver("raw", tmp_path), RawDriver)
    with pytest.raises(ValueError):
        make_driver("zfs", tmp_path)


_write = st.tuples(st.integers(0, 4 * MiB), st.integers(1, 256 * 1024), st.integers(0, 255))


@settings(max_examples=30, deadline=None)
@given(
    size=st.integers(1, 4).map(lambda n: n * MiB),
    before=st.lists(_write, max_size=6),
    after=st.lists(_write, min_size=1, max_size=6),
)
def test_restore_always_yields_snapshot_time_content(
    size: int, before: list[tuple[int, int, int]], after: list[tuple[int, int, int]]
) -> None:
    with tempfile.TemporaryDirectory() as root:
        driver = RawDriver(Path(root))
        driver.create_disk(DISK, size)
        model = bytearray(size)

        def apply(writes: list[tuple[int, int, int]]) -> None:
            for raw_offset, raw_length, fill in writes:
                offset = raw_offset % size
                data = bytes([fill]) * min(raw_length, size - offset)
                driver.write(DISK, offset, data)
                model[offset : offset + len(data)] = data

        apply(before)
        snapshot_content = bytes(model)
        checksum = driver.create_snapshot(DISK, SNAP, _ignore)
        assert checksum == reference_block_checksum(snapshot_content)
        sha = hashlib.sha256(snapshot_content).hexdigest()
        assert driver.snapshot_sha256(DISK, SNAP) == sha
        apply(after)
        driver.restore_snapshot(DISK, SNAP, checksum, _ignore)
        assert driver.disk_sha256(DISK) == sha
        assert driver.read(DISK, 0, size) == snapshot_content
