"""Fixtures for the real-machine tests: the project's own test guest, built once a session."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lightkeeper.compute.qemu import QemuDriver


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
