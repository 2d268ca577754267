"""Instances, disks and snapshots, as plain values with the states Tencent uses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final


class InstanceState(StrEnum):
    """lighthouse-facts §2.1. A StrEnum equals its string: rows and wire output are unchanged."""

    PENDING = "PENDING"
    LAUNCH_FAILED = "LAUNCH_FAILED"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    STOPPING = "STOPPING"
    REBOOTING = "REBOOTING"
    SHUTDOWN = "SHUTDOWN"
    TERMINATING = "TERMINATING"
    DELETING = "DELETING"
    FREEZING = "FREEZING"


class SnapshotState(StrEnum):
    NORMAL = "NORMAL"
    CREATING = "CREATING"
    ROLLBACKING = "ROLLBACKING"


class OperationState(StrEnum):
    """LatestOperationState of instances and snapshots."""

    OPERATING = "OPERATING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class RestrictState(StrEnum):
    NORMAL = "NORMAL"
    RESOURCE_RESTRICT = "RESOURCE_RESTRICT"


class DiskUsage(StrEnum):
    SYSTEM_DISK = "SYSTEM_DISK"
    DATA_DISK = "DATA_DISK"


class DiskBackupState(StrEnum):
    NORMAL = "NORMAL"
    CREATING = "CREATING"
    ROLLBACKING = "ROLLBACKING"
    DELETING = "DELETING"


class DiskState(StrEnum):
    """The SDK's ``Disk.DiskState`` values a data disk goes through."""

    PENDING = "PENDING"
    UNATTACHED = "UNATTACHED"
    ATTACHING = "ATTACHING"
    ATTACHED = "ATTACHED"
    DETACHING = "DETACHING"
    SHUTDOWN = "SHUTDOWN"


class BundleType(StrEnum):
    GENERAL_BUNDLE = "GENERAL_BUNDLE"
    STORAGE_BUNDLE = "STORAGE_BUNDLE"


# The Chinese names the denied-action messages use.
INSTANCE_STATES_ZH: Final = {
    InstanceState.PENDING: "创建中",
    InstanceState.LAUNCH_FAILED: "创建失败",
    InstanceState.RUNNING: "运行中",
    InstanceState.STOPPED: "关机",
    InstanceState.STARTING: "开机中",
    InstanceState.STOPPING: "关机中",
    InstanceState.REBOOTING: "重启中",
    InstanceState.SHUTDOWN: "停止待销毁",
    InstanceState.TERMINATING: "销毁中",
    InstanceState.DELETING: "删除中",
    InstanceState.FREEZING: "冻结中",
}
SNAPSHOT_STATES_ZH: Final = {
    SnapshotState.NORMAL: "正常",
    SnapshotState.CREATING: "创建中",
    SnapshotState.ROLLBACKING: "回滚中",
}

GENERAL_BUNDLE: Final = BundleType.GENERAL_BUNDLE
STORAGE_BUNDLE: Final = BundleType.STORAGE_BUNDLE
BUNDLE_TYPES: Final = tuple(BundleType)

# The states a machine rests in by itself; every other is a transition an operation is
# driving, or a lifecycle state no machine reports (what the supervisor may correct).
SETTLED_STATES: Final = frozenset({InstanceState.RUNNING, InstanceState.STOPPED})

# Which instances earn free snapshots (§3.1): not pending reclaim, not a storage bundle.
# Instance.counts_for_snapshot_quota and the quota's SQL count both read these.
QUOTA_EXCLUDED_STATES: Final = frozenset({InstanceState.SHUTDOWN})
QUOTA_EXCLUDED_BUNDLES: Final = frozenset({BundleType.STORAGE_BUNDLE})

# Operation names as they appear in LatestOperation fields.
CREATE_SNAPSHOT: Final = "CreateInstanceSnapshot"
ROLLBACK_SNAPSHOT: Final = "RollbackInstanceSnapshot"  # the snapshot's name for a rollback
APPLY_SNAPSHOT: Final = "ApplyInstanceSnapshot"  # the instance's name for the same rollback
POWER_OPERATIONS: Final = ("StartInstances", "StopInstances", "RebootInstances")

GiB: Final = 1024**3


@dataclass(frozen=True)
class Disk:
    """A disk of its own: its operation lock (``op_job``) is apart from its instance's."""

    disk_id: str
    account_id: int
    region: str
    zone: str
    instance_id: str | None  # None: not attached
    disk_usage: DiskUsage
    size_gb: int
    op_job: int | None  # the job holding the disk (a snapshot, a rollback)
    created_at: dt.datetime
    pool: str | None = None
    """The storage pool holding its data (None: recorded before pools, any node's)."""
    name: str | None = None
    """Its DiskName; None for a system disk, whose name follows its instance
    (``rules.system_disk_name``)."""
    # A data disk's own values; None for a system disk, which takes its instance's.
    disk_type: str | None = None
    state: str | None = None
    latest_operation: str | None = None
    latest_operation_state: str | None = None
    latest_operation_request_id: str | None = None
    expired_at: dt.datetime | None = None
    renew_flag: str | None = None
    backup_quota: int = 0

    @property
    def busy(self) -> bool:
        return self.op_job is not None


@dataclass(frozen=True)
class DiskBackup:
    """A data disk's backup: a storage snapshot of the disk, addressed (disk, backup id)."""

    disk_backup_id: str
    account_id: int
    region: str
    disk_id: str
    disk_size_gb: int
    name: str
    state: str
    percent: int
    latest_operation: str | None
    latest_operation_state: str | None
    latest_operation_request_id: str | None
    created_at: dt.datetime
    checksum: str | None
    corrupt: bool = False  # its data failed its checksum (a scrub, an apply, admin verify)
    tags: dict[str, str] = field(default_factory=dict)


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
    state: InstanceState
    restrict_state: RestrictState
    uuid: str
    private_ip: str
    public_ip: str
    created_at: dt.datetime
    expired_at: dt.datetime
    latest_operation: str | None
    latest_operation_state: OperationState | None
    latest_operation_request_id: str | None
    latest_operation_started_at: dt.datetime | None
    op_job: int | None
    system_disk: Disk
    node: str | None = None
    """The node whose compute driver runs it (None: not placed, any node's does)."""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def disk_id(self) -> str:
        return self.system_disk.disk_id

    @property
    def disk_size_gb(self) -> int:
        return self.system_disk.size_gb

    @property
    def power_operation_running(self) -> bool:
        """A Start/Stop/Reboot has not finished."""
        return (
            self.op_job is not None
            and self.latest_operation in POWER_OPERATIONS
            and self.latest_operation_state == OperationState.OPERATING
        )

    @property
    def rollback_running(self) -> bool:
        return self.op_job is not None and self.latest_operation == APPLY_SNAPSHOT

    @property
    def disk_busy(self) -> bool:
        return self.system_disk.busy

    @property
    def counts_for_snapshot_quota(self) -> bool:
        """Pending-reclaim and storage-bundle instances earn no free snapshots (§3.1)."""
        return (
            self.state not in QUOTA_EXCLUDED_STATES
            and self.bundle_type not in QUOTA_EXCLUDED_BUNDLES
        )


@dataclass(frozen=True)
class Snapshot:
    snapshot_id: str
    account_id: int
    region: str
    instance_id: str
    disk_id: str
    disk_size_gb: int
    name: str
    state: SnapshotState
    percent: int
    latest_operation: str | None
    latest_operation_state: OperationState | None
    latest_operation_request_id: str | None
    created_at: dt.datetime
    checksum: str | None  # recorded when the copy finished; verified on every restore
    corrupt: bool
    tags: dict[str, str] = field(default_factory=dict)
