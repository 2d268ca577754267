"""Compute drivers power instances on and off behind one small protocol."""

from __future__ import annotations

from pathlib import Path

from lightkeeper.compute.base import (
    ComputeDriver,
    ComputeError,
    StatusCorrupt,
    StatusUnavailable,
)
from lightkeeper.compute.null import NullDriver

__all__ = [
    "ComputeDriver",
    "ComputeError",
    "NullDriver",
    "StatusCorrupt",
    "StatusUnavailable",
    "make_driver",
]


def make_driver(name: str, root: Path, transition_seconds: float) -> ComputeDriver:
    if name == "null":
        return NullDriver(root, transition_seconds)
    raise ValueError(f"unknown compute driver {name!r} (known: null)")
