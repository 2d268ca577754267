"""Disk backups: CreateDiskBackup, DescribeDiskBackups, ApplyDiskBackup, DeleteDiskBackups,
ModifyDiskBackupsAttribute, DescribeDiskBackupsDeniedActions and ModifyDisksBackupQuota.

A backup is a storage snapshot of its data disk, made and rolled back by durable jobs on the
snapshot engine (jobs/disk_backups.py); each disk holds at most its ``DiskBackupQuota``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection

from lightkeeper.api.registry import Context, Reply
from lightkeeper.domain import ids, rules
from lightkeeper.domain.model import (
    Disk,
    DiskBackup,
    DiskBackupState,
    DiskUsage,
    InstanceState,
    OperationState,
)
from lightkeeper.domain.placement import Needs
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse import models
from lightkeeper.lighthouse.checks import check_filters, check_id, check_ids, check_paging
from lightkeeper.lighthouse.disks import MAX_BACKUP_QUOTA, find_disk
from lightkeeper.lighthouse.jobs.base import NoParams
from lightkeeper.lighthouse.jobs.disk_backups import ApplyDiskBackup, BackupJob, CreateDiskBackup
from lightkeeper.lighthouse.lookup import find_instance
from lightkeeper.lighthouse.views import iso, tag_list
from lightkeeper.lighthouse.world import World, probe
from lightkeeper.storage import SnapshotRef
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.tables import disk_backups as backups_table

BACKUP_FILTERS = ("disk-backup-id", "disk-id", "disk-backup-state", "disk-usage",
                  "tag-key", "tag-value", "tag:")  # fmt: skip
FILTER_ID_PREFIXES = {"disk-backup-id": ids.DISK_BACKUP, "disk-id": ids.DISK}
FILTER_COLUMNS = {
    "disk-backup-id": backups_table.c.disk_backup_id,
    "disk-id": backups_table.c.disk_id,
    "disk-backup-state": backups_table.c.state,
}
APPLY_MISSING, MISSING = (
    "ResourceNotFound.DiskBackupNotExists",
    "ResourceNotFound.DiskBackupIdNotFound",
)
BACKUP_JOB_NAMES = frozenset({CreateDiskBackup.name, ApplyDiskBackup.name})
BAD_FILTER = "InvalidParameter.InvalidFilter"  # (DescribeDiskBackups' own codes)
BAD_VALUE = "InvalidParameterValue"
QUOTA_BATCH = 15  # ModifyDisksBackupQuota's disks per call


def backup_view(backup: DiskBackup) -> dict[str, Any]:
    return {
        "DiskBackupId": backup.disk_backup_id,
        "DiskUsage": DiskUsage.DATA_DISK.value,
        "DiskId": backup.disk_id,
        "DiskSize": backup.disk_size_gb,
        "DiskBackupName": backup.name,
        "DiskBackupState": backup.state,
        "Percent": backup.percent,
        "LatestOperation": backup.latest_operation,
        "LatestOperationState": backup.latest_operation_state,
        "LatestOperationRequestId": backup.latest_operation_request_id,
        "CreatedTime": iso(backup.created_at),
        "Tags": tag_list(backup.tags),
    }


class DiskBackupService:
    def __init__(self, world: World) -> None:
        self.world = world

    def create(self, ctx: Context, req: models.CreateDiskBackupRequest) -> Reply:
        check_id(ids.DISK, req.DiskId)
        name = rules.check_backup_name(req.DiskBackupName) if req.DiskBackupName else None
        backup_tags = rules.check_tags([(t.Key, t.Value) for t in req.Tags or []])
        world = self.world
        with world.write() as conn:
            disk = self._disk(conn, ctx, req.DiskId, "CreateDiskBackup")
            needs, instance_id = self._machine(conn, ctx, disk, hold=False)
            count = db.backup_counts(conn, [disk.disk_id]).get(disk.disk_id, 0)
            if count >= disk.backup_quota:
                raise ApiError("LimitExceeded.DiskBackupQuotaLimitExceeded")
            backup_id = _unused_backup_id(conn)
            now = db.utcnow()
            db.insert_disk_backup(
                conn,
                DiskBackup(
                    disk_backup_id=backup_id,
                    account_id=ctx.principal.account_id,
                    region=disk.region,
                    disk_id=disk.disk_id,
                    disk_size_gb=disk.size_gb,
                    name=name or f"{disk.disk_id}-{now:%m%d%H%M%S}",
                    state=DiskBackupState.CREATING,
                    percent=0,
                    latest_operation="CreateDiskBackup",
                    latest_operation_state=OperationState.OPERATING,
                    latest_operation_request_id=ctx.request_id,
                    created_at=now,
                    checksum=None,
                    tags=backup_tags,
                ),
            )
            self._enqueue(conn, ctx, CreateDiskBackup, disk, backup_id, instance_id, needs)
        world.notify()
        return {"DiskBackupId": backup_id}

    def apply(self, ctx: Context, req: models.ApplyDiskBackupRequest) -> Reply:
        check_id(ids.DISK, req.DiskId)
        check_id(ids.DISK_BACKUP, req.DiskBackupId)
        world = self.world
        with world.read() as conn:
            known = self._backup(conn, ctx, req.DiskBackupId)
            pool = disk.pool if (disk := db.get_disk(conn, known.disk_id)) else None
        backup_free = probe(lambda: _backup_free(world, known, pool))
        with world.write() as conn:
            backup = self._backup(conn, ctx, req.DiskBackupId)
            disk = self._disk(conn, ctx, req.DiskId, "ApplyDiskBackup")
            if backup.disk_id != disk.disk_id:
                raise ApiError("UnsupportedOperation.ApplyDiskBackupToAnotherDisk")
            rules.check_backup("ApplyDiskBackup", backup)
            needs, instance_id = self._machine(conn, ctx, disk, hold=True)
            backup_free()
            self._enqueue(conn, ctx, ApplyDiskBackup, disk, backup.disk_backup_id,
                          instance_id, needs)  # fmt: skip
            db.update_disk_backup(
                conn,
                backup.disk_backup_id,
                state=DiskBackupState.ROLLBACKING,
                latest_operation="ApplyDiskBackup",
                latest_operation_state=OperationState.OPERATING,
                latest_operation_request_id=ctx.request_id,
            )
        world.notify()
        return {}

    def describe(self, ctx: Context, req: models.DescribeDiskBackupsRequest) -> Reply:
        if req.DiskBackupIds is not None and req.Filters is not None:
            raise ApiError.variant(
                "InvalidParameter.ParameterConflict#ids_filters", ids="DiskBackupIds"
            )
        offset, limit = check_paging(req.Offset, req.Limit, negative=BAD_VALUE, too_many=BAD_VALUE)
        where: list[ColumnElement[bool]] = []
        if req.DiskBackupIds is not None:
            wanted = check_ids(ids.DISK_BACKUP, req.DiskBackupIds, 100)
            where.append(backups_table.c.disk_backup_id.in_(wanted))
        filters = check_filters(
            req.Filters or [],
            BACKUP_FILTERS,
            5,
            FILTER_ID_PREFIXES,
            "InvalidParameter.InvalidFilter",
        )
        for name, values in filters.items():
            if name == "disk-usage":  # every backup is a data disk's
                if DiskUsage.DATA_DISK.value not in values:
                    where.append(backups_table.c.disk_backup_id.is_(None))
            elif name in FILTER_COLUMNS:
                where.append(FILTER_COLUMNS[name].in_(values))
            else:
                where.append(db.tag_clause(backups_table.c.disk_backup_id, name, values))
        with self.world.read() as conn:
            total, found = db.list_disk_backups(
                conn, ctx.principal.account_id, ctx.region or "", where, offset, limit
            )
        return {"DiskBackupSet": [backup_view(b) for b in found], "TotalCount": total}

    def delete(self, ctx: Context, req: models.DeleteDiskBackupsRequest) -> Reply:
        wanted = check_ids(ids.DISK_BACKUP, req.DiskBackupIds, 100, required=True,
                           name="DiskBackupIds")  # fmt: skip
        world = self.world
        with world.write() as conn:
            found = [rules.check_backup("DeleteDiskBackups", self._backup(conn, ctx, b, MISSING))
                     for b in wanted]  # fmt: skip
            holders = {
                b.disk_backup_id: disk.instance_id
                for b in found
                if (disk := db.get_disk(conn, b.disk_id)) is not None
            }
            db.delete_disk_backups(conn, [b.disk_backup_id for b in found])
        world.discard_deleted_snapshots(
            {
                SnapshotRef(b.disk_id, b.disk_backup_id): holders.get(b.disk_backup_id)
                for b in found
            }  # fmt: skip
        )
        return {}

    def modify(self, ctx: Context, req: models.ModifyDiskBackupsAttributeRequest) -> Reply:
        wanted = check_ids(ids.DISK_BACKUP, req.DiskBackupIds, 100, required=True,
                           name="DiskBackupIds")  # fmt: skip
        if req.DiskBackupName is None:
            raise ApiError("InvalidParameter.OnlyAllowModifyOneAttribute")
        name = rules.check_backup_name(req.DiskBackupName)
        with self.world.write() as conn:
            for backup_id in wanted:
                self._backup(conn, ctx, backup_id, MISSING)
            for backup_id in wanted:
                db.update_disk_backup(conn, backup_id, name=name)
        return {}

    def denied_actions(
        self, ctx: Context, req: models.DescribeDiskBackupsDeniedActionsRequest
    ) -> Reply:
        wanted = check_ids(ids.DISK_BACKUP, req.DiskBackupIds, 100, required=True,
                           name="DiskBackupIds")  # fmt: skip
        with self.world.read() as conn:  # (unknown ids are left out, as for snapshots)
            found = [b for backup_id in wanted if (b := _visible_backup(conn, ctx, backup_id))]
        return {
            "DiskBackupDeniedActionSet": [
                {
                    "DiskBackupId": b.disk_backup_id,
                    "DeniedActions": rules.backup_denied_actions(b, ctx.language),
                }
                for b in found
            ]
        }

    def quota(self, ctx: Context, req: models.ModifyDisksBackupQuotaRequest) -> Reply:
        wanted = check_ids(ids.DISK, req.DiskIds, QUOTA_BATCH, required=True, name="DiskIds")
        if not 0 <= req.DiskBackupQuota <= MAX_BACKUP_QUOTA:
            raise ApiError("InvalidParameterValue", name="DiskBackupQuota",
                           value=req.DiskBackupQuota)  # fmt: skip
        with self.world.write() as conn:
            found = [self._disk(conn, ctx, d, "ModifyDisksBackupQuota") for d in wanted]
            counts = db.backup_counts(conn, wanted)
            for disk in found:
                if req.DiskBackupQuota == disk.backup_quota:
                    raise ApiError("UnsupportedOperation.SameWithOldConfig")
                if req.DiskBackupQuota < counts.get(disk.disk_id, 0):
                    raise ApiError(
                        "InvalidParameterValue.DiskBackupQuotaLessThanCurrentDiskBackupNum"
                    )
            for disk in found:
                db.update_disk(conn, disk.disk_id, backup_quota=req.DiskBackupQuota)
        return {}

    # -- shared ---------------------------------------------------------------------------

    def _disk(self, conn: Connection, ctx: Context, disk_id: str, action: str) -> Disk:
        """The disk, if ``action`` may take it now; a disk whose running operation is a
        backup's (a create, a rollback) is refused as busy with a backup."""
        try:
            disk = find_disk(conn, ctx, disk_id)
        except ApiError as missing:
            if missing.code == "ResourceNotFound.DiskIdNotFound":  # these actions' own code
                raise ApiError("ResourceNotFound.DiskNotExists") from None
            raise
        refusal = rules.disk_refusal(action, disk)
        if (
            refusal == "OperationDenied.DiskOperationInProgress"
            and action in BACKUP_JOB_NAMES
            and disk.op_job is not None
            and jobs.kind_of(conn, disk.op_job) in BACKUP_JOB_NAMES
        ):
            refusal = "OperationDenied.DiskBusyForBackupOperation"
        if refusal is not None:
            raise ApiError(refusal)
        return disk

    def _backup(
        self, conn: Connection, ctx: Context, backup_id: str, missing: str = APPLY_MISSING
    ) -> DiskBackup:
        """The caller's backup, else ``missing``: each action answers the not-found code it
        lists (ApplyDiskBackup ``DiskBackupNotExists``, the batch ones ``DiskBackupIdNotFound``)."""
        backup = _visible_backup(conn, ctx, backup_id)
        if backup is None:
            raise ApiError(missing)
        return backup

    def _machine(
        self, conn: Connection, ctx: Context, disk: Disk, *, hold: bool
    ) -> tuple[Needs, str | None]:
        """Which nodes may run the job (the machine's, while it runs), and the instance it
        works on: an attached disk's, which must be RUNNING or STOPPED with no operation."""
        if disk.instance_id is None:
            return Needs(pool=disk.pool), None
        try:
            instance = find_instance(conn, ctx, disk.instance_id)
        except ApiError:
            raise ApiError("ResourceNotFound.DiskAttachedHasNoInstanceId") from None
        if instance.op_job is not None:  # (an instance in transition: its operation first)
            raise ApiError("UnsupportedOperation.LatestOperationUnfinished")
        if hold and instance.disk_busy:  # a rollback stops the machine: not under a snapshot
            raise ApiError("UnsupportedOperation.LatestOperationUnfinished")
        if instance.state not in (InstanceState.RUNNING, InstanceState.STOPPED):
            raise ApiError("UnsupportedOperation.InvalidInstanceState")
        return BackupJob.needs(instance), instance.instance_id

    def _enqueue(
        self,
        conn: Connection,
        ctx: Context,
        kind: type[BackupJob],
        disk: Disk,
        backup_id: str,
        instance_id: str | None,
        needs: Needs,
    ) -> None:
        job_id = kind.enqueue(
            conn,
            NoParams(),
            account_id=ctx.principal.account_id,
            instance_id=instance_id,
            request_id=ctx.request_id,
            disk_id=disk.disk_id,
            snapshot_id=backup_id,
            needs=needs,
        )
        db.update_disk(conn, disk.disk_id, op_job=job_id)
        if kind is ApplyDiskBackup and instance_id is not None:  # its machine is stopped
            db.update_instance(
                conn,
                instance_id,
                op_job=job_id,
                latest_operation="ApplyDiskBackup",
                latest_operation_state=OperationState.OPERATING,
                latest_operation_request_id=ctx.request_id,
                latest_operation_started_at=db.utcnow(),
            )


def _visible_backup(conn: Connection, ctx: Context, backup_id: str) -> DiskBackup | None:
    """The caller's backup in the request's region; None for another's, as for none."""
    check_id(ids.DISK_BACKUP, backup_id)
    backup = db.get_disk_backup(conn, backup_id)
    mine = backup is not None and backup.account_id == ctx.principal.account_id
    return backup if backup is not None and mine and backup.region == (ctx.region or "") else None


def _backup_free(world: World, backup: DiskBackup, pool: str | None) -> None:
    """Driver check before the transaction (as for ApplyInstanceSnapshot): the backup's data
    is not held by another operation (a scrubber's or an admin's read, say). Data that is
    missing is left to the job, which fails cleanly: no code of ApplyDiskBackup's says so."""
    try:
        world.check_snapshot_usable(backup.disk_id, backup.disk_backup_id, pool)
    except ApiError as refusal:
        if refusal.code == "UnsupportedOperation.SnapshotBusy":
            raise ApiError("OperationDenied.DiskBackupBusy") from None


def _unused_backup_id(conn: Connection) -> str:
    while True:
        candidate = ids.new_id(ids.DISK_BACKUP)
        if db.get_disk_backup(conn, candidate) is None:
            return candidate
