"""What an existing disk image is (format, virtual size), for importing a VM's disk."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path


def image_info(path: Path) -> tuple[str, int]:
    """``("qcow2", virtual bytes)`` via ``qemu-img info`` when available, else a raw file."""
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    if shutil.which("qemu-img") is None:
        return "raw", path.stat().st_size
    result = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ValueError(f"{path} is not a readable disk image: {result.stderr.strip()}")
    info = json.loads(result.stdout)
    return str(info["format"]), int(info["virtual-size"])
