"""Block tables (issue #14): a snapshot hashes only what changed since its parent, Apply
trusts a sealed table instead of re-reading the data, and nothing wrong is ever trusted.

Every driver on the storage it is built for: qcow2 on the test's filesystem, raw on a real
reflink XFS (FIEMAP finds the shared extents) and raw on the plain filesystem (a full copy).
The truth each table is compared with is ``snapshot_checksum``, which reads everything.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.support.mounts import loop_mounted

from lightkeeper.storage import ChecksumMismatch, Qcow2Driver, RawDriver, StorageDriver
from lightkeeper.storage.blocks import BlockTable, changed_blocks
from lightkeeper.storage.checksum import BLOCK_SIZE

MiB = 1024 * 1024
DISK = "lhdisk-ab12cd34"
SIZE = 64 * MiB


def _ignore(_: int) -> None:
    pass


@dataclass
class Setup:
    """A driver and what it read: ``chunks`` counts the data chunks hashed (the fault hook)."""

    kind: str
    root: Path
    driver: StorageDriver
    chunks: list[int] = field(default_factory=lambda: [0])

    def hashed(self, action: object) -> int:
        """Chunks hashed while `action()` ran."""
        before = self.chunks[0]
        action()  # type: ignore[operator]
        return self.chunks[0] - before


@pytest.fixture(params=["qcow2", "raw-reflink", "raw-copy"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    chunks = [0]

    def count() -> None:
        chunks[0] += 1

    kind = request.param
    if kind == "raw-reflink":
        with loop_mounted(tmp_path, "xfs", 1024 * MiB) as mount:
            yield Setup(kind, mount, RawDriver(mount, on_chunk=count), chunks)
        return
    cls = Qcow2Driver if kind == "qcow2" else RawDriver
    yield Setup(kind, tmp_path, cls(tmp_path, on_chunk=count), chunks)


def _filled(setup: Setup) -> None:
    """A disk whose every block holds data (written through the driver)."""
    setup.driver.create_disk(DISK, SIZE)
    for offset in range(0, SIZE, 8 * MiB):
        setup.driver.write(DISK, offset, os.urandom(8 * MiB))


def test_incremental_tables_equal_the_full_checksum(setup: Setup) -> None:
    """Rounds of writes, snapshots and rollbacks: every returned checksum is what reading
    the whole snapshot gives, and after the first, a snapshot of a 1 MiB change hashes at
    most one chunk (two blocks at most: the write may straddle a boundary)."""
    driver = setup.driver
    _filled(setup)
    rng = random.Random(14)
    snapshots: dict[str, str] = {}
    for round_ in range(5):
        offset = rng.randrange(0, SIZE - MiB)
        driver.write(DISK, offset, os.urandom(MiB // 2))
        snap = f"lhsnap-round{round_}"
        hashed = setup.hashed(
            lambda snap=snap: snapshots.__setitem__(  # type: ignore[misc]
                snap, driver.create_snapshot(DISK, snap, _ignore)
            )
        )
        assert snapshots[snap] == driver.snapshot_checksum(DISK, snap), round_
        if round_ and setup.kind != "raw-copy":
            assert hashed <= 1, (round_, hashed)
        if round_ == 2:  # roll back to an older one: the next parent is the one rolled to
            driver.restore_snapshot(DISK, "lhsnap-round0", snapshots["lhsnap-round0"], _ignore)
    assert sorted(snapshots) == sorted(ref.snapshot_id for ref in driver.snapshots())


def test_apply_of_a_sealed_snapshot_reads_nothing(setup: Setup) -> None:
    driver = setup.driver
    _filled(setup)
    checksum = driver.create_snapshot(DISK, "lhsnap-sealed", _ignore)
    want = driver.disk_sha256(DISK)
    driver.write(DISK, 3 * MiB, b"later")
    hashed = setup.hashed(lambda: driver.restore_snapshot(DISK, "lhsnap-sealed", checksum, _ignore))
    assert driver.disk_sha256(DISK) == want
    if setup.kind != "raw-copy":  # a full copy moves the data anyway (without hashing it)
        assert hashed == 0


def _corrupt_snapshot_byte(setup: Setup, snapshot_id: str, offset: int) -> None:
    """Flip one byte of the snapshot's data at logical `offset`, bypassing the driver."""
    if setup.kind == "qcow2":
        place = _qcow2_place(setup, snapshot_id, offset)
        path = setup.root / "disks" / f"{DISK}.qcow2"
    else:
        place, path = offset, setup.root / "snapshots" / f"{snapshot_id}.img"
        path.chmod(0o600)
    with path.open("r+b") as handle:
        handle.seek(place)
        byte = handle.read(1)
        handle.seek(place)
        handle.write(bytes([byte[0] ^ 0xFF]))


def _qcow2_place(setup: Setup, snapshot_id: str, offset: int) -> int:
    """The host offset of a snapshot's byte, from the cluster map its table keeps."""
    table_path = setup.root / "disks" / f"{DISK}.snapshots" / f"{snapshot_id}.blocks"
    table = BlockTable.decode(table_path.read_bytes())
    for start, length, place in json.loads(table.seal)["map"]:
        if start <= offset < start + length:
            assert place is not None and place >= 0
            return int(place) + offset - start
    raise AssertionError(f"no data at {offset}")


