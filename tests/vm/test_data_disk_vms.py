"""Data disks and their backups with real machines (qcow2 + qemu) through the official SDK:
a data disk hot-plugged into the running guest, backed up live while the guest runs (QEMU
snapshots the data disk's node), rolled back (the guest is forced off first), unplugged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from testkit import world
from testkit.server import Server

from tests.lighthouse.test_data_disks import call, create_disks, wait_state
from tests.lighthouse.test_disk_backups import wait_backup
from tests.vm.test_live_snapshots import kill_own_vms, vm_args, wait_written


def test_a_data_disk_on_a_running_guest(
    make_server: Callable[..., Server], guest: tuple[Path, Path]
) -> None:
    server = make_server(*vm_args(guest))
    try:
        account = world.new_account(server, "vm-data")
        c = world.client(server, account)
        instance_id = world.create_instance(server, account)["InstanceId"]
        wait_written(server, instance_id, 10)  # the guest is up
        (disk_id,) = create_disks(c, DiskBackupQuota=1)
        wait_state(c, [disk_id], "UNATTACHED")
        call(c, "AttachDisks", DiskIds=[disk_id], InstanceId=instance_id)
        wait_state(c, [disk_id], "ATTACHED")
        backup_id = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
        assert wait_backup(c, backup_id).DiskBackupState == "NORMAL"
        assert world.instance(c, instance_id).InstanceState == "RUNNING"  # backed up live

        call(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=backup_id)
        assert wait_backup(c, backup_id).LatestOperationState == "SUCCESS"
        assert world.instance(c, instance_id).InstanceState == "STOPPED"  # forced off first
        call(c, "DetachDisks", DiskIds=[disk_id])
        assert wait_state(c, [disk_id], "UNATTACHED")[disk_id].InstanceId == ""
    finally:
        kill_own_vms(server)
