"""Block tables: what makes a snapshot's checksum cost O(data changed), not O(data).

A snapshot's block checksum (checksum.py) is ``sha256(digest_0 + ... + digest_n + size)``
over the digests of its 1 MiB blocks. The list of those digests, kept beside the snapshot,
is its *block table*: recomputing the checksum from a table is self-verifying against the
value the database recorded, and the next snapshot of the same disk copies every digest of
a block the storage proves unchanged since then, hashing only the rest.

"Unchanged" is never guessed from timestamps or contents: both snapshots are described as
*segments* — where each logical range lives in the storage (an XFS extent shared by reflink,
a qcow2 cluster shared by an internal snapshot) — and a block is unchanged when every byte of
it lives in the same place in both, or reads as zeros in both. Copy-on-write storage never
rewrites a place a snapshot still uses, so the same place holds the same bytes.

A table file also carries the driver's *seal*: evidence (opaque here) that nothing has written
the snapshot's data since its digests were last checked against it. Rollback trusts a table
whose seal still holds and whose checksum is the recorded one, and verifies everything
otherwise (see docs/reliability.md, "What is checked when").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import ChunkHook, ProgressCallback, no_chunk_hook
from .checksum import BLOCK_CHECKSUM_PREFIX, BLOCK_SIZE, zero_block_digest
from .copy import BUFFERS, CHUNK, pread_into
from .files import replace_file, unlink_quiet

DIGEST = 32
"""Bytes of one block digest (sha256)."""

UNKNOWN = -1
"""A segment's place when the storage cannot say where its bytes are (delayed allocation,
compressed or inline data): such a range never counts as unchanged."""

Segment = tuple[int, int, int | None]
"""``(logical offset, length, place)``: the bytes at ``place`` (an offset in the storage's
own address space), ``None`` for a range that reads as zeros, or UNKNOWN. Sorted, disjoint;
gaps read as zeros."""

Reader = Callable[[int, memoryview], None]
"""Fills the view with the snapshot's logical bytes starting at an offset."""

_MAGIC = b"LKBLOCKS1\n"
_HEADER = len(_MAGIC) + 8 + 4


class TableDamaged(ValueError):
    """A table file that is torn, truncated or not ours: treated as no table at all."""


