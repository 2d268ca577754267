"""Which storage drivers a test can run here: qcow2 needs qemu-img, which CI always installs
(so there a missing qemu-img fails the test instead of skipping it); rbd needs a Ceph
cluster (tests/support/ceph.py). ``driver_options`` are what a test hands make_driver."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

QCOW2_MISSING = shutil.which("qemu-img") is None and not os.environ.get("CI")
needs_qemu_img = pytest.mark.skipif(QCOW2_MISSING, reason="qemu-img not installed")


def storages(**qcow2_values: Any) -> list[Any]:
    """``["raw", "qcow2"]`` for ``parametrize``, qcow2 skipped where it cannot run."""
    return ["raw", pytest.param("qcow2", marks=needs_qemu_img, **qcow2_values)]


def driver_options(name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A driver's own settings for one test: rbd gets a RADOS namespace of its own."""
    return request.getfixturevalue("rbd_options") if name == "rbd" else {}


def forget_tables(driver: Any, root: Path) -> None:
    """Remove every block table (storage/blocks.py): the next Apply must verify whole."""
    from lightkeeper.storage.rbd import TABLE_PREFIX, RbdDriver

    if isinstance(driver, RbdDriver):
        for obj in list(driver.ioctx.list_objects()):
            if obj.key.startswith(TABLE_PREFIX):
                driver.ioctx.remove_object(obj.key)
        return
    for table in root.rglob("*.blocks"):
        table.unlink()
