"""Compute drivers power instances on and off behind one small protocol."""

from __future__ import annotations

from pathlib import Path

from lightkeeper.compute.base import (
    ComputeDriver,
    ComputeError,
    LiveSnapshotCompute,
    StatusCorrupt,
    StatusUnavailable,
)
from lightkeeper.compute.null import NullDriver
from lightkeeper.compute.qemu import Accel, QemuDriver

__all__ = [
    "ComputeDriver",
    "ComputeError",
    "LiveSnapshotCompute",
    "NullDriver",
    "QemuDriver",
    "StatusCorrupt",
    "StatusUnavailable",
    "make_driver",
]


def make_driver(
    name: str,
    root: Path,
    transition_seconds: float,
    *,
    kernel: Path | None = None,
    initrd: Path | None = None,
    append: str | None = None,
    memory_mb: int | None = None,
    soft_stop_timeout: float | None = None,
    accel: Accel | None = None,
) -> ComputeDriver:
    """The keyword options configure the ``qemu`` driver (None = its default); ``null``
    ignores them, so one settings object can feed either driver."""
    if name == "null":
        return NullDriver(root, transition_seconds)
    if name == "qemu":
        return QemuDriver(
            root,
            transition_seconds,
            kernel=kernel,
            initrd=initrd,
            append="console=ttyS0 panic=-1" if append is None else append,
            memory_mb=256 if memory_mb is None else memory_mb,
            soft_stop_timeout=30.0 if soft_stop_timeout is None else soft_stop_timeout,
            accel="auto" if accel is None else accel,
        )
    raise ValueError(f"unknown compute driver {name!r} (known: null, qemu)")
