"""What a hypervisor needs to open a disk: the hand-off between storage and compute drivers.

A storage driver describes a disk by an attachment (Cinder's "connection info") instead of a
local path, so a disk need not be a file: ``kind="file"`` with a path and an image format,
or ``kind="rbd"``, an RBD image named by QEMU's ``rbd:`` spec (its ``path`` is empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

AttachmentKind = Literal["file", "rbd"]


@dataclass(frozen=True, slots=True)
class RbdImage:
    """Where an RBD image is, and as whom to open it (QEMU's rbd blockdev options)."""

    pool: str
    namespace: str
    image: str
    conf: Path | None
    client: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """``kind="file"``: ``path`` is an image file in ``format`` ("raw" or "qcow2").
    ``kind="rbd"``: ``spec`` is what ``qemu-img``/``qemu`` open (``rbd:pool/image:...``),
    always raw."""

    kind: AttachmentKind
    path: Path
    format: str
    spec: str = ""
    rbd: RbdImage | None = None


def file_attachment(path: Path, image_format: str) -> Attachment:
    return Attachment(kind="file", path=path, format=image_format)


def rbd_attachment(
    pool: str, namespace: str, image: str, conf: Path | None, client: str
) -> Attachment:
    """QEMU's rbd spec: ``rbd:pool[/namespace]/image[:id=client][:conf=file]``."""
    where = f"{pool}/{namespace}/{image}" if namespace else f"{pool}/{image}"
    spec = f"rbd:{where}:id={client}" + (f":conf={conf}" if conf else "")
    target = RbdImage(pool, namespace, image, conf, client)
    return Attachment(kind="rbd", path=Path(), format="raw", spec=spec, rbd=target)
