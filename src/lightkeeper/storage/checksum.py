"""Content checksums that are cheap on sparse images.

Two flavours, both fed by ``update_range(offset, data)`` calls in ascending offset order
(bytes never passed in are holes, i.e. zeros):

* ``BlockHasher`` — the snapshot integrity checksum ("block digest list"). The logical
  content is cut into 1 MiB blocks (the last may be shorter); each block's digest is
  ``sha256(block)``, except that a block no data range touches takes the precomputed
  digest of a zero block of its length, so holes cost no hashing at all. The result is
  ``"b1m-sha256:" + sha256(digest_0 + ... + digest_n + size as 8-byte big-endian)``.
  A data block full of zeros has the same digest as a hole, so the value depends only on
  the logical content, never on the allocation layout (sparse copy, reflink, full copy).
* ``PlainSha256`` — plain sha256 of the logical content (holes hashed as zeros), for
  users comparing against ``sha256sum``; its cost is proportional to the disk size.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Protocol

from .base import ProgressCallback
from .copy import CHUNK, hash_sparse

BLOCK_SIZE = 1024 * 1024
BLOCK_CHECKSUM_PREFIX = "b1m-sha256:"

_ZEROS = memoryview(bytes(CHUNK))
"""Shared zero source: zero runs are hashed in CHUNK-sized updates without allocating."""
_DIGEST_SIZE = hashlib.sha256().digest_size
_HOLE_RUN_BLOCKS = 65536
"""Whole-hole blocks are fed to the outer hash in batches of this many digests (2 MiB)."""


class _Digest(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...

    def hexdigest(self) -> str: ...


class ChecksumHasher(Protocol):
    """An incremental content checksum over a file of known size, fed by data ranges."""

    def update_range(self, offset: int, data: bytes | bytearray | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


@functools.lru_cache(maxsize=8)
def zero_block_digest(length: int) -> bytes:
    """sha256 of `length` zero bytes (length <= BLOCK_SIZE), computed once per length."""
    return hashlib.sha256(_ZEROS[:length]).digest()


@functools.lru_cache(maxsize=1)
def _zero_run() -> bytes:
    """_HOLE_RUN_BLOCKS copies of the full zero-block digest, to add hole runs in bulk."""
    return zero_block_digest(BLOCK_SIZE) * _HOLE_RUN_BLOCKS


def _check_range(size: int, position: int, offset: int, length: int) -> None:
    if offset < position:
        raise ValueError(f"range at {offset} is below {position}: ranges must ascend")
    if offset + length > size:
        raise ValueError(f"range [{offset}, {offset + length}) beyond size {size}")


class BlockHasher:
    """The layout-independent "block digest list" checksum; see the module docstring."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"negative size {size}")
        self._size = size
        self._outer: _Digest = hashlib.sha256()
        self._digests = bytearray()  # the block table (blocks.py), fed beside the outer hash
        self._block: _Digest | None = None  # the block being hashed, if only partly fed
        self._pos = 0  # content before this offset has been accounted for
        self._result: str | None = None

    def update_range(self, offset: int, data: bytes | bytearray | memoryview, /) -> None:
        """Add the data at `offset`; zeros are implied for any gap since the previous range."""
        view = memoryview(data).cast("B")
        _check_range(self._size, self._pos, offset, len(view))
        self._fill_zeros(offset)
        while view:
            start = self._pos - self._pos % BLOCK_SIZE
            end = min(start + BLOCK_SIZE, self._size)
            n = min(len(view), end - self._pos)
            if self._block is None and self._pos == start and n == end - start:
                self._add(hashlib.sha256(view[:n]).digest())  # a whole block
                self._pos += n
            else:
                self._feed(view[:n], end)
            view = view[n:]

    def hexdigest(self) -> str:
        """Finish (the rest of the content is zeros) and return the prefixed checksum."""
        if self._result is None:
            self._fill_zeros(self._size)
            self._outer.update(self._size.to_bytes(8, "big"))
            self._result = BLOCK_CHECKSUM_PREFIX + self._outer.hexdigest()
        return self._result

    def digests(self) -> bytes:
        """The block digests in order (after hexdigest): the snapshot's block table."""
        self.hexdigest()
        return bytes(self._digests)

    def _add(self, digests: bytes | memoryview) -> None:
        self._outer.update(digests)
        self._digests += digests

    def _feed(self, data: memoryview, block_end: int) -> None:
        if self._block is None:
            self._block = hashlib.sha256()
        self._block.update(data)
        self._pos += len(data)
        if self._pos == block_end:
            self._add(self._block.digest())
            self._block = None

    def _fill_zeros(self, end: int) -> None:
        """Account for zeros up to `end`: untouched blocks take the cached zero digest."""
        while self._pos < end:
            if self._block is None and self._pos % BLOCK_SIZE == 0:
                whole = (end - self._pos) // BLOCK_SIZE
                if whole:
                    self._add_hole_blocks(whole)
                    continue
                if end == self._size:  # the short final block, entirely a hole
                    self._add(zero_block_digest(end - self._pos))
                    self._pos = end
                    return
            block_end = min(self._pos - self._pos % BLOCK_SIZE + BLOCK_SIZE, self._size)
            self._feed(_ZEROS[: min(end, block_end) - self._pos], block_end)

    def _add_hole_blocks(self, count: int) -> None:
        self._pos += count * BLOCK_SIZE
        run = memoryview(_zero_run())
        while count:
            n = min(count, _HOLE_RUN_BLOCKS)
            self._add(run[: n * _DIGEST_SIZE])
            count -= n


class PlainSha256:
    """sha256 of the logical content with holes hashed as zeros (cost ~ size / 1.5 GB/s)."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"negative size {size}")
        self._size = size
        self._hash: _Digest = hashlib.sha256()
        self._pos = 0

    def update_range(self, offset: int, data: bytes | bytearray | memoryview, /) -> None:
        view = memoryview(data).cast("B")
        _check_range(self._size, self._pos, offset, len(view))
        self._zeros_to(offset)
        self._hash.update(view)
        self._pos += len(view)

    def hexdigest(self) -> str:
        self._zeros_to(self._size)
        return self._hash.hexdigest()

    def _zeros_to(self, end: int) -> None:
        # Big updates from one preallocated buffer: sha256 itself is the only cost left.
        while self._pos < end:
            step = min(CHUNK, end - self._pos)
            self._hash.update(_ZEROS[:step])
            self._pos += step


def is_block_checksum(checksum: str) -> bool:
    return checksum.startswith(BLOCK_CHECKSUM_PREFIX)


def hasher_for(expected: str, size: int) -> ChecksumHasher:
    """The hasher that produces values comparable with `expected`: a block checksum, or a
    legacy plain sha256 hex recorded before block checksums existed (slow but still valid)."""
    return BlockHasher(size) if is_block_checksum(expected) else PlainSha256(size)


def block_checksum(fd: int, size: int, progress: ProgressCallback | None = None) -> str:
    """Block checksum of fd[0:size]; reads only data extents, holes cost nothing."""
    hasher = BlockHasher(size)
    hash_sparse(fd, size, hasher, progress)
    return hasher.hexdigest()


def plain_sha256(fd: int, size: int, progress: ProgressCallback | None = None) -> str:
    """Hex sha256 of the logical content of fd[0:size], holes counted as zeros."""
    hasher = PlainSha256(size)
    hash_sparse(fd, size, hasher, progress)
    return hasher.hexdigest()
