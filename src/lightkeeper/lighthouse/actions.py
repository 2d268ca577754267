"""The one action table: action name -> request model, handler and rate limit (per second).

Rate limits are the documented ones (lighthouse-facts §4.6): 20/s for every snapshot API,
100/s DescribeInstances, 10/s StopInstances, DescribeInstancesDeniedActions and DescribeRegions.
Where Tencent documents none, 20/s (recorded in docs/behaviour.md). ``reads=True`` marks the
handlers that only read the database (the front end may run them on its event loop).
"""

from __future__ import annotations

from lightkeeper.api.registry import Action, Handler, RegionOf
from lightkeeper.lighthouse.disk_backups import DiskBackupService
from lightkeeper.lighthouse.disks import DataDiskService, DiskService
from lightkeeper.lighthouse.instances import InstanceService
from lightkeeper.lighthouse.models import REQUEST_MODELS
from lightkeeper.lighthouse.quotas import QuotaService
from lightkeeper.lighthouse.regions import RegionService
from lightkeeper.lighthouse.snapshots import SnapshotService
from lightkeeper.lighthouse.world import World


def build_registry(regions: RegionService, world: World) -> dict[str, Action]:
    snapshots = SnapshotService(world)
    instances = InstanceService(world)
    quotas = QuotaService(world)
    disks = DiskService(world, tuple(regions.regions.values()))
    data_disks = DataDiskService(world, tuple(regions.regions.values()))
    backups = DiskBackupService(world)

    def action(
        name: str,
        handler: Handler,
        limit: int,
        region_required: bool = True,
        reads: bool = False,
        region_of: RegionOf | None = None,
    ) -> Action:
        return Action(name, REQUEST_MODELS[name], handler, limit, region_required, reads, region_of)

    table = [
        action("DescribeRegions", regions.describe_regions, 10, region_required=False, reads=True),
        action("DescribeZones", regions.describe_zones, 20, reads=True),
        action(
            "CreateInstanceSnapshot",
            snapshots.create,
            20,
            region_required=False,
            region_of=snapshots.region_of,
        ),
        action("ApplyInstanceSnapshot", snapshots.apply, 20),
        action("DescribeSnapshots", snapshots.describe, 20, reads=True),
        action("DeleteSnapshots", snapshots.delete, 20),
        action("ModifySnapshotAttribute", snapshots.modify, 20),
        action("DescribeSnapshotsDeniedActions", snapshots.denied_actions, 20, reads=True),
        action("DescribeInstances", instances.describe, 100, reads=True),
        action("DescribeInstancesDeniedActions", instances.denied_actions, 10, reads=True),
        action("StartInstances", instances.start, 20),
        action("StopInstances", instances.stop, 10),
        action("RebootInstances", instances.reboot, 20),
        action("DescribeGeneralResourceQuotas", quotas.describe, 20, reads=True),
        action("DescribeDisks", disks.describe, 20, reads=True),
        action("DescribeInstancesDiskNum", disks.disk_num, 20, reads=True),
        action("DescribeDiskConfigs", disks.configs, 20, reads=True),
        action("CreateDisks", data_disks.create, 20),
        action("AttachDisks", data_disks.attach, 20),
        action("DetachDisks", data_disks.detach, 20),
        action("IsolateDisks", data_disks.isolate, 20),
        action("TerminateDisks", data_disks.terminate, 20),
        action("ModifyDisksAttribute", data_disks.modify, 20),
        action("ResizeDisks", data_disks.resize, 20),
        action("ModifyDisksRenewFlag", data_disks.renew_flag, 20),
        action("DescribeDisksDeniedActions", data_disks.denied_actions, 20, reads=True),
        action("CreateDiskBackup", backups.create, 20),
        action("ApplyDiskBackup", backups.apply, 20),
        action("DescribeDiskBackups", backups.describe, 20, reads=True),
        action("DeleteDiskBackups", backups.delete, 20),
        action("ModifyDiskBackupsAttribute", backups.modify, 20),
        action("DescribeDiskBackupsDeniedActions", backups.denied_actions, 20, reads=True),
        action("ModifyDisksBackupQuota", backups.quota, 20),
    ]
    return {a.name: a for a in table}