def block_count(size: int) -> int:
    return -(-size // BLOCK_SIZE)


@dataclass(frozen=True, slots=True)
class BlockTable:
    """The digests of a snapshot's blocks (``DIGEST`` bytes each, holes included)."""

    size: int
    digests: bytes
    seal: bytes = b""
    """The driver's evidence that the data still matches (see the module docstring)."""

    def __post_init__(self) -> None:
        if len(self.digests) != block_count(self.size) * DIGEST:
            raise TableDamaged(f"{len(self.digests)} digest bytes for a {self.size} B disk")

    @property
    def checksum(self) -> str:
        """The snapshot's block checksum, the value create_snapshot returns."""
        outer = hashlib.sha256(self.digests)
        outer.update(self.size.to_bytes(8, "big"))
        return BLOCK_CHECKSUM_PREFIX + outer.hexdigest()

    def resealed(self, seal: bytes) -> BlockTable:
        return BlockTable(self.size, self.digests, seal)

    def encode(self) -> bytes:
        body = b"".join((_MAGIC, self.size.to_bytes(8, "big"), len(self.seal).to_bytes(4, "big")))
        body += self.seal + self.digests
        return body + hashlib.sha256(body).digest()

    @classmethod
    def decode(cls, data: bytes) -> BlockTable:
        body, check = data[:-DIGEST], data[-DIGEST:]
        if len(data) < _HEADER + DIGEST or not body.startswith(_MAGIC):
            raise TableDamaged("not a block table")
        if hashlib.sha256(body).digest() != check:
            raise TableDamaged("block table fails its own checksum")
        size = int.from_bytes(body[len(_MAGIC) : len(_MAGIC) + 8], "big")
        seal_len = int.from_bytes(body[len(_MAGIC) + 8 : _HEADER], "big")
        seal = body[_HEADER : _HEADER + seal_len]
        return cls(size, body[_HEADER + seal_len :], seal)


def write_table(path: Path, table: BlockTable) -> None:
    """Atomically (re)place the table file (owner-only); raises OSError like every file
    helper."""
    replace_file(path, table.encode())


def drop_orphan_tables(disks: Path, record_suffix: str) -> int:
    """Remove the tables under ``disks/*.snapshots/`` whose snapshot record (same stem,
    `record_suffix`) is gone: left by a crash between the two removals. Returns how many."""
    return sum(
        unlink_quiet(table)
        for table in disks.glob("*.snapshots/*.blocks")
        if not table.with_suffix(record_suffix).exists()
    )


def read_table(path: Path, size: int) -> BlockTable | None:
    """The table at `path` if it is whole and describes a disk of `size` bytes, else None."""
    try:
        table = BlockTable.decode(path.read_bytes())
    except (FileNotFoundError, TableDamaged):
        return None
    return table if table.size == size else None


# -- what changed ------------------------------------------------------------------------


def _pieces(segments: Iterable[Segment], size: int) -> Iterator[tuple[int, int, int | None]]:
    """``(start, end, place of start)`` covering [0, size): gaps become zero pieces."""
    pos = 0
    for start, length, place in segments:
        if start >= size:
            break
        end = min(start + length, size)
        if start > pos:
            yield pos, start, None
        begin = max(pos, start)
        if end > begin:
            at = place if place is None or place < 0 else place + (begin - start)
            yield begin, end, at
        pos = max(pos, end)
    if pos < size:
        yield pos, size, None


def _same(a: int | None, b: int | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a >= 0 and a == b


def changed_blocks(
    size: int, current: Sequence[Segment], parent: Sequence[Segment], parent_size: int
) -> list[int]:
    """Indexes of the blocks of a `size`-byte disk (`current`) that may differ from its
    parent (`parent`, `parent_size` bytes): any byte whose place is not the same in both.
    Blocks past the parent's last whole block always count as changed."""
    limit = min(size, parent_size - parent_size % BLOCK_SIZE)
    changed: set[int] = set(range(limit // BLOCK_SIZE, block_count(size)))
    mine, theirs = _pieces(current, limit), _pieces(parent, limit)
    a, b = next(mine, None), next(theirs, None)
    while a is not None and b is not None:
        start = max(a[0], b[0])
        end = min(a[1], b[1])
        at_a = a[2] if a[2] is None or a[2] < 0 else a[2] + (start - a[0])
        at_b = b[2] if b[2] is None or b[2] < 0 else b[2] + (start - b[0])
        if end > start and not _same(at_a, at_b):
            changed.update(range(start // BLOCK_SIZE, (end - 1) // BLOCK_SIZE + 1))
        if a[1] == end:
            a = next(mine, None)
        if b[1] == end:
            b = next(theirs, None)
    return sorted(changed)


def _runs(blocks: Sequence[int]) -> Iterator[tuple[int, int]]:
    """Consecutive block indexes as ``(first, count)``."""
    i = 0
    while i < len(blocks):
        j = i
        while j + 1 < len(blocks) and blocks[j + 1] == blocks[j] + 1:
            j += 1
        yield blocks[i], j - i + 1
        i = j + 1


def inherited_table(
    size: int,
    parent: BlockTable,
    changed: Sequence[int],
    read: Reader,
    progress: ProgressCallback,
    on_chunk: ChunkHook = no_chunk_hook,
) -> BlockTable:
    """The parent's digests with the `changed` blocks hashed afresh from `read`; `progress`
    counts the changed bytes, `on_chunk` runs after each chunk (fault injection)."""
    total = max(1, len(changed)) * BLOCK_SIZE
    done = 0
    digests = bytearray(parent.digests[: block_count(size) * DIGEST])
    digests.extend(bytes(block_count(size) * DIGEST - len(digests)))
    per_chunk = CHUNK // BLOCK_SIZE
    with BUFFERS.lent() as buf:
        for first, count in _runs(changed):
            for lo in range(first, first + count, per_chunk):
                hi = min(lo + per_chunk, first + count)
                offset = lo * BLOCK_SIZE
                length = min(hi * BLOCK_SIZE, size) - offset
                view = buf[:length]
                read(offset, view)
                for block in range(lo, hi):
                    start = (block - lo) * BLOCK_SIZE
                    piece = view[start : min(start + BLOCK_SIZE, length)]
                    digests[block * DIGEST : (block + 1) * DIGEST] = hashlib.sha256(piece).digest()
                on_chunk()
                done += length
                progress(min(100, done * 100 // total))
    return BlockTable(size, bytes(digests))


def zero_table(size: int) -> BlockTable:
    """The table of an all-zero disk (every block a hole)."""
    full, rest = divmod(size, BLOCK_SIZE)
    digests = zero_block_digest(BLOCK_SIZE) * full
    if rest:
        digests += zero_block_digest(rest)
    return BlockTable(size, digests)


def read_segments(fd: int, segments: Sequence[Segment]) -> Reader:
    """A Reader over storage whose ``place`` values are offsets in file `fd` (qcow2 host
    offsets, say): zero pieces are zero-filled, UNKNOWN raises ValueError (caller bug)."""

    def read(offset: int, view: memoryview) -> None:
        end = offset + len(view)
        for start, stop, place in _pieces(segments, end):
            if stop <= offset:
                continue
            lo = max(start, offset)
            target = view[lo - offset : stop - offset]
            if place is None:
                target[:] = bytes(len(target))
                continue
            if place < 0:
                raise ValueError(f"no known place for bytes at {lo}")
            pread_into(fd, target, place + (lo - start))

    return read
