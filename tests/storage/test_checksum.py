"""Block checksum: matches its definition, ignores allocation layout, and skips holes."""

from __future__ import annotations

import hashlib
import os
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightkeeper.storage import ChecksumMismatch, RawDriver
from lightkeeper.storage import checksum as checksum_mod
from lightkeeper.storage.checksum import BlockHasher, PlainSha256, block_checksum, plain_sha256

MiB = 1024 * 1024
GiB = 1024 * MiB
SIZE = 4 * MiB + 1000  # blocks: 0 data, 1 data, 2 hole, 3 data, 4 (short) hole
WRITES = ((5, b"abc"), (MiB + 100, bytes(range(256)) * 20), (3 * MiB + 10, b"tail"))


def reference_block_checksum(content: bytes) -> str:
    """The checksum straight from its definition, hashing every block including zeros."""
    digests = b"".join(
        hashlib.sha256(content[i : i + MiB]).digest() for i in range(0, len(content), MiB)
    )
    return "b1m-sha256:" + hashlib.sha256(digests + len(content).to_bytes(8, "big")).hexdigest()


def _model(size: int, writes: tuple[tuple[int, bytes], ...] | list[tuple[int, bytes]]) -> bytes:
    content = bytearray(size)
    for offset, data in writes:
        content[offset : offset + len(data)] = data
    return bytes(content)


def _sparse_file(path: Path, size: int, writes: list[tuple[int, bytes]]) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
        for offset, data in writes:
            os.pwrite(f.fileno(), data, offset)
    return path


def _checksums(path: Path) -> tuple[str, str]:
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        return block_checksum(f.fileno(), size), plain_sha256(f.fileno(), size)


def test_sparse_file_checksum_equals_fully_allocated_copy(tmp_path: Path) -> None:
    content = _model(SIZE, WRITES)
    sparse = _sparse_file(tmp_path / "sparse.img", SIZE, list(WRITES))
    full = tmp_path / "full.img"
    full.write_bytes(content)  # every zero written explicitly
    assert sparse.stat().st_blocks * 512 < MiB
    assert full.stat().st_blocks * 512 >= SIZE

    expected = (reference_block_checksum(content), hashlib.sha256(content).hexdigest())
    assert _checksums(sparse) == expected
    assert _checksums(full) == expected


@pytest.mark.parametrize(
    "position",
    [
        0,  # hole byte inside a block that holds data
        6,  # data byte
        MiB + 200,  # data byte in the second block
        2 * MiB,  # first byte of an all-hole block
        2 * MiB + MiB // 2,  # middle of an all-hole block
        3 * MiB + 10,  # data byte
        4 * MiB,  # first byte of the short final all-hole block
        SIZE - 1,  # last byte of the disk
    ],
)
def test_changing_any_single_byte_changes_the_checksum(tmp_path: Path, position: int) -> None:
    content = _model(SIZE, WRITES)
    changed = (position, bytes([content[position] ^ 0x5A]))
    original = _sparse_file(tmp_path / "a.img", SIZE, list(WRITES))
    modified = _sparse_file(tmp_path / "b.img", SIZE, [*WRITES, changed])

    before, after = _checksums(original)[0], _checksums(modified)[0]
    assert before != after
    assert after == reference_block_checksum(_model(SIZE, [*WRITES, changed]))


def test_size_is_part_of_the_checksum() -> None:
    shorter, longer = BlockHasher(2 * MiB), BlockHasher(2 * MiB + 1)
    assert shorter.hexdigest() != longer.hexdigest()
    assert longer.hexdigest() == reference_block_checksum(bytes(2 * MiB + 1))


def test_hasher_rejects_ranges_out_of_order_or_beyond_size() -> None:
    for hasher in (BlockHasher(MiB), PlainSha256(MiB)):
        hasher.update_range(100, b"x")
        with pytest.raises(ValueError):
            hasher.update_range(50, b"y")
        with pytest.raises(ValueError):
            hasher.update_range(MiB - 1, b"yz")


