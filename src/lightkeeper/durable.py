"""Rewrite a small file atomically and durably: the records servers keep beside the database
(compute drivers' power and machine records, the data dir's ``drivers.json``). Outside the
layers, so that config and the compute drivers share it (disk and snapshot data have their
own publication, ``storage.files.atomic_file``)."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def replace_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: readers see the old content or the new, never a part.
    The temporary file is this writer's own (process and thread): servers sharing a data dir
    write the same files, and a shared temporary name let one writer's rename take the
    other's file away (a StartInstances failed with FileNotFoundError in a storm)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
