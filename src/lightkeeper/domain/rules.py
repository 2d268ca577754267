"""The service's rules, as pure functions: which operation is allowed when, quota arithmetic,
and the denied-action matrix. Each refusal is the ApiError the real service answers with.

Where Tencent's behaviour is unknown the choice is recorded in docs/behaviour.md; the order of
checks here is the order in which errors are reported.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from lightkeeper.domain.model import (
    INSTANCE_STATES_ZH,
    SETTLED_STATES,
    SNAPSHOT_STATES_ZH,
    STORAGE_BUNDLE,
    Disk,
    DiskBackup,
    DiskBackupState,
    DiskState,
    DiskUsage,
    Instance,
    InstanceState,
    RestrictState,
    Snapshot,
    SnapshotState,
)
from lightkeeper.errors import ApiError, message

SNAPSHOT_NAME_MAX = 60
SYSTEM_DISK_NAME_SUFFIX = "-SYSTEM_DISK"
"""A system disk's DiskName is its instance id and this (docs/behaviour.md: a CHOICE)."""


def system_disk_name(instance_id: str) -> str:
    return instance_id + SYSTEM_DISK_NAME_SUFFIX


# Tags (CreateInstanceSnapshot: "数组最多支持10个元素"; Tencent's tag rules for the rest).
TAGS_MAX = 10
TAG_KEY_MAX = 127
TAG_VALUE_MAX = 255
TAG_RESERVED_PREFIXES = ("qcloud", "tencent", "project")
TAG_PUNCTUATION = frozenset(" +-=._:/@()[]（）【】")
# Bidi embeddings, overrides and isolates (the "Trojan Source" set) and line separators:
# text that displays other than it reads, or breaks a line, in a console or a log.
_INVISIBLE_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
)
SNAPSHOTTABLE_STATES = SETTLED_STATES
ROLLBACK_STATES = SETTLED_STATES
POWER_RULES = {  # action -> (allowed state, transitional state)
    "StartInstances": (InstanceState.STOPPED, InstanceState.STARTING),
    "StopInstances": (InstanceState.RUNNING, InstanceState.STOPPING),
    "RebootInstances": (InstanceState.RUNNING, InstanceState.REBOOTING),
}


def _has_control_characters(text: str) -> bool:
    """C0/C1 controls (NUL, CR, LF, TAB, DEL, NEL...), bidi controls, line separators."""
    return any(unicodedata.category(c) == "Cc" or c in _INVISIBLE_CONTROLS for c in text)


def check_snapshot_name(name: str, parameter: str = "SnapshotName") -> str:
    """At most 60 characters, and none that would forge or break a line where it is shown."""
    if len(name) > SNAPSHOT_NAME_MAX:
        raise ApiError("InvalidParameterValue.SnapshotNameTooLong")
    if _has_control_characters(name):
        raise ApiError.variant("InvalidParameterValue#characters", name=parameter)
    return name


def _tag_text_allowed(text: str) -> bool:
    """Letters, marks and digits of any script, space and ``+ - = . _ : / @ ( ) [ ]``
    (also full-width brackets); nothing else, so no control character either."""
    return all(c in TAG_PUNCTUATION or unicodedata.category(c)[0] in "LMN" for c in text)


