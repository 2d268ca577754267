"""CAM for Lighthouse: which resources each action touches (lighthouse-facts §6.3).

Actions not in the table are operation-level: only statements whose resource is ``*`` grant
them. A refusal names the action and the first resource not granted, CAM style.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightkeeper.api.registry import Context
from lightkeeper.domain import cam
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse.world import World
from lightkeeper.store import resources as db

Resources = Callable[[Any], list[tuple[str, str]]]  # request -> [(type, id)]


def _instances(req: Any) -> list[tuple[str, str]]:
    return [("instance", i) for i in req.InstanceIds]


def _snapshots(req: Any) -> list[tuple[str, str]]:
    return [("snapshot", s) for s in req.SnapshotIds]


RESOURCE_LEVEL: dict[str, Resources] = {
    "CreateInstanceSnapshot": lambda r: [("instance", r.InstanceId), ("snapshot", "*")],
    "ApplyInstanceSnapshot": lambda r: [("instance", r.InstanceId), ("snapshot", r.SnapshotId)],
    "DeleteSnapshots": _snapshots,
    "DescribeSnapshotsDeniedActions": _snapshots,
    "ModifySnapshotAttribute": lambda r: [("snapshot", r.SnapshotId)],
    "StartInstances": _instances,
    "StopInstances": _instances,
    "RebootInstances": _instances,
    "DescribeInstancesDeniedActions": _instances,
}


class CamAuthorizer:
    def __init__(self, world: World) -> None:
        self.world = world

    def authorize(self, ctx: Context, request: Any) -> None:
        resolver = RESOURCE_LEVEL.get(ctx.action)
        if resolver is None:
            names: tuple[str, ...] = ("*",)
        else:
            region = self._region(ctx, request)
            names = tuple(
                cam.resource_name(region, ctx.principal.uin, kind, ident)
                for kind, ident in resolver(request)
            )
        question = cam.Request(
            action=f"{cam.SERVICE}:{ctx.action}",
            resources=names,
            context={"qcs:ip": ctx.client_ip, "qcs:requested_region": ctx.region or ""},
        )
        refused = cam.check(ctx.principal.policies, question)
        if refused is not None:
            raise ApiError(
                "UnauthorizedOperation.NoPermission", action=question.action, resource=refused
            )

    def _region(self, ctx: Context, request: Any) -> str:
        """CreateInstanceSnapshot may omit Region: use the caller's instance's region."""
        if ctx.region is not None:
            return ctx.region
        instance_id = getattr(request, "InstanceId", None)
        if instance_id:
            with self.world.read() as conn:
                instance = db.get_instance(conn, instance_id, ctx.principal.account_id)
            if instance is not None:
                return instance.region
        return ""
