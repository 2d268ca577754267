"""Snapshot actions: create, apply (roll back), describe, delete, rename, denied actions.

Create and Apply commit the new state (CREATING / ROLLBACKING, OPERATING, the RequestId) and a
durable job in one transaction *before* answering, so a poller never sees a stale SUCCESS.
What needs the drivers (the machine's power state, a probe of the disk's lock) is asked
before that transaction (``world.probe``) and answered inside it, in the order of refusals.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, Connection

from lightkeeper import storage
from lightkeeper.api.registry import Context, Reply
from lightkeeper.domain import ids, rules
from lightkeeper.domain.model import (
    APPLY_SNAPSHOT,
    CREATE_SNAPSHOT,
    ROLLBACK_SNAPSHOT,
    Instance,
    InstanceState,
    OperationState,
    Snapshot,
    SnapshotState,
)
from lightkeeper.domain.principal import Principal
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse import models
from lightkeeper.lighthouse.checks import check_filters, check_id, check_ids, check_paging
from lightkeeper.lighthouse.jobs.apply_snapshot import ApplyParams, ApplySnapshot
from lightkeeper.lighthouse.jobs.base import NoParams
from lightkeeper.lighthouse.jobs.create_snapshot import CreateSnapshot
from lightkeeper.lighthouse.lookup import find_instance, find_snapshot, in_region
from lightkeeper.lighthouse.views import snapshot_view
from lightkeeper.lighthouse.world import World, probe
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.tables import snapshots as snapshots_table

SNAPSHOT_FILTERS = (
    "snapshot-id",
    "disk-id",
    "snapshot-name",
    "instance-id",
    "tag-key",
    "tag-value",
    "tag:",
)
FILTER_ID_PREFIXES = {"snapshot-id": ids.SNAPSHOT, "disk-id": ids.DISK, "instance-id": ids.INSTANCE}
FILTER_COLUMNS = {
    "snapshot-id": snapshots_table.c.snapshot_id,
    "disk-id": snapshots_table.c.disk_id,
    "snapshot-name": snapshots_table.c.name,
    "instance-id": snapshots_table.c.instance_id,
}


def _rollback_targets(
    conn: Connection, ctx: Context, instance_id: str, snapshot_id: str
) -> tuple[Instance, Snapshot]:
    """The instance and the snapshot of its disk an ApplyInstanceSnapshot is about."""
    instance = find_instance(conn, ctx, instance_id)
    snapshot = db.get_snapshot(conn, snapshot_id, ctx.principal.account_id)
    if snapshot is None:
        raise ApiError("ResourceNotFound.SnapshotIdNotFound")
    if snapshot.disk_id != instance.disk_id:
        raise ApiError("ResourceNotFound.SnapshotNotFound")
    return instance, snapshot


class SnapshotService:
    def __init__(self, world: World) -> None:
        self.world = world

    # -- CreateInstanceSnapshot -------------------------------------------------------------

    def region_of(self, principal: Principal, params: Mapping[str, Any]) -> str | None:
        """CreateInstanceSnapshot may omit Region (the seed): the call is then about the
        region of the caller's instance, for CAM conditions, resources and the rate limit
        alike. None when there is no such instance (the call can only fail)."""
        instance_id = params.get("InstanceId")
        if not isinstance(instance_id, str) or not ids.is_valid(ids.INSTANCE, instance_id):
            return None
        with self.world.read() as conn:
            instance = db.get_instance(conn, instance_id, principal.account_id, tags=False)
        return None if instance is None else instance.region

    def create(self, ctx: Context, req: models.CreateInstanceSnapshotRequest) -> Reply:
        instance_id = check_id(ids.INSTANCE, req.InstanceId)
        name = rules.check_snapshot_name(req.SnapshotName) if req.SnapshotName is not None else None
        tags = rules.check_tags([(t.Key, t.Value) for t in req.Tags or []])
        world = self.world
        with world.read() as conn:
            before = find_instance(conn, ctx, instance_id)
        power = probe(lambda: world.power_state(before))
        disk = before.system_disk
        stopped = before.state == InstanceState.STOPPED
        disk_usable = probe(
            lambda: world.check_disk_usable(disk.disk_id, disk.pool, machine_stopped=stopped)
        )
        with world.write(
            world.options.quota_lock_timeout, "InternalError.GetSnapshotAllocQuotaLockError"
        ) as conn:
            instance = find_instance(conn, ctx, instance_id)
            power()
            snapshot_id = ids.new_id(ids.SNAPSHOT)
            per_instance = world.options.snapshot_quota_per_instance
            maximum = world.options.snapshot_quota_max
            checks = db.create_checks(
                conn,
                instance.account_id,
                instance.region,
                instance.blueprint_id,
                snapshot_id,
                rules.quota_counts_that_matter(per_instance, maximum),
            )
            quota = rules.snapshot_quota(checks.quota_instances, per_instance, maximum)
            rules.check_create_snapshot(instance, checks.blueprint_exists, quota, checks.snapshots)
            disk_usable()
            now = db.utcnow()
            snapshot = Snapshot(
                snapshot_id=_unused_id(conn) if checks.id_taken else snapshot_id,
                account_id=instance.account_id,
                region=instance.region,
                instance_id=instance_id,
                disk_id=instance.disk_id,
                disk_size_gb=instance.disk_size_gb,
                name=name if name is not None else f"{instance.name}-{now:%m%d%H%M%S}"[-60:],
                state=SnapshotState.CREATING,
                percent=0,
                latest_operation=CREATE_SNAPSHOT,
                latest_operation_state=OperationState.OPERATING,
                latest_operation_request_id=ctx.request_id,
                created_at=now,
                checksum=None,
                corrupt=False,
                tags=tags,
            )
            db.insert_snapshot(conn, snapshot)
            job_id = CreateSnapshot.enqueue(
                conn,
                NoParams(),
                account_id=instance.account_id,
                instance_id=instance_id,
                disk_id=instance.disk_id,
                snapshot_id=snapshot.snapshot_id,
                request_id=ctx.request_id,
                needs=CreateSnapshot.needs(instance),
            )
            db.update_disk(conn, instance.disk_id, op_job=job_id)
        world.notify()
        return {"SnapshotId": snapshot.snapshot_id}

    # -- ApplyInstanceSnapshot --------------------------------------------------------------

    def apply(self, ctx: Context, req: models.ApplyInstanceSnapshotRequest) -> Reply:
        instance_id = check_id(ids.INSTANCE, req.InstanceId)
        snapshot_id = check_id(ids.SNAPSHOT, req.SnapshotId)
        world = self.world
        with world.read() as conn:
            before = _rollback_targets(conn, ctx, instance_id, snapshot_id)[0]
        power = probe(lambda: world.power_state(before))
        disk = before.system_disk
        stopped = before.state == InstanceState.STOPPED
        disk_usable = probe(
            lambda: world.check_disk_usable(disk.disk_id, disk.pool, machine_stopped=stopped)
        )
        snapshot_usable = probe(
            lambda: world.check_snapshot_usable(disk.disk_id, snapshot_id, disk.pool)
        )
        with world.write() as conn:
            instance, snapshot = _rollback_targets(conn, ctx, instance_id, snapshot_id)
            was_running = power() == "RUNNING"
            rules.check_apply_snapshot(instance, snapshot)
            if jobs.queued(conn) >= world.options.max_queued_jobs:
                raise ApiError("UnsupportedOperation.SystemBusy")
            disk_usable()
            snapshot_usable()
            job_id = ApplySnapshot.enqueue(
                conn,
                ApplyParams(was_running=was_running),
                account_id=instance.account_id,
                instance_id=instance_id,
                disk_id=instance.disk_id,
                snapshot_id=snapshot_id,
                request_id=ctx.request_id,
                needs=ApplySnapshot.needs(instance),
            )
            db.update_snapshot(
                conn,
                snapshot_id,
                state=SnapshotState.ROLLBACKING,
                percent=0,
                latest_operation=ROLLBACK_SNAPSHOT,
                latest_operation_state=OperationState.OPERATING,
                latest_operation_request_id=ctx.request_id,
            )
            running = instance.state == InstanceState.RUNNING
            db.update_instance(
                conn,
                instance_id,
                state=InstanceState.STOPPING if running else instance.state,
                latest_operation=APPLY_SNAPSHOT,
                latest_operation_state=OperationState.OPERATING,
                latest_operation_request_id=ctx.request_id,
                latest_operation_started_at=db.utcnow(),
                op_job=job_id,
            )
            db.update_disk(conn, instance.disk_id, op_job=job_id)
        world.notify()
        return {}

    # -- DescribeSnapshots ------------------------------------------------------------------

    def describe(self, ctx: Context, req: models.DescribeSnapshotsRequest) -> Reply:
        if req.SnapshotIds is not None and req.Filters is not None:
            raise ApiError.variant(
                "InvalidParameter.ParameterConflict#ids_filters", ids="SnapshotIds"
            )
        offset, limit = check_paging(req.Offset, req.Limit)
        where: list[ColumnElement[bool]] = []
        if req.SnapshotIds is not None:
            id_list = check_ids(ids.SNAPSHOT, req.SnapshotIds, 100)
            where.append(snapshots_table.c.snapshot_id.in_(id_list))
        filters = check_filters(req.Filters or [], SNAPSHOT_FILTERS, 5, FILTER_ID_PREFIXES)
        for value in filters.get("snapshot-name", []):
            rules.check_snapshot_name(value, "Filters.Values")
        for name, values in filters.items():
            column = FILTER_COLUMNS.get(name)
            if column is not None:
                where.append(column.in_(values))
            else:
                where.append(db.tag_clause(snapshots_table.c.snapshot_id, name, values))
        with self.world.read() as conn:
            total, found = db.list_snapshots(
                conn, ctx.principal.account_id, ctx.region, where, offset, limit
            )
        return {"TotalCount": total, "SnapshotSet": [snapshot_view(s) for s in found]}

    # -- DeleteSnapshots --------------------------------------------------------------------

    def delete(self, ctx: Context, req: models.DeleteSnapshotsRequest) -> Reply:
        id_list = check_ids(ids.SNAPSHOT, req.SnapshotIds, 10, required=True, name="SnapshotIds")
        world = self.world
        with world.read() as conn:
            before = db.get_snapshots(conn, ctx.principal.account_id, id_list)
            pools = db.disk_pools(conn, [s.disk_id for s in before.values()])
        usable = {
            s: probe(
                partial(world.check_snapshot_usable, snapshot.disk_id, s, pools[snapshot.disk_id])
            )
            for s in id_list
            if (snapshot := in_region(ctx, before.get(s))) is not None
        }
        with world.write() as conn:
            found = db.get_snapshots(conn, ctx.principal.account_id, id_list)
            for snapshot_id in id_list:
                snapshot = in_region(ctx, found.get(snapshot_id))
                if snapshot is None or snapshot_id not in usable:
                    raise ApiError("ResourceNotFound.SnapshotIdNotFound")
                rules.check_delete_snapshot(snapshot)
                usable[snapshot_id]()
            db.delete_snapshots(conn, id_list)
        # After the commit: data that cannot be removed now keeps its tombstone and is
        # removed at the next start (of a node of its pool: data this node does not reach).
        world.discard_deleted_snapshots(
            {
                storage.SnapshotRef(found[s].disk_id, s): found[s].instance_id
                for s in id_list
                if world.reaches(pools[found[s].disk_id])
            }
        )
        return {}

    # -- ModifySnapshotAttribute ------------------------------------------------------------

    def modify(self, ctx: Context, req: models.ModifySnapshotAttributeRequest) -> Reply:
        snapshot_id = check_id(ids.SNAPSHOT, req.SnapshotId)
        name = rules.check_snapshot_name(req.SnapshotName) if req.SnapshotName is not None else None
        with self.world.write() as conn:
            find_snapshot(conn, ctx, snapshot_id)
            if name is not None:
                db.update_snapshot(conn, snapshot_id, name=name)
        return {}

    # -- DescribeSnapshotsDeniedActions -----------------------------------------------------

    def denied_actions(
        self, ctx: Context, req: models.DescribeSnapshotsDeniedActionsRequest
    ) -> Reply:
        id_list = check_ids(ids.SNAPSHOT, req.SnapshotIds, 100, required=True, name="SnapshotIds")
        result: list[dict[str, Any]] = []
        with self.world.read() as conn:
            found = db.get_snapshots(conn, ctx.principal.account_id, id_list)
            for snapshot_id in id_list:
                snapshot = in_region(ctx, found.get(snapshot_id))
                if snapshot is None:
                    continue
                instance = db.get_instance(conn, snapshot.instance_id, tags=False)
                denied = rules.snapshot_denied_actions(snapshot, instance, ctx.language)
                result.append({"SnapshotId": snapshot_id, "DeniedActions": denied})
        return {"SnapshotDeniedActionSet": result}


def _unused_id(conn: Connection) -> str:
    while True:
        candidate = ids.new_id(ids.SNAPSHOT)
        if db.get_snapshot(conn, candidate) is None:
            return candidate
