"""Instances, their system disks and snapshots, as plain values with the states Tencent uses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Final

# Instance states (lighthouse-facts §2.1), with the Chinese names the denied-action messages use.
INSTANCE_STATES_ZH: Final = {
    "PENDING": "创建中",
    "LAUNCH_FAILED": "创建失败",
    "RUNNING": "运行中",
    "STOPPED": "关机",
    "STARTING": "开机中",
    "STOPPING": "关机中",
    "REBOOTING": "重启中",
    "SHUTDOWN": "停止待销毁",
    "TERMINATING": "销毁中",
    "DELETING": "删除中",
    "FREEZING": "冻结中",
}
SNAPSHOT_STATES_ZH: Final = {"NORMAL": "正常", "CREATING": "创建中", "ROLLBACKING": "回滚中"}

GENERAL_BUNDLE: Final = "GENERAL_BUNDLE"
STORAGE_BUNDLE: Final = "STORAGE_BUNDLE"
BUNDLE_TYPES: Final = (GENERAL_BUNDLE, STORAGE_BUNDLE)

# Operation names as they appear in LatestOperation fields.
CREATE_SNAPSHOT: Final = "CreateInstanceSnapshot"
ROLLBACK_SNAPSHOT: Final = "RollbackInstanceSnapshot"  # the snapshot's name for a rollback
APPLY_SNAPSHOT: Final = "ApplyInstanceSnapshot"  # the instance's name for the same rollback
POWER_OPERATIONS: Final = ("StartInstances", "StopInstances", "RebootInstances")

OPERATING: Final = "OPERATING"
SUCCESS: Final = "SUCCESS"
FAILED: Final = "FAILED"

GiB: Final = 1024**3


@dataclass(frozen=True)
class Instance:
    instance_id: str
    account_id: int
    region: str
    zone: str
    name: str
    bundle_id: str
    bundle_type: str
    cpu: int
    memory: int
    blueprint_id: str
    state: str
    restrict_state: str
    uuid: str
    private_ip: str
    public_ip: str
    created_at: dt.datetime
    expired_at: dt.datetime
    latest_operation: str | None
    latest_operation_state: str | None
    latest_operation_request_id: str | None
    latest_operation_started_at: dt.datetime | None
    disk_id: str
    disk_size_gb: int
    op_job: int | None
    disk_job: int | None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def power_operation_running(self) -> bool:
        """A Start/Stop/Reboot has not finished."""
        return (
            self.op_job is not None
            and self.latest_operation in POWER_OPERATIONS
            and self.latest_operation_state == OPERATING
        )

    @property
    def rollback_running(self) -> bool:
        return self.op_job is not None and self.latest_operation == APPLY_SNAPSHOT

    @property
    def disk_busy(self) -> bool:
        return self.disk_job is not None

    @property
    def counts_for_snapshot_quota(self) -> bool:
        """Pending-reclaim and storage-bundle instances earn no free snapshots (§3.1)."""
        return self.state != "SHUTDOWN" and self.bundle_type != STORAGE_BUNDLE


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    account_id: int
    region: str
    instance_id: str
    disk_id: str
    disk_size_gb: int
    name: str
    state: str
    percent: int
    latest_operation: str | None
    latest_operation_state: str | None
    latest_operation_request_id: str | None
    created_at: dt.datetime
    checksum: str | None  # recorded when the copy finished; verified on every restore
    corrupt: bool
    tags: dict[str, str] = field(default_factory=dict)
