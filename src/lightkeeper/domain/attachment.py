"""What a hypervisor needs to open a disk: the hand-off between storage and compute drivers.

A storage driver describes a disk by an attachment (Cinder's "connection info") instead of a
local path, so a disk need not be a file: today ``kind="file"`` with a path and an image
format; a network backend adds its own kind (e.g. an ``rbd:`` spec) and the compute drivers
that can open it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

AttachmentKind = Literal["file"]


@dataclass(frozen=True, slots=True)
class Attachment:
    """``kind="file"``: ``path`` is an image file in ``format`` ("raw" or "qcow2")."""

    kind: AttachmentKind
    path: Path
    format: str


def file_attachment(path: Path, image_format: str) -> Attachment:
    return Attachment(kind="file", path=path, format=image_format)