def test_holes_are_not_hashed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count every byte given to sha256: a 1 GiB content with 10 data bytes costs ~1 block."""
    hashed = [0]

    class Counting:
        def __init__(self, data: bytes | memoryview = b"") -> None:
            self._hash = hashlib.sha256()
            self.update(data)

        def update(self, data: bytes | memoryview) -> None:
            hashed[0] += len(data)
            self._hash.update(data)

        def digest(self) -> bytes:
            return self._hash.digest()

        def hexdigest(self) -> str:
            return self._hash.hexdigest()

    checksum_mod.zero_block_digest(MiB)  # the zero-block digest is computed once per process
    checksum_mod._zero_run()
    monkeypatch.setattr(checksum_mod, "hashlib", types.SimpleNamespace(sha256=Counting))
    hasher = BlockHasher(GiB)
    hasher.update_range(512 * MiB + 3, b"0123456789")
    result = hasher.hexdigest()
    assert hashed[0] <= MiB + 1024 * 32 + 8  # one partial block + the digest list + size
    monkeypatch.undo()
    assert result.startswith("b1m-sha256:")


_extent = st.tuples(st.integers(0, 3 * MiB), st.integers(1, 600 * 1024))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(1, 3 * MiB + 4096),
    writes=st.lists(st.tuples(_extent, st.integers(0, 255)), max_size=5),
    zeroed=st.lists(st.tuples(_extent, st.sampled_from(["write", "fallocate"])), max_size=5),
    splits=st.lists(st.integers(1, 3 * MiB), max_size=8),
)
def test_checksum_depends_only_on_logical_content(
    tmp_path_factory: pytest.TempPathFactory,
    size: int,
    writes: list[tuple[tuple[int, int], int]],
    zeroed: list[tuple[tuple[int, int], str]],
    splits: list[int],
) -> None:
    """Layout A holds only the written data; layout B also allocates random zero ranges
    (written zeros or fallocated extents) and writes its data in a different order."""
    data = []
    for (offset, length), fill in writes:
        offset %= size
        data.append((offset, bytes([fill]) * min(length, size - offset)))
    content = _model(size, data)
    directory = tmp_path_factory.mktemp("layouts")

    layout_a = _sparse_file(directory / "a.img", size, data)
    layout_b = _sparse_file(directory / "b.img", size, [])
    with layout_b.open("r+b") as f:
        for (offset, length), how in zeroed:
            offset %= size
            length = min(length, size - offset)
            if how == "write":
                os.pwrite(f.fileno(), content[offset : offset + length], offset)
            else:
                os.posix_fallocate(f.fileno(), offset, length)
        for offset, chunk in reversed(_runs_of_nonzero(content)):
            os.pwrite(f.fileno(), chunk, offset)

    expected = (reference_block_checksum(content), hashlib.sha256(content).hexdigest())
    assert _checksums(layout_a) == expected
    assert _checksums(layout_b) == expected

    # The hasher itself: any split of the content into fed ranges and implied holes agrees,
    # as long as every omitted range is zeros.
    cuts = sorted({0, size, *(cut % size for cut in splits)})
    hasher = BlockHasher(size)
    for start, end in zip(cuts, cuts[1:], strict=False):
        if any(content[start:end]) or (start // 7) % 2:
            hasher.update_range(start, content[start:end])
    assert hasher.hexdigest() == expected[0]


def _runs_of_nonzero(content: bytes) -> list[tuple[int, bytes]]:
    runs: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(content):
        if content[pos] == 0:
            pos += 1
            continue
        end = pos
        while end < len(content) and content[end] != 0:
            end += 1
        runs.append((pos, content[pos:end]))
        pos = end
    return runs


def test_large_sparse_disk_snapshots_and_restores_in_time_proportional_to_data(
    tmp_path: Path,
) -> None:
    """10 GiB disk, 1 MiB of data: a plain sha256 alone would take ~6 s here. (How long it
    takes is measured by ``python -m bench --only datapath``, not asserted: see issue #12.)"""
    driver = RawDriver(tmp_path)
    disk, snap = "lhdisk-big", "lhsnap-big"
    payload = os.urandom(MiB)
    driver.create_disk(disk, 10 * GiB)
    driver.write(disk, 5 * GiB + 12345, payload)

    checksum = driver.create_snapshot(disk, snap, lambda _: None)
    driver.write(disk, 5 * GiB + 12345, b"changed")
    driver.write(disk, 7 * GiB, b"new data in a hole")
    driver.restore_snapshot(disk, snap, checksum, lambda _: None)
    assert driver.snapshot_checksum(disk, snap) == checksum
    assert driver.read(disk, 5 * GiB + 12345, MiB) == payload
    assert driver.read(disk, 7 * GiB, 18) == bytes(18)


def test_restore_accepts_a_legacy_plain_sha256(tmp_path: Path) -> None:
    """Snapshots recorded before block checksums carry a plain sha256; they stay restorable."""
    driver = RawDriver(tmp_path)
    driver.create_disk("lhdisk-old", 2 * MiB)
    driver.write("lhdisk-old", MiB - 2, b"legacy")
    driver.create_snapshot("lhdisk-old", "lhsnap-old", lambda _: None)
    legacy = driver.snapshot_sha256("lhdisk-old", "lhsnap-old")
    driver.write("lhdisk-old", 0, b"later")

    with pytest.raises(ChecksumMismatch):
        driver.restore_snapshot("lhdisk-old", "lhsnap-old", "0" * 64, lambda _: None)
    assert driver.read("lhdisk-old", 0, 5) == b"later"
    driver.restore_snapshot("lhdisk-old", "lhsnap-old", legacy.upper(), lambda _: None)
    assert driver.disk_sha256("lhdisk-old") == legacy
