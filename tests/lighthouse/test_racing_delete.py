"""A snapshot deleted between the probe's two looks (it exists; then its lock) is answered
as a missing snapshot, not as an InternalError with a traceback (found by the storms)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from lightkeeper.errors import ApiError
from lightkeeper.lighthouse.world import World
from lightkeeper.storage.raw import RawDriver

DISK, SNAP = "lhdisk-race0001", "lhsnap-race0001"


class DeletedWhileAsked(RawDriver):
    """Real storage; a racing DeleteSnapshots lands right after the existence check."""

    racing = False

    def snapshot_exists(self, disk_id: str, snapshot_id: str) -> bool:
        found = super().snapshot_exists(disk_id, snapshot_id)
        if found and self.racing:
            self.racing = False
            self.delete_snapshot(disk_id, snapshot_id)
        return found


def test_a_snapshot_deleted_while_probed_is_missing(tmp_path: Path) -> None:
    driver = DeletedWhileAsked(tmp_path)
    driver.create_disk(DISK, 1024 * 1024)
    driver.create_snapshot(DISK, SNAP, lambda _: None)
    driver.racing = True
    world = World(cast(Any, None), driver, cast(Any, None))  # the probe touches no database
    with pytest.raises(ApiError) as info:
        world.check_snapshot_usable(DISK, SNAP)
    assert info.value.code == "FailedOperation.SnapshotOperationFailed"
