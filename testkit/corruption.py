"""Plant a one-byte corruption in snapshot data, behind the server's back, as a decaying
medium or a stray writer would (testkit/crash.py; the driver tests do the same in
tests/storage/test_incremental.py).

Never a byte the disk itself holds, so the model of the disk's content stays right, and the
caller learns every snapshot the byte belongs to. raw: any byte of the snapshot's image, which
is its alone (a full copy, or a reflinked clone that a write un-shares). qcow2: a byte of a
cluster that the snapshot's cluster map names and the active layer's (``qemu-img map``)
does not; every other snapshot whose map names it too is corrupted with it. A snapshot's map
is the one its block table was sealed with, or, for a snapshot with no table yet (a kill
before the table was written), qemu's own: the map of a copy of the image rolled back to it
(an internal snapshot's clusters keep their host offsets when it is applied).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lightkeeper.storage.blocks import BlockTable

Segment = tuple[int, int, int | None]


@dataclass(frozen=True)
class Planted:
    offset: int
    """The flipped byte's logical offset in the snapshot."""
    snapshot_ids: frozenset[str]
    """Every snapshot that holds the byte (raw: the one)."""


def plant(
    data_dir: Path,
    storage: str,
    disk_id: str,
    snapshot_id: str,
    rng: random.Random,
    allowed: set[str],
) -> Planted | None:
    """Flip one byte of the snapshot that the disk does not hold and that no snapshot
    outside ``allowed`` holds; None when there is no such byte."""
    if storage == "rbd":
        return None  # RADOS keeps no way to write a snapshot (and BlueStore checksums data)
    if storage == "raw":
        image = data_dir / "snapshots" / f"{snapshot_id}.img"
        offset = rng.randrange(image.stat().st_size)
        image.chmod(0o600)
        try:
            _flip(image, offset)
        finally:
            image.chmod(0o400)
        return Planted(offset, frozenset({snapshot_id}))
    return _plant_qcow2(data_dir / "disks", disk_id, snapshot_id, rng, allowed)


def data_offset(data_dir: Path, disk_id: str, snapshot_id: str) -> int | None:
    """qcow2: the logical offset of the snapshot's first data cluster (rewriting the disk
    there leaves that cluster to the snapshots alone)."""
    mine = _snapshot_map(data_dir / "disks", disk_id, snapshot_id)
    places = [start for start, _, place in mine or [] if place is not None and place >= 0]
    return places[0] if places else None


def _plant_qcow2(
    disks: Path, disk_id: str, snapshot_id: str, rng: random.Random, allowed: set[str]
) -> Planted | None:
    image = disks / f"{disk_id}.qcow2"
    info = json.loads(_qemu_img("info", "--output=json", "-U", str(image)))
    cluster = int(info["cluster-size"])
    maps: dict[str, set[int]] = {}
    for record in (disks / f"{disk_id}.snapshots").glob("*.size"):
        found = _snapshot_map(disks, disk_id, record.stem)
        if found is None:
            return None  # a snapshot whose clusters are unknown might hold any of them
        maps[record.stem] = _clusters(found, cluster)
    mine = _snapshot_map(disks, disk_id, snapshot_id) or []
    active = _clusters(_active_map(image), cluster)
    own = [
        (start + n * cluster, place + n * cluster)
        for start, length, place in mine
        if place is not None and place >= 0
        for n in range(length // cluster)
        if (place + n * cluster) // cluster not in active
    ]
    rng.shuffle(own)
    for start, place in own:
        holders = {sid for sid, clusters in maps.items() if place // cluster in clusters}
        if holders <= allowed:
            within = rng.randrange(cluster)
            _flip(image, place + within)
            return Planted(start + within, frozenset(holders | {snapshot_id}))
    return None


def _snapshot_map(disks: Path, disk_id: str, snapshot_id: str) -> list[Segment] | None:
    """The snapshot's cluster map: its table's, else qemu's (see the module docstring);
    None if the image has no such snapshot."""
    found = _table_map(disks / f"{disk_id}.snapshots" / f"{snapshot_id}.blocks")
    image = disks / f"{disk_id}.qcow2"
    if found is not None or not image.exists():
        return found
    with tempfile.TemporaryDirectory(prefix="lk-plant-") as scratch:
        copy = Path(scratch) / "image.qcow2"
        shutil.copyfile(image, copy)
        applied = subprocess.run(
            ["qemu-img", "snapshot", "-a", snapshot_id, str(copy)], capture_output=True
        )
        return _active_map(copy) if applied.returncode == 0 else None


def _table_map(path: Path) -> list[Segment] | None:
    """The cluster map a qcow2 block table was sealed with (None: none, or no table)."""
    try:
        table = BlockTable.decode(path.read_bytes())
        found = json.loads(table.seal)["map"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None if found is None else [(int(a), int(b), c) for a, b, c in found]


def _active_map(image: Path) -> list[Segment]:
    entries = json.loads(_qemu_img("map", "--output=json", "-U", str(image)))
    return [(e["start"], e["length"], e.get("offset")) for e in entries if e.get("data")]


def _clusters(segments: list[Segment], cluster: int) -> set[int]:
    return {
        n
        for _, length, place in segments
        if place is not None and place >= 0
        for n in range(place // cluster, (place + length - 1) // cluster + 1)
    }


def _flip(path: Path, place: int) -> None:
    fd = os.open(path, os.O_RDWR)
    try:
        byte = os.pread(fd, 1, place) or b"\0"
        os.pwrite(fd, bytes([byte[0] ^ 0xFF]), place)
        os.fsync(fd)
    finally:
        os.close(fd)


def _qemu_img(*args: str) -> str:
    return subprocess.run(["qemu-img", *args], capture_output=True, text=True, check=True).stdout
