"""Validate the test guest's record log: the crash-consistency oracle (pure Python, no deps).

Record n (n >= 1) is the 4096-byte block at offset (n-1)*4096 (written by guest/init.sh):

    [0,8)       b"LKREC001"
    [8,16)      n, unsigned 64-bit little-endian
    [16,4032)   payload: b"%015d\\n" % n repeated 251 times
    [4032,4096) sha256 of bytes [0,4032) as 64 lowercase hex digits

``parse`` returns ``(k, problems)``: k is the number of leading valid records (1..k valid and
in order; the first block that is not exactly record n ends the run). A clean snapshot has no
problems. Problems are: a later block that is a valid record (a gap: a write landed while an
earlier one did not) and a block after k that starts with the magic but does not validate (a
torn or corrupt record). Blocks of any other content after k are simply unwritten space.

``quiesced`` tells whether the snapshot was taken while the guest agent held the writer at a
consistent point: then block k+1 is the quiesce marker naming k (init.sh's ``quiesce``):

    [0,8)       b"LKQUIET1"
    [8,16)      k, unsigned 64-bit little-endian
    [16,4096)   zero bytes
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

MAGIC = b"LKREC001"
QUIET_MAGIC = b"LKQUIET1"
BLOCK = 4096
_BODY = 4032
_LINES = 251


def record(n: int) -> bytes:
    """The exact bytes the guest writes as record ``n``."""
    body = MAGIC + struct.pack("<Q", n) + (b"%015d\n" % n) * _LINES
    return body + hashlib.sha256(body).hexdigest().encode()


def check(block: bytes, n: int) -> str | None:
    """None if ``block`` is record ``n``, else why not."""
    if len(block) != BLOCK:
        return f"record {n}: short block ({len(block)} bytes)"
    if block[:8] != MAGIC:
        return f"record {n}: no magic"
    (stored,) = struct.unpack("<Q", block[8:16])
    if stored != n:
        return f"record {n}: holds number {stored}"
    if hashlib.sha256(block[:_BODY]).hexdigest().encode() != block[_BODY:]:
        return f"record {n}: checksum mismatch (torn or corrupt)"
    if block != record(n):
        return f"record {n}: payload differs"
    return None


def parse(source: Path | str | bytes) -> tuple[int, list[str]]:
    """``(k, problems)`` for a raw disk image (path) or its bytes."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    count = len(data) // BLOCK
    k = 0
    while k < count and check(data[k * BLOCK : (k + 1) * BLOCK], k + 1) is None:
        k += 1
    problems: list[str] = []
    for index in range(k, count):
        block = data[index * BLOCK : (index + 1) * BLOCK]
        if block[:8] != MAGIC:
            continue
        n = index + 1
        why = check(block, n)
        problems.append(why or f"record {n} is valid but record {k + 1} is not: a gap after {k}")
    return k, problems


def marker(k: int) -> bytes:
    """The exact bytes of the quiesce marker the guest writes after record ``k``."""
    return QUIET_MAGIC + struct.pack("<Q", k) + bytes(BLOCK - 16)


def quiesced(source: Path | str | bytes, k: int) -> bool:
    """True if block k+1 of the image is the quiesce marker naming ``k`` (the last record)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return data[k * BLOCK : (k + 1) * BLOCK] == marker(k)
