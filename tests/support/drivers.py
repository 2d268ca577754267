"""Which storage drivers a test can run here: qcow2 needs qemu-img, which CI always installs
(so there a missing qemu-img fails the test instead of skipping it)."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

QCOW2_MISSING = shutil.which("qemu-img") is None and not os.environ.get("CI")
needs_qemu_img = pytest.mark.skipif(QCOW2_MISSING, reason="qemu-img not installed")


def storages(**qcow2_values: Any) -> list[Any]:
    """``["raw", "qcow2"]`` for ``parametrize``, qcow2 skipped where it cannot run."""
    return ["raw", pytest.param("qcow2", marks=needs_qemu_img, **qcow2_values)]
