"""Fixtures for the real-machine tests: the project's own test guest, built once a session."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from lightkeeper.compute.qemu import QemuDriver

REPO = Path(__file__).resolve().parents[2]
GUEST = REPO / "guest"


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
            pytest.skip(f"{tool} not installed")
    if not Path("/bin/busybox").exists() or shutil.which("apt-get") is None:
        pytest.skip("busybox-static or apt-get missing: cannot build the test guest")
    out = Path(os.environ.get("LIGHTKEEPER_GUEST_DIR", GUEST / "out"))
    result = subprocess.run(
        [sys.executable, str(GUEST / "build.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.skip(f"test guest build failed (no kernel): {result.stderr.strip()[-500:]}")
    paths = dict(line.split("=", 1) for line in result.stdout.split())
    return Path(paths["kernel"]), Path(paths["initrd"])


@pytest.fixture
def drivers(guest: tuple[Path, Path], tmp_path: Path) -> Iterator[Callable[[], QemuDriver]]:
    """Drivers on one root (several = a server restart); every VM is force-stopped after."""
    kernel, initrd = guest
    root = tmp_path / "data"

    def make() -> QemuDriver:
        return QemuDriver(root, 0, kernel=kernel, initrd=initrd, soft_stop_timeout=10)

    yield make
    cleanup = make()
    for directory in (root / "vms").glob("*"):
        if (directory / "instance.json").exists():
            cleanup.stop(directory.name, force=True)


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


def console_ks(log: Path) -> list[tuple[int, bool]]:
    """Every ``LKGUEST k=N`` line so far as (N, is_start_line)."""
    try:
        text = log.read_bytes().decode(errors="replace")
    except FileNotFoundError:
        return []
    return [(int(k), bool(start)) for k, start in re.findall(r"LKGUEST k=(\d+)( start)?", text)]


def wait_console(
    log: Path, done: Callable[[list[tuple[int, bool]]], bool], timeout: float = 60
) -> list[tuple[int, bool]]:
    deadline = time.monotonic() + timeout
    while True:
        seen = console_ks(log)
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"console never got there; last lines: {seen[-3:]}")
        time.sleep(0.1)
