"""The one rule for finding a caller's resource: their account, the request's region.

A call without a region finds nothing here: every action but CreateInstanceSnapshot requires
Region, and a region-less CreateInstanceSnapshot has its instance's region by then
(``SnapshotService.region_of``), or none when the caller has no such instance.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from sqlalchemy import Connection

from lightkeeper.api.registry import Context
from lightkeeper.domain.model import Instance, Snapshot
from lightkeeper.errors import ApiError
from lightkeeper.store import resources as db


class Regional(Protocol):
    @property
    def region(self) -> str: ...


R = TypeVar("R", bound=Regional)


def in_region(ctx: Context, found: R | None) -> R | None:
    """``found`` if it is in the request's region (the caller's account was already
    checked by the query that found it), else None."""
    if found is None or ctx.region is None or found.region != ctx.region:
        return None
    return found


def find_instance(conn: Connection, ctx: Context, instance_id: str) -> Instance:
    """The caller's instance in the request's region, without its tags (no caller shows it)."""
    account_id = ctx.principal.account_id
    instance = in_region(ctx, db.get_instance(conn, instance_id, account_id, tags=False))
    if instance is None:
        raise ApiError("ResourceNotFound.InstanceIdNotFound")
    return instance


def find_snapshot(conn: Connection, ctx: Context, snapshot_id: str) -> Snapshot:
    snapshot = in_region(ctx, db.get_snapshot(conn, snapshot_id, ctx.principal.account_id))
    if snapshot is None:
        raise ApiError("ResourceNotFound.SnapshotIdNotFound")
    return snapshot
