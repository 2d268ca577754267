"""Disk actions: DescribeDisks, DescribeInstancesDiskNum, DescribeDiskConfigs, and the data
disks' lifecycle (CreateDisks, AttachDisks, DetachDisks, IsolateDisks, TerminateDisks,
ModifyDisksAttribute, ResizeDisks).

Every disk is a row of ``disks`` (issue #12): the instances' system disks and the data disks,
both described as the SDK's ``Disk`` and kept by the same storage driver.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import ColumnElement, Connection

from lightkeeper import storage
from lightkeeper.api.registry import Context, Reply
from lightkeeper.domain import ids, rules
from lightkeeper.domain.model import Disk, DiskState, DiskUsage, GiB, InstanceState, OperationState
from lightkeeper.domain.placement import Needs
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse import models
from lightkeeper.lighthouse.checks import check_filters, check_id, check_ids, check_paging
from lightkeeper.lighthouse.jobs.base import NoParams
from lightkeeper.lighthouse.jobs.disks import AttachDisks, CreateDisks, DetachDisks, DiskJob
from lightkeeper.lighthouse.lookup import find_instance
from lightkeeper.lighthouse.views import disk_view
from lightkeeper.lighthouse.world import World
from lightkeeper.regions import Region
from lightkeeper.store import resources as db
from lightkeeper.store.resources import DiskChanges
from lightkeeper.store.tables import disks as disks_table

DISK_FILTERS = (
    "disk-id",
    "instance-id",
    "disk-name",
    "zone",
    "disk-usage",
    "disk-state",
    "tag-key",
    "tag-value",
    "tag:",
)
FILTER_ID_PREFIXES = {"disk-id": ids.DISK, "instance-id": ids.INSTANCE}
logger = logging.getLogger("lightkeeper.disks")
DISK_USAGES = ("SYSTEM_DISK", "DATA_DISK")
UNKNOWN_FILTER = "InvalidParameter.InvalidFilterInvalidKey"  # (DescribeDisks' own code)
# What a data disk may be (DescribeDiskConfigs): the sizes Lighthouse sells (GB, step 10).
DISK_TYPES = ("CLOUD_PREMIUM", "CLOUD_SSD")
MIN_DISK_GB, MAX_DISK_GB, DISK_STEP_GB = 10, 4000, 10


class DiskService:
    def __init__(self, world: World, regions: tuple[Region, ...]) -> None:
        self.world = world
        self.regions = {r.region: r for r in regions}

    def describe(self, ctx: Context, req: models.DescribeDisksRequest) -> Reply:
        if req.DiskIds is not None and req.Filters is not None:
            raise ApiError.variant("InvalidParameter.ParameterConflict#ids_filters", ids="DiskIds")
        if req.OrderField is not None and req.OrderField not in db.DISK_ORDER_COLUMNS:
            raise ApiError("InvalidParameterValue", name="OrderField", value=req.OrderField)
        if req.Order is not None and req.Order not in ("ASC", "DESC"):
            raise ApiError("InvalidParameterValue", name="Order", value=req.Order)
        offset, limit = check_paging(req.Offset, req.Limit, negative="InvalidParameterValue")
        where: list[ColumnElement[bool]] = []
        if req.DiskIds is not None:
            where.append(disks_table.c.disk_id.in_(check_ids(ids.DISK, req.DiskIds, 100)))
        filters = check_filters(
            req.Filters or [], DISK_FILTERS, 100, FILTER_ID_PREFIXES, UNKNOWN_FILTER
        )
        for value in filters.get("disk-name", []):
            if len(value) > 60:
                raise ApiError("InvalidParameterValue.DiskNameTooLong")
        for value in filters.get("disk-usage", []):
            if value not in DISK_USAGES:
                raise ApiError("InvalidParameterValue", name="Filters.Values", value=value)
        for name, values in filters.items():
            column = db.DISK_FILTER_COLUMNS.get(name)
            if column is not None:
                where.append(column.in_(values))
            else:
                where.append(db.tag_clause(disks_table.c.disk_id, name, values))
        order: list[ColumnElement[Any]] = []
        if req.OrderField is not None:  # ordered as a whole, then paged; ties by id
            columns = (db.DISK_ORDER_COLUMNS[req.OrderField], disks_table.c.disk_id)
            order = [c.asc() if req.Order == "ASC" else c.desc() for c in columns]
        with self.world.read() as conn:
            total, rows = db.list_disks(
                conn, ctx.principal.account_id, ctx.region or "", where, offset, limit, order
            )
            shown = [r.disk.disk_id for r in rows]
            tag_map, backups = db.tags_for(conn, shown), db.backup_counts(conn, shown)
        return {
            "DiskSet": [
                disk_view(r, tag_map[r.disk.disk_id], backups.get(r.disk.disk_id, 0)) for r in rows
            ],
            "TotalCount": total,
        }

    def disk_num(self, ctx: Context, req: models.DescribeInstancesDiskNumRequest) -> Reply:
        wanted = check_ids(ids.INSTANCE, req.InstanceIds, 100, required=True, name="InstanceIds")
        with self.world.read() as conn:
            for instance_id in wanted:  # the caller's, in the region, or not found
                find_instance(conn, ctx, instance_id)
            counts = db.attached_data_disks(conn, wanted)
        return {
            "AttachDetailSet": [
                {
                    "InstanceId": i,
                    "AttachedDiskCount": counts.get(i, 0),
                    "MaxAttachCount": MAX_ATTACHED,
                }
                for i in wanted
            ],
            "TotalCount": len(wanted),
        }

    def configs(self, ctx: Context, req: models.DescribeDiskConfigsRequest) -> Reply:
        region = self.regions[ctx.region or ""]
        filters = check_filters(
            req.Filters or [], ("zone",), 100, unknown_name="InvalidParameter.InvalidFilter"
        )
        zones = region.zone_ids()
        for zone in filters.get("zone", []):
            if zone not in zones:
                raise ApiError("InvalidParameterValue.ZoneInvalid", zone=zone)
        chosen = filters.get("zone") or zones
        return {
            "DiskConfigSet": [
                {
                    "Zone": zone,
                    "DiskType": disk_type,
                    "DiskSalesState": "AVAILABLE",
                    "MaxDiskSize": MAX_DISK_GB,
                    "MinDiskSize": MIN_DISK_GB,
                    "DiskStepSize": DISK_STEP_GB,
                }
                for zone in chosen
                for disk_type in DISK_TYPES
            ]
        }


# -- data disks, write side ----------------------------------------------------------------

DATA_DISK_QUOTA = 20  # per account and region (lighthouse-facts §3: 20 data disks a region)
MAX_ATTACHED = 5  # data disks per instance
MAX_DISK_COUNT = 30  # CreateDisks' DiskCount
MAX_BACKUP_QUOTA = 500
RENEW_FLAGS = (
    "NOTIFY_AND_AUTO_RENEW",
    "NOTIFY_AND_MANUAL_RENEW",
    "DISABLE_NOTIFY_AND_MANUAL_RENEW",
)
DISK_NAME_MAX = 60
ISOLATE_MAX = 20


class DataDiskService:
    """CreateDisks, AttachDisks, DetachDisks, IsolateDisks, TerminateDisks,
    ModifyDisksAttribute and ResizeDisks: the checks in one transaction with the state
    change, the slow part in a durable job per disk (jobs/disks.py)."""

    def __init__(self, world: World, regions: tuple[Region, ...]) -> None:
        self.world = world
        self.regions = {r.region: r for r in regions}

    def create(self, ctx: Context, req: models.CreateDisksRequest) -> Reply:
        region = ctx.region or ""
        if req.Zone not in self.regions[region].zone_ids():
            raise ApiError("InvalidParameterValue.InvalidZone", zone=req.Zone)
        if req.DiskType not in DISK_TYPES:
            raise ApiError("InvalidParameterValue.InvalidDiskType")
        check_disk_size(req.DiskSize)
        count = 1 if req.DiskCount is None else req.DiskCount
        if not 1 <= count <= MAX_DISK_COUNT:
            raise ApiError("InvalidParameterValue", name="DiskCount", value=count)
        backup_quota = req.DiskBackupQuota or 0
        if not 0 <= backup_quota <= MAX_BACKUP_QUOTA:
            raise ApiError("InvalidParameterValue", name="DiskBackupQuota", value=backup_quota)
        prepaid = req.DiskChargePrepaid
        if not 1 <= prepaid.Period <= 60:
            raise ApiError("InvalidParameterValue", name="DiskChargePrepaid.Period",
                           value=prepaid.Period)  # fmt: skip
        renew_flag = check_renew_flag(prepaid.RenewFlag)
        if prepaid.TimeUnit not in (None, "m"):
            raise ApiError("InvalidParameterValue", name="DiskChargePrepaid.TimeUnit",
                           value=prepaid.TimeUnit)  # fmt: skip
        name = check_disk_name(req.DiskName) if req.DiskName is not None else None
        if req.AutoMountConfiguration is not None:  # needs the TAT agent in the guest
            raise ApiError("UnsupportedOperation.TatAgentNotOnline")
        disk_tags = rules.check_tags([(t.Key, t.Value) for t in req.Tags or []])
        now = db.utcnow()
        made: list[str] = []
        world = self.world
        with world.write() as conn:
            if db.count_data_disks(conn, ctx.principal.account_id, region) + count > (
                DATA_DISK_QUOTA
            ):
                raise ApiError("LimitExceeded.DiskQuotaLimitExceeded")
            for _ in range(count):
                disk_id = _unused_disk_id(conn)
                db.insert_disk(
                    conn,
                    Disk(
                        disk_id=disk_id,
                        account_id=ctx.principal.account_id,
                        region=region,
                        zone=req.Zone,
                        instance_id=None,
                        disk_usage=DiskUsage.DATA_DISK,
                        size_gb=req.DiskSize,
                        op_job=None,
                        created_at=now,
                        pool=world.storage.pool,
                        name=name or disk_id,
                        disk_type=req.DiskType,
                        state=DiskState.PENDING,
                        latest_operation="CreateDisks",
                        latest_operation_state=OperationState.OPERATING,
                        latest_operation_request_id=ctx.request_id,
                        expired_at=now + dt.timedelta(days=30 * prepaid.Period),
                        renew_flag=renew_flag,
                        backup_quota=backup_quota,
                    ),
                )
                db.set_tags(conn, disk_id, disk_tags)
                self._enqueue(conn, ctx, CreateDisks, disk_id, None, Needs(pool=world.storage.pool))
                made.append(disk_id)
        world.notify()
        return {"DiskIdSet": made}

    def attach(self, ctx: Context, req: models.AttachDisksRequest) -> Reply:
        id_list = check_ids(ids.DISK, req.DiskIds, 100, required=True, name="DiskIds")
        check_id(ids.INSTANCE, req.InstanceId)
        if req.RenewFlag is not None:
            check_renew_flag(req.RenewFlag)
        world = self.world
        with world.write() as conn:
            instance = find_instance(conn, ctx, req.InstanceId)
            if instance.state == InstanceState.PENDING:
                raise ApiError("OperationDenied.InstanceCreating")
            if instance.rollback_running:  # (as ApplyInstanceSnapshot tells it apart)
                raise ApiError("OperationDenied.InstanceOperationInProgress")
            if instance.op_job is not None:
                raise ApiError("UnsupportedOperation.LatestOperationUnfinished")
            if instance.state not in (InstanceState.RUNNING, InstanceState.STOPPED):
                raise ApiError("UnsupportedOperation.InvalidInstanceState")
            found = [self._data_disk(conn, ctx, disk_id, "AttachDisks") for disk_id in id_list]
            for disk in found:
                if disk.zone != instance.zone:
                    raise ApiError("InvalidParameterValue.DiskInstanceZoneNotMatch")
            attached = db.attached_data_disks(conn, [instance.instance_id])
            if attached.get(instance.instance_id, 0) + len(found) > MAX_ATTACHED:
                raise ApiError("LimitExceeded.AttachDataDiskQuotaLimitExceeded")
            for disk in found:
                job_id = self._enqueue(
                    conn, ctx, AttachDisks, disk.disk_id, instance.instance_id,
                    AttachDisks.needs(instance),
                )  # fmt: skip
                db.update_disk(conn, disk.disk_id, instance_id=instance.instance_id,
                               state=DiskState.ATTACHING, op_job=job_id,
                               **_operation(ctx, "AttachDisks"))  # fmt: skip
                if req.RenewFlag is not None:
                    db.update_disk(conn, disk.disk_id, renew_flag=req.RenewFlag)
        world.notify()
        return {}

    def detach(self, ctx: Context, req: models.DetachDisksRequest) -> Reply:
        id_list = check_ids(ids.DISK, req.DiskIds, 100, required=True, name="DiskIds")
        world = self.world
        with world.write() as conn:
            found = [self._data_disk(conn, ctx, disk_id, "DetachDisks") for disk_id in id_list]
            machines = {}
            for disk in found:
                if disk.instance_id is None:  # (ATTACHED disks have one)
                    raise ApiError("UnsupportedOperation.InvalidDiskState")
                instance = find_instance(conn, ctx, disk.instance_id)
                if instance.op_job is not None:  # (as for AttachDisks)
                    raise ApiError("UnsupportedOperation.LatestOperationUnfinished")
                if instance.state not in (InstanceState.RUNNING, InstanceState.STOPPED):
                    raise ApiError("UnsupportedOperation.InvalidInstanceState")
                machines[disk.disk_id] = instance
            for disk in found:
                instance = machines[disk.disk_id]
                job_id = self._enqueue(
                    conn, ctx, DetachDisks, disk.disk_id, instance.instance_id,
                    DetachDisks.needs(instance),
                )  # fmt: skip
                db.update_disk(conn, disk.disk_id, state=DiskState.DETACHING, op_job=job_id,
                               **_operation(ctx, "DetachDisks"))  # fmt: skip
        world.notify()
        return {}

    def isolate(self, ctx: Context, req: models.IsolateDisksRequest) -> Reply:
        """UNATTACHED -> SHUTDOWN (returned: kept until TerminateDisks), done at once."""
        id_list = check_ids(ids.DISK, req.DiskIds, 100, required=True, name="DiskIds")
        if len(id_list) > ISOLATE_MAX:
            raise ApiError("LimitExceeded.IsolateResourcesLimitExceeded")
        with self.world.write() as conn:
            found = [self._data_disk(conn, ctx, disk_id, "IsolateDisks") for disk_id in id_list]
            for disk in found:
                done = _operation(ctx, "IsolateDisks", OperationState.SUCCESS)
                db.update_disk(conn, disk.disk_id, state=DiskState.SHUTDOWN, **done)
        return {}

    def terminate(self, ctx: Context, req: models.TerminateDisksRequest) -> Reply:
        """SHUTDOWN disks go, with their disk backups: the rows in one transaction (the
        backups' tombstoned), their data after it."""
        id_list = check_ids(ids.DISK, req.DiskIds, 100, required=True, name="DiskIds")
        with self.world.write() as conn:
            found = [self._data_disk(conn, ctx, disk_id, "TerminateDisks") for disk_id in id_list]
            backups = db.disk_backup_refs(conn, [d.disk_id for d in found])
            db.delete_disk_backups(conn, [ref.snapshot_id for ref in backups])
            for disk in found:
                db.delete_disk(conn, disk.disk_id)
        self.world.discard_deleted_snapshots(dict.fromkeys(backups))
        for disk in found:
            try:
                self.world.storage.delete_disk(disk.disk_id)
            except storage.StorageError as exc:  # the row is gone: the data is garbage now
                logger.warning("data of terminated disk %s not deleted: %s", disk.disk_id, exc)
        return {}

    def modify(self, ctx: Context, req: models.ModifyDisksAttributeRequest) -> Reply:
        name = check_disk_name(req.DiskName)
        return self._set(ctx, req.DiskIds, "ModifyDisksAttribute", {"name": name})

    def renew_flag(self, ctx: Context, req: models.ModifyDisksRenewFlagRequest) -> Reply:
        flag = check_renew_flag(req.RenewFlag)
        return self._set(ctx, req.DiskIds, "ModifyDisksRenewFlag", {"renew_flag": flag})

    def _set(self, ctx: Context, disk_ids: list[str], action: str, values: DiskChanges) -> Reply:
        """Set a record's attributes on every disk, once ``action`` may take all of them."""
        id_list = check_ids(ids.DISK, disk_ids, 100, required=True, name="DiskIds")
        with self.world.write() as conn:
            found = [self._data_disk(conn, ctx, disk_id, action) for disk_id in id_list]
            for disk in found:
                db.update_disk(conn, disk.disk_id, **values)
        return {}

    def resize(self, ctx: Context, req: models.ResizeDisksRequest) -> Reply:
        """Grow ATTACHED or UNATTACHED data disks. The data grows first (a sparse file, an
        RBD resize): a crash before the commit leaves a disk larger than recorded, never one
        smaller, and the next resize makes them agree."""
        id_list = check_ids(ids.DISK, req.DiskIds, 100, required=True, name="DiskIds")
        if not disk_size_sold(req.DiskSize):  # (ResizeDisks' own code for it)
            raise ApiError("InvalidParameterValue.InvalidDiskSize")
        with self.world.read() as conn:
            found = [self._data_disk(conn, ctx, disk_id, "ResizeDisks") for disk_id in id_list]
        for disk in found:
            if req.DiskSize < disk.size_gb:
                raise ApiError("InvalidParameterValue.DiskSizeSmallerThanCurrentDiskSize")
            if req.DiskSize == disk.size_gb:
                raise ApiError("UnsupportedOperation.SameWithOldConfig")
        for disk in found:
            try:
                self.world.storage.resize_disk(disk.disk_id, req.DiskSize * GiB)
            except storage.StorageError as exc:
                logger.warning("resize of %s failed: %s", disk.disk_id, exc)
                raise ApiError("FailedOperation.ResizeDisksFailed") from None
        with self.world.write() as conn:
            for disk in found:
                current = self._data_disk(conn, ctx, disk.disk_id, "ResizeDisks")  # (busy since)
                done = _operation(ctx, "ResizeDisks", OperationState.SUCCESS)
                db.update_disk(conn, current.disk_id, size_gb=req.DiskSize, **done)
        return {}

    # -- shared ---------------------------------------------------------------------------

    def _data_disk(self, conn: Connection, ctx: Context, disk_id: str, action: str) -> Disk:
        """The caller's disk in the region, if ``action`` may touch it now."""
        return rules.check_disk(action, find_disk(conn, ctx, disk_id))

    def denied_actions(self, ctx: Context, req: models.DescribeDisksDeniedActionsRequest) -> Reply:
        id_list = check_ids(ids.DISK, req.DiskIds, 100, required=True, name="DiskIds")
        with self.world.read() as conn:  # (unknown ids are left out, as for snapshots)
            found = [d for disk_id in id_list if (d := visible_disk(conn, ctx, disk_id))]
        return {
            "DiskDeniedActionSet": [
                {
                    "DiskId": disk.disk_id,
                    "DeniedActions": rules.disk_denied_actions(disk, ctx.language),
                }
                for disk in found
            ]
        }

    def _enqueue(
        self,
        conn: Connection,
        ctx: Context,
        kind: type[DiskJob],
        disk_id: str,
        instance_id: str | None,
        needs: Needs,
    ) -> int:
        job_id = kind.enqueue(
            conn,
            NoParams(),
            account_id=ctx.principal.account_id,
            instance_id=instance_id,
            request_id=ctx.request_id,
            disk_id=disk_id,
            needs=needs,
        )
        db.update_disk(conn, disk_id, op_job=job_id)
        return job_id


def visible_disk(conn: Connection, ctx: Context, disk_id: str) -> Disk | None:
    """The caller's disk in the request's region; None for another's, as for none."""
    disk = db.get_disk(conn, disk_id)
    mine = disk is not None and disk.account_id == ctx.principal.account_id
    return disk if disk is not None and mine and disk.region == (ctx.region or "") else None


def find_disk(conn: Connection, ctx: Context, disk_id: str) -> Disk:
    """The caller's disk in the request's region (another's is not found, as not there)."""
    disk = visible_disk(conn, ctx, disk_id)
    if disk is None:
        raise ApiError("ResourceNotFound.DiskIdNotFound")
    return disk


def _operation(
    ctx: Context, action: str, state: OperationState = OperationState.OPERATING
) -> dict[str, Any]:
    return {
        "latest_operation": action,
        "latest_operation_state": state,
        "latest_operation_request_id": ctx.request_id,
    }


def _unused_disk_id(conn: Connection) -> str:
    while True:
        candidate = ids.new_id(ids.DISK)
        if db.get_disk(conn, candidate) is None:
            return candidate


def disk_size_sold(size: int) -> bool:
    """A size Lighthouse sells a data disk in (DescribeDiskConfigs says the same)."""
    return MIN_DISK_GB <= size <= MAX_DISK_GB and size % DISK_STEP_GB == 0


def check_disk_size(size: int) -> int:
    if not disk_size_sold(size):
        raise ApiError("InvalidParameterValue", name="DiskSize", value=size)
    return size


def check_disk_name(name: str) -> str:
    if len(name) > DISK_NAME_MAX:
        raise ApiError("InvalidParameterValue.DiskNameTooLong")
    return rules.check_snapshot_name(name, "DiskName")  # the same characters rule


def check_renew_flag(flag: str | None) -> str:
    if flag is None:
        return "NOTIFY_AND_MANUAL_RENEW"
    if flag not in RENEW_FLAGS:
        raise ApiError("InvalidParameterValue", name="RenewFlag", value=flag)
    return flag
