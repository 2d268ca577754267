"""Storage drivers: move disk bytes behind one protocol, modelled on Cinder volume drivers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import faults
from .base import (
    ChecksumMismatch,
    DiskBusy,
    DiskExists,
    DiskNotFound,
    Fence,
    NoSpace,
    ProgressCallback,
    SnapshotBusy,
    SnapshotExists,
    SnapshotNotFound,
    StorageDriver,
    StorageError,
    StorageIOError,
)
from .qcow2 import Qcow2Driver
from .raw import RawDriver

__all__ = [
    "ChecksumMismatch",
    "DiskBusy",
    "DiskExists",
    "DiskNotFound",
    "Fence",
    "NoSpace",
    "ProgressCallback",
    "Qcow2Driver",
    "RawDriver",
    "SnapshotBusy",
    "SnapshotExists",
    "SnapshotNotFound",
    "StorageDriver",
    "StorageError",
    "StorageIOError",
    "make_driver",
]

# Typing the registry as StorageDriver factories makes mypy check each driver's conformance.
_DRIVERS: dict[str, Callable[[Path], StorageDriver]] = {"qcow2": Qcow2Driver, "raw": RawDriver}


def make_driver(name: str, root: Path) -> StorageDriver:
    """Build the driver named in configuration, rooted at `root`."""
    faults.load()  # LIGHTKEEPER_FAULTS (tests only): a malformed value fails here
    try:
        factory = _DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(_DRIVERS))
        raise ValueError(f"unknown storage driver {name!r} (known: {known})") from None
    return factory(root)
