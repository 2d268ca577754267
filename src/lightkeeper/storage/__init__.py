"""Storage drivers: move disk bytes behind one contract (base.py), modelled on Cinder volume
drivers; DRIVERS is the registry (a new driver: its module plus one line there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from . import faults
from .base import (
    UNRECORDED_DISK,
    Capabilities,
    ChecksumMismatch,
    ChunkHook,
    DiskBusy,
    DiskExists,
    DiskNotFound,
    Fence,
    LiveSnapshotUnsupported,
    NoSpace,
    Pace,
    ProgressCallback,
    SnapshotBusy,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotRef,
    StorageDriver,
    StorageError,
    StorageIOError,
)
from .qcow2 import Qcow2Driver
from .raw import RawDriver
from .rbd import RbdDriver

__all__ = [
    "DRIVERS",
    "Capabilities",
    "ChecksumMismatch",
    "ChunkHook",
    "DiskBusy",
    "DiskExists",
    "DiskNotFound",
    "Fence",
    "LiveSnapshotUnsupported",
    "NoSpace",
    "Pace",
    "ProgressCallback",
    "Qcow2Driver",
    "RawDriver",
    "RbdDriver",
    "SnapshotBusy",
    "SnapshotExists",
    "SnapshotNotFound",
    "SnapshotRef",
    "StorageDriver",
    "StorageError",
    "StorageIOError",
    "UNRECORDED_DISK",
    "make_driver",
]


class DriverFactory(Protocol):
    """How the registry builds a driver: its root, a hook its copies call per chunk and one
    it calls before it writes a block table (fault injection, storage/faults.py)."""

    def __call__(
        self, root: Path, *, on_chunk: ChunkHook = ..., on_table: ChunkHook = ...
    ) -> StorageDriver: ...


# The registry: a new driver is its module plus one line here. Typing the entries as
# factories of StorageDriver makes mypy check each driver's conformance.
DRIVERS: dict[str, DriverFactory] = {"qcow2": Qcow2Driver, "raw": RawDriver, "rbd": RbdDriver}


def make_driver(name: str, root: Path, **options: Any) -> StorageDriver:
    """Build the driver named in configuration, rooted at `root`: the composition root of
    storage, which is also where fault injection (LIGHTKEEPER_FAULTS, tests only) is wired
    in as the drivers' hooks; a malformed setting fails here. ``options`` are the driver's
    own settings (rbd: pool, namespace, conf, client)."""
    faults.load()
    try:
        factory = DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise ValueError(f"unknown storage driver {name!r} (known: {known})") from None
    return factory(root, **faults.hooks(), **options)
