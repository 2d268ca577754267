"""Loop-mounted scratch filesystems for tests that need a real property of one: a small ext4
that really fills up (ENOSPC), an XFS that really reflinks. Mounting needs root; without it
the test is skipped, except under CI, where it fails."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MKFS = {
    "ext4": ["mkfs.ext4", "-q", "-F"],
    "xfs": ["mkfs.xfs", "-q", "-f", "-m", "reflink=1"],  # reflink is XFS's default since 5.1
}


@contextmanager
def loop_mounted(workdir: Path, fs_type: str, size: int) -> Iterator[Path]:
    """A fresh `fs_type` filesystem of `size` bytes, mounted under `workdir`; unmounted after."""
    image, mount = workdir / f"{fs_type}.img", workdir / f"{fs_type}-mnt"
    mount.mkdir()
    with image.open("wb") as f:
        f.truncate(size)
    steps = ([*MKFS[fs_type], str(image)], ["mount", "-o", "loop", str(image), str(mount)])
    for command in steps:
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except FileNotFoundError as exc:
            result = subprocess.CompletedProcess(command, 127, "", str(exc))
        if result.returncode != 0:
            if os.environ.get("CI"):
                pytest.fail(f"{command[0]} failed: {result.stderr}")
            pytest.skip(f"cannot loop-mount {fs_type} here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@contextmanager
def tmpfs_mounted(workdir: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes under `workdir` (a disk that really fills up, without mkfs)."""
    mount = workdir / "tmpfs-mnt"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mount)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"mount failed: {result.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