def check_tags(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The tags of a new snapshot, key -> value, or the refusal of the first bad one."""
    if len(pairs) > TAGS_MAX:
        raise ApiError("InvalidParameterValue.LimitExceeded")
    tags: dict[str, str] = {}
    for index, (key, value) in enumerate(pairs):
        key_name, value_name = f"Tags.{index}.Key", f"Tags.{index}.Value"
        if len(key) > TAG_KEY_MAX:
            raise ApiError.variant(
                "InvalidParameterValue.TooLong#name", name=key_name, limit=TAG_KEY_MAX
            )
        if len(value) > TAG_VALUE_MAX:
            raise ApiError.variant(
                "InvalidParameterValue.TooLong#name", name=value_name, limit=TAG_VALUE_MAX
            )
        for text, name in ((key, key_name), (value, value_name)):
            if not _tag_text_allowed(text):
                raise ApiError.variant("InvalidParameterValue#characters", name=name)
        if key.lower().startswith(TAG_RESERVED_PREFIXES):
            raise ApiError.variant("InvalidParameterValue#reserved_prefix", name=key_name)
        if not key or key in tags:
            raise ApiError("InvalidParameterValue", name=key_name, value=key)
        tags[key] = value
    return tags


def snapshot_quota(countable_instances: int, per_instance: int, maximum: int) -> int:
    """min(per_instance x instances, maximum), per account and region (§3.1)."""
    return min(per_instance * countable_instances, maximum)


def quota_counts_that_matter(per_instance: int, maximum: int) -> tuple[int, int]:
    """How many countable instances, and how many snapshots, a create needs to count at most
    to decide its quota: the quota stops growing at ``maximum``, and ``used >= quota`` is
    decided once ``maximum`` snapshots are counted. So a create's check costs the same for an
    account of five instances and of five thousand."""
    if per_instance <= 0 or maximum <= 0:
        return 0, 0
    return -(-maximum // per_instance), maximum


def check_create_snapshot(
    instance: Instance, blueprint_exists: bool, quota: int, used: int
) -> None:
    if instance.bundle_type == STORAGE_BUNDLE:
        raise ApiError("OperationDenied.OperationDeniedCreateSnapshotForStorageBundle")
    if instance.restrict_state != RestrictState.NORMAL:
        raise ApiError("OperationDenied.OperationDeniedCreateSnapshot")
    if not blueprint_exists:
        raise ApiError("ResourceNotFound.BlueprintIdNotFound")
    if instance.disk_busy:
        raise ApiError("UnsupportedOperation.DiskLatestOperationUnfinished")
    if instance.op_job is not None:
        raise ApiError("UnsupportedOperation.LatestOperationUnfinished")
    if instance.state not in SNAPSHOTTABLE_STATES:
        raise ApiError("UnsupportedOperation.InvalidInstanceState")
    if used >= quota:
        raise ApiError("LimitExceeded.SnapshotQuotaLimitExceeded")


def check_apply_snapshot(instance: Instance, snapshot: Snapshot) -> None:
    # The snapshot's own state first: rolling back to a snapshot that is still being
    # created (or rolled back to) is refused for the snapshot, not for its busy disk.
    if snapshot.state != SnapshotState.NORMAL:
        raise ApiError("UnsupportedOperation.InvalidSnapshotState")
    if instance.state == InstanceState.PENDING:
        raise ApiError("OperationDenied.InstanceCreating")
    if instance.power_operation_running:
        raise ApiError("UnsupportedOperation.LatestOperationUnfinished")
    if instance.rollback_running:
        raise ApiError("OperationDenied.InstanceOperationInProgress")
    if instance.op_job is not None:  # another job holds the machine (a data disk's rollback)
        raise ApiError("UnsupportedOperation.LatestOperationUnfinished")
    if instance.disk_busy:
        raise ApiError("UnsupportedOperation.DiskLatestOperationUnfinished")
    if instance.state not in ROLLBACK_STATES:
        raise ApiError("UnsupportedOperation.InvalidInstanceState")
    if snapshot.corrupt:
        raise ApiError("FailedOperation.SnapshotOperationFailed")
    if snapshot.disk_size_gb != instance.disk_size_gb:
        raise ApiError("InvalidParameterValue.DiskSizeNotMatch")


def check_power(action: str, instance: Instance) -> InstanceState:
    """Return the transitional state the instance enters, or raise the refusal."""
    allowed, transitional = POWER_RULES[action]
    if instance.state == InstanceState.PENDING:
        raise ApiError("OperationDenied.InstanceCreating")
    if instance.power_operation_running:
        raise ApiError("UnsupportedOperation.LatestOperationUnfinished")
    if instance.op_job is not None or instance.disk_busy:
        raise ApiError("OperationDenied.InstanceOperationInProgress")
    if instance.state != allowed:
        raise ApiError("UnsupportedOperation.InvalidInstanceState")
    return transitional


def check_delete_snapshot(snapshot: Snapshot) -> None:
    if snapshot.state != SnapshotState.NORMAL:
        raise ApiError("UnsupportedOperation.InvalidSnapshotState")


# -- denied actions (DescribeSnapshotsDeniedActions / DescribeInstancesDeniedActions) --------

_DISK_OPERATIONS = {  # operation -> (en, zh) wording of the denied-action message
    "CreateInstanceSnapshot": ("creating an instance snapshot", "创建实例快照"),
    "RollbackInstanceSnapshot": ("rolling back an instance snapshot", "回滚实例快照"),
}


def _denied(action: str, code: str, language: str, **params: object) -> dict[str, str]:
    return {
        "Action": action,
        "Code": code.split("#")[0],
        "Message": message(code, language, **params),
    }


def snapshot_denied_actions(
    snapshot: Snapshot, instance: Instance | None, language: str
) -> list[dict[str, str]]:
    """The matrix of lighthouse-facts §4.4 (with the documented ROLLBACKING example)."""
    state_params = {
        "snapshot_id": snapshot.snapshot_id,
        "state": snapshot.state,
        "state_zh": SNAPSHOT_STATES_ZH.get(snapshot.state, snapshot.state),
    }
    snapshot_state = "UnsupportedOperation.InvalidSnapshotState#denied"
    if snapshot.state == SnapshotState.ROLLBACKING:
        en, zh = _DISK_OPERATIONS["RollbackInstanceSnapshot"]
        return [
            _denied(
                "RollbackInstanceSnapshot",
                "UnsupportedOperation.DiskLatestOperationUnfinished#denied",
                language,
                disk_id=snapshot.disk_id,
                operation_en=en,
                operation_zh=zh,
            ),
            _denied("DeleteSnapshots", snapshot_state, language, **state_params),
        ]
    if snapshot.state != SnapshotState.NORMAL:
        return [
            _denied("RollbackInstanceSnapshot", snapshot_state, language, **state_params),
            _denied("DeleteSnapshots", snapshot_state, language, **state_params),
        ]
    if instance is not None and instance.state not in ROLLBACK_STATES:
        return [
            _denied(
                "RollbackInstanceSnapshot",
                "UnsupportedOperation.InvalidInstanceState#denied",
                language,
                instance_id=instance.instance_id,
                state=instance.state,
                state_zh=INSTANCE_STATES_ZH.get(instance.state, instance.state),
            )
        ]
    if snapshot.corrupt:  # what check_apply_snapshot answers, in the same order
        return [
            _denied(
                "RollbackInstanceSnapshot",
                "FailedOperation.SnapshotOperationFailed#denied",
                language,
                snapshot_id=snapshot.snapshot_id,
            )
        ]
    return []


def instance_denied_actions(instance: Instance, language: str) -> list[dict[str, str]]:
    """Power actions the instance's state forbids, worded like the documented example."""
    params = {
        "instance_id": instance.instance_id,
        "state": instance.state,
        "state_zh": INSTANCE_STATES_ZH.get(instance.state, instance.state),
    }
    denied = []
    for action, (allowed, _) in POWER_RULES.items():
        if instance.state != allowed:
            code = "UnsupportedOperation.InvalidInstanceState#denied"
            denied.append(_denied(action, code, language, **params))
    if instance.state not in SNAPSHOTTABLE_STATES or instance.bundle_type == STORAGE_BUNDLE:
        code = "UnsupportedOperation.InvalidInstanceState#denied"
        denied.append(_denied("CreateInstanceSnapshot", code, language, **params))
    return denied


# -- data disks ------------------------------------------------------------------------------

# The states a data disk must be in for each action on it (the SDK's action docs).
DISK_ACTION_STATES: dict[str, frozenset[str]] = {
    "AttachDisks": frozenset({DiskState.UNATTACHED}),
    "DetachDisks": frozenset({DiskState.ATTACHED}),
    "IsolateDisks": frozenset({DiskState.UNATTACHED}),
    "TerminateDisks": frozenset({DiskState.SHUTDOWN}),
    "ModifyDisksAttribute": frozenset({DiskState.ATTACHED, DiskState.UNATTACHED}),
    "ResizeDisks": frozenset({DiskState.ATTACHED, DiskState.UNATTACHED}),
    "ModifyDisksRenewFlag": frozenset(
        {DiskState.ATTACHED, DiskState.UNATTACHED, DiskState.ATTACHING, DiskState.DETACHING}
    ),
    "CreateDiskBackup": frozenset({DiskState.ATTACHED, DiskState.UNATTACHED}),
    "ApplyDiskBackup": frozenset({DiskState.ATTACHED, DiskState.UNATTACHED}),
    "ModifyDisksBackupQuota": frozenset({DiskState.ATTACHED, DiskState.UNATTACHED}),
}
# Actions that touch only a disk's record, never its data: allowed while an operation runs.
DISK_RECORD_ONLY: frozenset[str] = frozenset({"ModifyDisksRenewFlag"})


def disk_refusal(action: str, disk: Disk) -> str | None:
    """Why ``action`` may not touch ``disk`` now (an error code), or None: the one rule the
    disk actions check and DescribeDisksDeniedActions reports."""
    if disk.disk_usage != DiskUsage.DATA_DISK:
        return "OperationDenied.DiskUsageNotSupportOperation"
    if disk.state == DiskState.PENDING:
        return "OperationDenied.DiskCreating"
    if disk.op_job is not None and action not in DISK_RECORD_ONLY:
        return "OperationDenied.DiskOperationInProgress"
    if disk.state not in DISK_ACTION_STATES[action]:
        return "UnsupportedOperation.InvalidDiskState"
    return None


def check_disk(action: str, disk: Disk) -> Disk:
    refusal = disk_refusal(action, disk)
    if refusal is not None:
        raise ApiError(refusal)
    return disk


def disk_denied_actions(disk: Disk, language: str) -> list[dict[str, str]]:
    """Each disk action the disk's kind, state or operation forbids now."""
    return [
        _denied(action, code, language)
        for action in DISK_ACTION_STATES
        if (code := disk_refusal(action, disk)) is not None
    ]


# -- disk backups ----------------------------------------------------------------------------

BACKUP_ACTIONS = ("ApplyDiskBackup", "DeleteDiskBackups")
DISK_BACKUP_NAME_MAX = 90


def backup_refusal(action: str, backup: DiskBackup) -> str | None:
    """Why ``action`` may not take ``backup`` now: one with an operation running (a create,
    a rollback) is busy, and one a disk is being rolled back to is in use for a delete;
    only a NORMAL one is applied or deleted, and one whose data failed its checksum (marked
    corrupt) is never applied."""
    if backup.latest_operation_state == "OPERATING":
        if action == "DeleteDiskBackups" and backup.state == DiskBackupState.ROLLBACKING:
            return "ResourceInUse.DiskBackupInUse"  # (a disk is being rolled back to it)
        return "OperationDenied.DiskBackupOperationInProgress"
    if backup.state != DiskBackupState.NORMAL:
        return "UnsupportedOperation.InvalidDiskBackupState"
    if backup.corrupt and action == "ApplyDiskBackup":  # (it may still be deleted)
        return "UnsupportedOperation.InvalidDiskBackupState"
    return None


def check_backup(action: str, backup: DiskBackup) -> DiskBackup:
    refusal = backup_refusal(action, backup)
    if refusal is not None:
        raise ApiError(refusal)
    return backup


def backup_denied_actions(backup: DiskBackup, language: str) -> list[dict[str, str]]:
    return [
        _denied(action, code, language)
        for action in BACKUP_ACTIONS
        if (code := backup_refusal(action, backup)) is not None
    ]


def check_backup_name(name: str) -> str:
    if len(name) > DISK_BACKUP_NAME_MAX:
        raise ApiError("InvalidParameterValue.DiskBackupNameTooLong")
    if _has_control_characters(name):
        raise ApiError.variant("InvalidParameterValue#characters", name="DiskBackupName")
    return name
