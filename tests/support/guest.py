"""The project's own test guest (guest/), built once a session, for real-machine tests.

On CI a guest that cannot be built is a failure, not a skip: those tests are the proof.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
GUEST = REPO / "guest"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def load_records() -> ModuleType:
    """guest/records.py is a stand-alone file (the guest is not a package)."""
    spec = importlib.util.spec_from_file_location("lk_guest_records", GUEST / "records.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def records() -> ModuleType:
    return load_records()


@pytest.fixture(scope="session")
def guest() -> tuple[Path, Path]:
    """(kernel, initrd), built into $LIGHTKEEPER_GUEST_DIR or guest/out (cached, idempotent)."""
    for tool in ("qemu-system-x86_64", "qemu-img"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} not installed")
    if not Path("/bin/busybox").exists() or shutil.which("apt-get") is None:
        _unavailable("busybox-static or apt-get missing: cannot build the test guest")
    out = Path(os.environ.get("LIGHTKEEPER_GUEST_DIR", GUEST / "out"))
    result = subprocess.run(
        [sys.executable, str(GUEST / "build.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        _unavailable(f"test guest build failed: {result.stderr.strip()[-500:]}")
    paths = dict(
        line.split("=", 1)
        for line in result.stdout.splitlines()
        if line.startswith(("kernel=", "initrd="))
    )
    return Path(paths["kernel"]), Path(paths["initrd"])
