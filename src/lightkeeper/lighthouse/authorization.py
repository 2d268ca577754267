"""CAM for Lighthouse: which resources each action touches (lighthouse-facts §6.3).

Actions not in the table are operation-level: only statements whose resource is ``*`` grant
them. A refusal names the action and the first resource not granted, CAM style. The region
of the resources and of ``qcs:requested_region`` is the call's: the one requested or, for a
region-less CreateInstanceSnapshot, its instance's (set by the front end, ``Action.region_of``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lightkeeper.api.registry import Context
from lightkeeper.domain import cam
from lightkeeper.errors import ApiError

Resources = Callable[[Any], list[tuple[str, str]]]  # request -> [(type, id)]


def _instances(req: Any) -> list[tuple[str, str]]:
    return [("instance", i) for i in req.InstanceIds]


def _snapshots(req: Any) -> list[tuple[str, str]]:
    return [("snapshot", s) for s in req.SnapshotIds]


def _disks(req: Any) -> list[tuple[str, str]]:
    return [("disk", d) for d in req.DiskIds]


def _backups(req: Any) -> list[tuple[str, str]]:
    return [("disk-backup", b) for b in req.DiskBackupIds]


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
    "CreateDisks": lambda r: [("disk", "*")],
    "AttachDisks": lambda r: [("instance", r.InstanceId), *_disks(r)],
    "DetachDisks": _disks,
    "IsolateDisks": _disks,
    "TerminateDisks": _disks,
    "ModifyDisksAttribute": _disks,
    "ResizeDisks": _disks,
    "ModifyDisksRenewFlag": _disks,
    "CreateDiskBackup": lambda r: [("disk", r.DiskId), ("disk-backup", "*")],
    "ApplyDiskBackup": lambda r: [("disk", r.DiskId), ("disk-backup", r.DiskBackupId)],
    "DeleteDiskBackups": _backups,
    "ModifyDiskBackupsAttribute": _backups,
    "DescribeDiskBackupsDeniedActions": _backups,
    "ModifyDisksBackupQuota": _disks,
    "DescribeDisksDeniedActions": _disks,
}


class CamAuthorizer:
    """Stateless: the principal's policies come with the call (``Context.principal``)."""

    def authorize(self, ctx: Context, request: Any) -> None:
        resolver = RESOURCE_LEVEL.get(ctx.action)
        if resolver is None:
            names: tuple[str, ...] = ("*",)
        else:
            names = tuple(
                cam.resource_name(ctx.region or "", ctx.principal.uin, kind, ident)
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
