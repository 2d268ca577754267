"""Disk actions, read side: DescribeDisks, DescribeInstancesDiskNum, DescribeDiskConfigs.

Every disk is a row of ``disks`` (issue #12): today the instances' system disks, described as
the SDK's ``Disk``; data disks (CreateDisks, AttachDisks...) are the rest of issue #18.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement

from lightkeeper.api.registry import Context, Reply
from lightkeeper.domain import ids
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse import models
from lightkeeper.lighthouse.checks import check_filters, check_ids, check_paging
from lightkeeper.lighthouse.views import disk_view
from lightkeeper.lighthouse.world import World
from lightkeeper.regions import Region
from lightkeeper.store import resources as db
from lightkeeper.store.tables import disks as disks_table
from lightkeeper.store.tables import instances as instances_table

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
        offset, limit = check_paging(req.Offset, req.Limit)
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
            tag_map = db.tags_for(conn, [r.disk.disk_id for r in rows])
        return {
            "DiskSet": [disk_view(r, tag_map[r.disk.disk_id]) for r in rows],
            "TotalCount": total,
        }

    def disk_num(self, ctx: Context, req: models.DescribeInstancesDiskNumRequest) -> Reply:
        wanted = check_ids(ids.INSTANCE, req.InstanceIds, 100, required=True, name="InstanceIds")
        with self.world.read() as conn:
            found = {
                row.instance_id
                for row in conn.execute(
                    instances_table.select().where(
                        instances_table.c.instance_id.in_(wanted),
                        instances_table.c.account_id == ctx.principal.account_id,
                        instances_table.c.region == (ctx.region or ""),
                    )
                )
            }
            missing = [i for i in wanted if i not in found]
            if missing:
                raise ApiError("ResourceNotFound.InstanceIdNotFound", instance_id=missing[0])
            counts = db.attached_data_disks(conn, wanted)
        return {
            "AttachDetailSet": [
                {"InstanceId": i, "AttachedDiskCount": counts.get(i, 0), "MaxAttachCount": 5}
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
