"""Domain values as the SDK's ``Instance`` and ``Snapshot`` models, every field present."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from lightkeeper.domain.model import STORAGE_BUNDLE, DiskState, DiskUsage, Instance, Snapshot
from lightkeeper.store.resources import DiskRow

UNKNOWN_BLUEPRINT = {"os_name": "", "platform": "", "platform_type": "LINUX_UNIX"}


def iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None and value.year >= 1000:  # stored times: naive UTC; 3x strftime
        return value.isoformat(timespec="seconds") + "Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def system_disk_type(bundle_type: str | None) -> str:
    """A storage bundle's system disk is an SSD, every other's a premium cloud disk."""
    return "CLOUD_SSD" if bundle_type == STORAGE_BUNDLE else "CLOUD_PREMIUM"


def instance_view(instance: Instance, blueprint: Mapping[str, Any] | None) -> dict[str, Any]:
    image = blueprint or UNKNOWN_BLUEPRINT
    return {
        "InstanceId": instance.instance_id,
        "BundleId": instance.bundle_id,
        "BlueprintId": instance.blueprint_id,
        "CPU": instance.cpu,
        "Memory": instance.memory,
        "InstanceName": instance.name,
        "InstanceChargeType": "PREPAID",
        "SystemDisk": {
            "DiskType": system_disk_type(instance.bundle_type),
            "DiskSize": instance.disk_size_gb,
            "DiskId": instance.disk_id,
        },
        "PrivateAddresses": [instance.private_ip],
        "PublicAddresses": [instance.public_ip],
        "InternetAccessible": {
            "InternetChargeType": "TRAFFIC_POSTPAID_BY_HOUR",
            "InternetMaxBandwidthOut": 30,
            "PublicIpAssigned": True,
        },
        "RenewFlag": "NOTIFY_AND_MANUAL_RENEW",
        "LoginSettings": {"KeyIds": []},
        "InstanceState": instance.state,
        "Uuid": instance.uuid,
        "LatestOperation": instance.latest_operation,
        "LatestOperationState": instance.latest_operation_state,
        "LatestOperationRequestId": instance.latest_operation_request_id,
        "LatestOperationStartedTime": iso(instance.latest_operation_started_at),
        "IsolatedTime": None,
        "CreatedTime": iso(instance.created_at),
        "ExpiredTime": iso(instance.expired_at),
        "PlatformType": image["platform_type"],
        "Platform": image["platform"],
        "OsName": image["os_name"],
        "Zone": instance.zone,
        "Tags": tag_list(instance.tags),
        "InstanceRestrictState": instance.restrict_state,
        "SupportIpv6Detail": {"IsSupport": False, "Detail": "NOT_SUPPORT", "Message": ""},
        "PublicIpv6Addresses": [],
        "InitInvocationId": "",
        "InstanceViolationDetail": {"Source": "", "State": "", "Reason": "", "Content": ""},
    }


def snapshot_view(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "SnapshotId": snapshot.snapshot_id,
        "DiskUsage": "SYSTEM_DISK",
        "DiskId": snapshot.disk_id,
        "DiskSize": snapshot.disk_size_gb,
        "SnapshotName": snapshot.name,
        "SnapshotState": snapshot.state,
        "Percent": snapshot.percent,
        "LatestOperation": snapshot.latest_operation,
        "LatestOperationState": snapshot.latest_operation_state,
        "LatestOperationRequestId": snapshot.latest_operation_request_id,
        "CreatedTime": iso(snapshot.created_at),
        "Tags": tag_list(snapshot.tags),
    }


def disk_view(row: DiskRow, tags: Mapping[str, str], backups: int = 0) -> dict[str, Any]:
    """The SDK's ``Disk``. A system disk is the instance's: prepaid with it, expiring and
    released with it, attached to it; no disk backups (those are data disks' only). A data
    disk has its own type, state, latest operation, expiry and backup quota."""
    disk = row.disk
    system = disk.disk_usage == DiskUsage.SYSTEM_DISK
    return {
        "DiskId": disk.disk_id,
        "InstanceId": disk.instance_id or "",
        "Zone": disk.zone,
        "DiskName": row.name,
        "DiskUsage": disk.disk_usage.value,
        "DiskType": disk.disk_type or system_disk_type(row.bundle_type),
        "DiskChargeType": "PREPAID",
        "DiskSize": disk.size_gb,
        "RenewFlag": disk.renew_flag or "NOTIFY_AND_MANUAL_RENEW",
        "DiskState": row.state,
        "Attached": row.state == DiskState.ATTACHED,
        "DeleteWithInstance": system,
        "LatestOperation": disk.latest_operation,
        "LatestOperationState": disk.latest_operation_state,
        "LatestOperationRequestId": disk.latest_operation_request_id,
        "CreatedTime": iso(disk.created_at),
        "ExpiredTime": iso(row.expired_at),
        "IsolatedTime": None,
        "DiskBackupCount": backups,
        "DiskBackupQuota": disk.backup_quota,
        "Tags": tag_list(tags),
    }
