"""Real causes of the storage error codes, per storage driver, done behind the server's back
from the test process (tests/lighthouse/test_error_codes.py): a disk or a snapshot removed,
held by another process, or whose data no longer matches its checksum.

raw: the files of the data dir (unlinked, flocked, overwritten). rbd: the pool itself, through
librbd (an image or a snapshot removed, the driver's lock objects held by this process, a
snapshot replaced by another of the same name holding other bytes: RBD snapshots cannot be
written, so that is how their data comes to differ from the checksum)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from testkit.server import Server

from lightkeeper.config import remembered_drivers


@contextmanager
def _flocked(path: Path, flags: int) -> Iterator[None]:
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


class RawSabotage:
    def __init__(self, server: Server) -> None:
        self.root = server.data_dir

    def remove_disk(self, disk_id: str) -> None:
        (self.root / "disks" / f"{disk_id}.img").unlink()

    def hold_disk(self, disk_id: str) -> Any:
        return _flocked(self.root / "disks" / f"{disk_id}.lock", os.O_RDWR | os.O_CREAT)

    def hold_snapshot(self, disk_id: str, snapshot_id: str) -> Any:
        return _flocked(self.root / "snapshots" / f"{snapshot_id}.img", os.O_RDONLY)

    def remove_snapshot(self, disk_id: str, snapshot_id: str) -> None:
        (self.root / "snapshots" / f"{snapshot_id}.img").unlink()

    def corrupt_snapshot(self, disk_id: str, snapshot_id: str) -> None:
        path = self.root / "snapshots" / f"{snapshot_id}.img"
        path.chmod(0o600)
        with path.open("r+b") as handle:
            handle.write(b"bit rot")


class RbdSabotage:
    def __init__(self, server: Server) -> None:
        import rados

        from lightkeeper.storage import RbdDriver

        remembered = remembered_drivers(server.data_dir)
        pool, namespace = remembered["rbd_pool"], remembered["rbd_namespace"]
        self.driver = RbdDriver(server.data_dir.parent / "sabotage", pool=pool, namespace=namespace)
        self.rados = rados

    def _image(self, disk_id: str) -> Any:
        import rbd

        return rbd.Image(self.driver.ioctx, f"lk.{disk_id}")

    def remove_disk(self, disk_id: str) -> None:
        import rbd

        with self._image(disk_id) as image:
            for snap in list(image.list_snaps()):
                image.remove_snap(snap["name"])
        rbd.RBD().remove(self.driver.ioctx, f"lk.{disk_id}")

    def hold_disk(self, disk_id: str) -> Any:
        return self.driver.lock_disk(disk_id)  # the lock object, held by this live process

    def hold_snapshot(self, disk_id: str, snapshot_id: str) -> Any:
        return self.driver.lock_snapshot(disk_id, snapshot_id)

    def remove_snapshot(self, disk_id: str, snapshot_id: str) -> None:
        with self._image(disk_id) as image:
            image.remove_snap(snapshot_id)

    def corrupt_snapshot(self, disk_id: str, snapshot_id: str) -> None:
        """The snapshot replaced by one of the same name holding other bytes; the disk
        itself left as it was."""
        with self._image(disk_id) as image:
            image.remove_snap(snapshot_id)
            image.create_snap("sabotage-keep")
            image.write(b"bit rot", 0)
            image.flush()
            image.create_snap(snapshot_id)
            image.rollback_to_snap("sabotage-keep")
            image.remove_snap("sabotage-keep")


def sabotage(server: Server, storage: str) -> RawSabotage | RbdSabotage:
    return RbdSabotage(server) if storage == "rbd" else RawSabotage(server)
