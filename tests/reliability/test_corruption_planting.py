"""The crash harness's planter (testkit/corruption.py) must find a byte to corrupt on a qcow2
disk whose snapshot was killed before its block table was written: such a disk otherwise
has nothing plantable until the table exists, and a run whose kills all landed there planted
nothing (CI, seed 86258)."""

from __future__ import annotations

import os
import random
from pathlib import Path

from testkit import corruption

from lightkeeper.storage import Qcow2Driver

MiB = 1024 * 1024
DISK = "lhdisk-pl4nt3rs"


def _ignore(_: int) -> None:
    pass


def test_a_snapshot_without_a_table_still_gets_a_byte_planted(tmp_path: Path) -> None:
    driver = Qcow2Driver(tmp_path)
    driver.create_disk(DISK, 16 * MiB)
    driver.write(DISK, 0, os.urandom(4 * MiB))
    good = driver.create_snapshot(DISK, "lhsnap-kept0001", _ignore)
    driver.write(DISK, 0, os.urandom(4 * MiB))  # the old clusters are the snapshots' alone
    tableless = driver.create_snapshot(DISK, "lhsnap-notab001", _ignore)
    (tmp_path / "disks" / f"{DISK}.snapshots" / "lhsnap-notab001.blocks").unlink()
    driver.write(DISK, 0, os.urandom(4 * MiB))
    allowed = {"lhsnap-kept0001", "lhsnap-notab001"}

    planted = corruption.plant(
        tmp_path, "qcow2", DISK, "lhsnap-notab001", random.Random(1), allowed
    )

    assert planted is not None and planted.snapshot_ids == {"lhsnap-notab001"}
    assert driver.snapshot_checksum(DISK, "lhsnap-notab001") != tableless
    assert driver.snapshot_checksum(DISK, "lhsnap-kept0001") == good
    assert corruption.data_offset(tmp_path, DISK, "lhsnap-notab001") == 0