@pytest.mark.parametrize("when", ["before the previous snapshot", "after it"])
def test_apply_refuses_a_corrupted_byte(setup: Setup, when: str) -> None:
    """One byte of the second snapshot, in a block its table inherited from the first (written
    before it) or in one it hashed itself (written after): Apply refuses, disk untouched."""
    driver = setup.driver
    _filled(setup)
    driver.create_snapshot(DISK, "lhsnap-first", _ignore)
    driver.write(DISK, 40 * MiB, os.urandom(MiB))
    checksum = driver.create_snapshot(DISK, "lhsnap-second", _ignore)
    driver.write(DISK, 0, os.urandom(MiB))  # the disk moves on: nothing else shares block 0
    driver.write(DISK, 40 * MiB, os.urandom(MiB))
    current = driver.disk_sha256(DISK)
    offset = 10 * MiB + 123 if when.startswith("before") else 40 * MiB + 77
    if setup.kind == "qcow2" and when.startswith("before"):
        offset = 123  # block 0: rewritten since, so only the snapshots hold its old cluster
    _corrupt_snapshot_byte(setup, "lhsnap-second", offset)
    with pytest.raises(ChecksumMismatch):
        driver.restore_snapshot(DISK, "lhsnap-second", checksum, _ignore)
    assert driver.disk_sha256(DISK) == current
    with pytest.raises(ChecksumMismatch):
        driver.verify_snapshot(DISK, "lhsnap-second", checksum, _ignore)


def test_a_missing_or_torn_table_is_verified_not_trusted(setup: Setup) -> None:
    """A crash before the table was saved, or a torn one: Apply verifies the data whole and
    rolls back (a good snapshot never looks corrupt), and the table is sealed again."""
    driver = setup.driver
    _filled(setup)
    checksum = driver.create_snapshot(DISK, "lhsnap-table", _ignore)
    want = driver.disk_sha256(DISK)
    (table,) = setup.root.rglob("lhsnap-table.blocks")
    table.write_bytes(table.read_bytes()[:-5])
    driver.write(DISK, 0, b"later")
    hashed = setup.hashed(lambda: driver.restore_snapshot(DISK, "lhsnap-table", checksum, _ignore))
    assert hashed > 0 and driver.disk_sha256(DISK) == want
    assert BlockTable.decode(table.read_bytes()).checksum == checksum  # sealed again
    if setup.kind != "raw-copy":  # trusted from now on: the next Apply reads nothing
        driver.write(DISK, 0, b"later")
        restore = lambda: driver.restore_snapshot(DISK, "lhsnap-table", checksum, _ignore)  # noqa: E731
        assert setup.hashed(restore) == 0


def test_verify_renews_the_seal_and_finds_nothing_wrong(setup: Setup) -> None:
    driver = setup.driver
    _filled(setup)
    checksum = driver.create_snapshot(DISK, "lhsnap-verified", _ignore)
    seen: list[int] = []
    read: list[int] = []
    driver.verify_snapshot(DISK, "lhsnap-verified", checksum, seen.append, pace=read.append)
    assert seen[-1] == 100 and sum(read) == SIZE


def test_a_foreign_write_to_a_qcow2_image_ends_the_trust(tmp_path: Path) -> None:
    """Something other than the driver wrote the image (a guest, a tool): every snapshot is
    verified whole by its next Apply, and then trusted again."""
    chunks = [0]

    def count() -> None:
        chunks[0] += 1

    driver = Qcow2Driver(tmp_path, on_chunk=count)
    setup = Setup("qcow2", tmp_path, driver, chunks)
    _filled(setup)
    checksum = driver.create_snapshot(DISK, "lhsnap-trust", _ignore)
    image = tmp_path / "disks" / f"{DISK}.qcow2"
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 7 0 64k", str(image)],
        check=True,
        capture_output=True,
    )
    assert (
        setup.hashed(lambda: driver.restore_snapshot(DISK, "lhsnap-trust", checksum, _ignore)) > 0
    )
    driver.write(DISK, 0, b"own write")
    assert (
        setup.hashed(lambda: driver.restore_snapshot(DISK, "lhsnap-trust", checksum, _ignore)) == 0
    )


def test_changed_blocks_compares_places_not_timestamps() -> None:
    B = BLOCK_SIZE
    parent = [(0, 4 * B, 1000 * B)]
    same = [(0, 2 * B, 1000 * B), (2 * B, 2 * B, 1002 * B)]  # split differently, same places
    assert changed_blocks(4 * B, same, parent, 4 * B) == []
    moved = [(0, B, 1000 * B), (B, 10, 5000 * B), (B + 10, 3 * B - 10, 1001 * B + 10)]
    assert changed_blocks(4 * B, moved, parent, 4 * B) == [1]
    holes = [(0, B, 1000 * B)]  # the rest reads as zeros now
    assert changed_blocks(4 * B, holes, parent, 4 * B) == [1, 2, 3]
    assert changed_blocks(6 * B, parent, parent, 4 * B) == [4, 5]  # grown since
    assert changed_blocks(2 * B, [(0, 2 * B, -1)], [(0, 2 * B, -1)], 2 * B) == [0, 1]  # unknown
    assert changed_blocks(2 * B, [], [], 2 * B) == []  # zeros in both
