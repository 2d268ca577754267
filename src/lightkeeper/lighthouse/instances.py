"""Instance actions: DescribeInstances, Start/Stop/RebootInstances and their denied actions."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import ColumnElement

from lightkeeper.api.registry import Context, Reply
from lightkeeper.domain import ids, rules
from lightkeeper.domain.model import Instance, InstanceState, OperationState
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse import models
from lightkeeper.lighthouse.checks import check_filters, check_ids, check_paging
from lightkeeper.lighthouse.jobs.base import NoParams, Params
from lightkeeper.lighthouse.jobs.power import (
    STOP_TYPES,
    Power,
    RebootInstances,
    StartInstances,
    StopInstances,
    StopParams,
)
from lightkeeper.lighthouse.lookup import find_instance, in_region
from lightkeeper.lighthouse.views import instance_view
from lightkeeper.lighthouse.world import World, probe
from lightkeeper.store import resources as db
from lightkeeper.store.tables import instances as instances_table

INSTANCE_FILTERS = (
    "instance-name",
    "private-ip-address",
    "public-ip-address",
    "zone",
    "instance-state",
    "bundle-id",
    "tag-key",
    "tag-value",
    "tag:",
)
FILTER_COLUMNS = {
    "instance-name": instances_table.c.name,
    "private-ip-address": instances_table.c.private_ip,
    "public-ip-address": instances_table.c.public_ip,
    "zone": instances_table.c.zone,
    "instance-state": instances_table.c.state,
    "bundle-id": instances_table.c.bundle_id,
}
P = TypeVar("P", bound=Params)


class InstanceService:
    def __init__(self, world: World) -> None:
        self.world = world

    def describe(self, ctx: Context, req: models.DescribeInstancesRequest) -> Reply:
        if req.InstanceIds is not None and req.Filters is not None:
            raise ApiError.variant(
                "InvalidParameter.ParameterConflict#ids_filters", ids="InstanceIds"
            )
        if req.Order is not None and req.OrderField is None:
            raise ApiError("MissingParameter.OrderFieldRequired")
        if req.OrderField is not None and req.OrderField != "EXPIRED_TIME":
            raise ApiError("InvalidParameterValue", name="OrderField", value=req.OrderField)
        if req.Order is not None and req.Order not in ("ASC", "DESC"):
            raise ApiError("InvalidParameterValue", name="Order", value=req.Order)
        offset, limit = check_paging(req.Offset, req.Limit)
        where: list[ColumnElement[bool]] = []
        if req.InstanceIds is not None:
            id_list = check_ids(ids.INSTANCE, req.InstanceIds, 100)
            where.append(instances_table.c.instance_id.in_(id_list))
        filters = check_filters(req.Filters or [], INSTANCE_FILTERS, 100)
        for name, values in filters.items():
            column = FILTER_COLUMNS.get(name)
            if column is not None:
                where.append(column.in_(values))
            else:
                where.append(db.tag_clause(instances_table.c.instance_id, name, values))
        order: list[ColumnElement[Any]] = []
        if req.OrderField == "EXPIRED_TIME":  # the whole result is ordered, then paged
            columns = (instances_table.c.expired_at, instances_table.c.instance_id)
            order = [c.desc() if req.Order == "DESC" else c.asc() for c in columns]
        with self.world.read() as conn:
            total, found = db.list_instances(
                conn, ctx.principal.account_id, ctx.region or "", where, offset, limit, order
            )
            images = db.get_blueprints(conn, (i.blueprint_id for i in found))
        return {
            "TotalCount": total,
            "InstanceSet": [instance_view(i, images.get(i.blueprint_id)) for i in found],
        }

    def start(self, ctx: Context, req: models.StartInstancesRequest) -> Reply:
        return self._power(ctx, StartInstances, req.InstanceIds, NoParams())

    def stop(self, ctx: Context, req: models.StopInstancesRequest) -> Reply:
        stop_type = req.StopType or "SOFT_FIRST"
        if stop_type not in STOP_TYPES:
            raise ApiError("InvalidParameterValue", name="StopType", value=stop_type)
        params = StopParams(stop_type=stop_type)
        return self._power(ctx, StopInstances, req.InstanceIds, params)

    def reboot(self, ctx: Context, req: models.RebootInstancesRequest) -> Reply:
        return self._power(ctx, RebootInstances, req.InstanceIds, NoParams())

    def _power(
        self, ctx: Context, kind: type[Power[P]], instance_ids: list[str], params: P
    ) -> Reply:
        """Validate the whole batch, then mark every instance and queue one job each. The
        machines' power states are asked before the transaction, answered in it in order."""
        id_list = check_ids(ids.INSTANCE, instance_ids, 100, required=True, name="InstanceIds")
        action = kind.name
        world = self.world
        with world.read() as conn:
            found = [
                instance
                for i in id_list
                if (
                    instance := in_region(
                        ctx, db.get_instance(conn, i, ctx.principal.account_id, tags=False)
                    )
                )
                is not None
            ]
        powers: dict[str, Callable[[], object]] = {
            i.instance_id: probe(partial(world.power_state, i)) for i in found
        }
        with world.write() as conn:
            targets: list[tuple[Instance, InstanceState]] = []
            for instance_id in id_list:
                instance = find_instance(conn, ctx, instance_id)
                if instance_id not in powers:  # created while this call was checked
                    raise ApiError("ResourceNotFound.InstanceIdNotFound")
                powers[instance_id]()
                if action == "StartInstances" and world.orphaned(instance):
                    instance = world.adopt(conn, instance)
                targets.append((instance, rules.check_power(action, instance)))
            for instance, transitional in targets:
                job_id = kind.enqueue(
                    conn,
                    params,
                    account_id=instance.account_id,
                    instance_id=instance.instance_id,
                    request_id=ctx.request_id,
                    needs=kind.needs(instance),
                )
                db.update_instance(
                    conn,
                    instance.instance_id,
                    state=transitional,
                    latest_operation=action,
                    latest_operation_state=OperationState.OPERATING,
                    latest_operation_request_id=ctx.request_id,
                    latest_operation_started_at=db.utcnow(),
                    op_job=job_id,
                )
        world.notify()
        return {}

    def denied_actions(
        self, ctx: Context, req: models.DescribeInstancesDeniedActionsRequest
    ) -> Reply:
        id_list = check_ids(ids.INSTANCE, req.InstanceIds, 100, required=True, name="InstanceIds")
        result = []
        with self.world.read() as conn:
            for instance_id in id_list:
                instance = find_instance(conn, ctx, instance_id)
                result.append(
                    {
                        "InstanceId": instance_id,
                        "DeniedActions": rules.instance_denied_actions(instance, ctx.language),
                    }
                )
        return {"InstanceDeniedActionSet": result}
