"""The Terraform provider's call sequences for ``tencentcloud_lighthouse_disk``,
``_disk_attachment``, ``_disk_backup`` and ``_apply_disk_backup``
(terraform-provider-tencentcloud, services/lighthouse/resource_tc_lighthouse_*disk*.go and
service_tencentcloud_lighthouse.go), replayed through the official SDK with the provider's
own waits: create, poll, read, update, attach, detach, apply, delete."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Server

POLL = 0.2  # the provider polls every second; faster here, the same sequence


def describe_by_id(c: Any, disk_id: str) -> Any:
    """``DescribeLighthouseDiskById``: DescribeDisks by id, nil when absent."""
    request = models.DescribeDisksRequest()
    request.DiskIds = [disk_id]
    found = c.DescribeDisks(request).DiskSet
    return found[0] if found else None


def wait_for(read: Any, targets: set[str], timeout: float = 30) -> str:
    """``BuildStateChangeConf(..., targets, ...).WaitForState()``."""
    deadline = time.monotonic() + timeout
    while (value := read()) not in targets:
        assert time.monotonic() < deadline, f"still {value}, waiting for {targets}"
        time.sleep(POLL)
    return str(value)


def test_disk_resource_create_read_update_delete(server: Server) -> None:
    account = world.new_account(server, "tf-disk")
    c = world.client(server, account)
    # Create: CreateDisks, then wait for UNATTACHED or ATTACHED, then Read.
    create = models.CreateDisksRequest()
    create.Zone, create.DiskSize, create.DiskType = "ap-guangzhou-3", 20, "CLOUD_SSD"
    prepaid = models.DiskChargePrepaid()
    prepaid.Period, prepaid.RenewFlag, prepaid.TimeUnit = 1, "NOTIFY_AND_AUTO_RENEW", "m"
    create.DiskChargePrepaid, create.DiskName = prepaid, "test"
    (disk_id,) = c.CreateDisks(create).DiskIdSet
    wait_for(lambda: describe_by_id(c, disk_id).DiskState, {"UNATTACHED", "ATTACHED"})
    disk = describe_by_id(c, disk_id)
    assert (disk.Zone, disk.DiskSize, disk.DiskType, disk.DiskName, disk.DiskBackupQuota) == (
        "ap-guangzhou-3",
        20,
        "CLOUD_SSD",
        "test",
        0,
    )
    assert disk.RenewFlag == "NOTIFY_AND_AUTO_RENEW"

    # Update: ModifyDisksAttribute (disk_name), ModifyDisksRenewFlag, then Read.
    modify = models.ModifyDisksAttributeRequest()
    modify.DiskIds, modify.DiskName = [disk_id], "test-renamed"
    c.ModifyDisksAttribute(modify)
    renew = models.ModifyDisksRenewFlagRequest()
    renew.DiskIds, renew.RenewFlag = [disk_id], "NOTIFY_AND_MANUAL_RENEW"
    c.ModifyDisksRenewFlag(renew)
    disk = describe_by_id(c, disk_id)
    assert (disk.DiskName, disk.RenewFlag) == ("test-renamed", "NOTIFY_AND_MANUAL_RENEW")

    # The attachment resource: AttachDisks, wait ATTACHED, Read; Delete: DetachDisks, wait
    # UNATTACHED.
    instance_id = world.create_instance(server, account)["InstanceId"]
    attach = models.AttachDisksRequest()
    attach.DiskIds, attach.InstanceId = [disk_id], instance_id
    c.AttachDisks(attach)
    wait_for(lambda: describe_by_id(c, disk_id).DiskState, {"ATTACHED"})
    attached = describe_by_id(c, disk_id)
    assert (attached.DiskId, attached.InstanceId) == (disk_id, instance_id)
    detach = models.DetachDisksRequest()
    detach.DiskIds = [disk_id]
    c.DetachDisks(detach)
    wait_for(lambda: describe_by_id(c, disk_id).DiskState, {"UNATTACHED"})

    # Delete: IsolateDisks, wait for LatestOperationState SUCCESS, TerminateDisks; the next
    # Read finds nothing (the provider then drops the resource from its state).
    isolate = models.IsolateDisksRequest()
    isolate.DiskIds = [disk_id]
    c.IsolateDisks(isolate)
    wait_for(lambda: describe_by_id(c, disk_id).LatestOperationState, {"SUCCESS"})
    assert describe_by_id(c, disk_id).LatestOperation == "IsolateDisks"
    terminate = models.TerminateDisksRequest()
    terminate.DiskIds = [disk_id]
    c.TerminateDisks(terminate)
    assert describe_by_id(c, disk_id) is None


def describe_backup_by_id(c: Any, backup_id: str) -> Any:
    """``DescribeLighthouseDiskBackupById``: DescribeDiskBackups by id, nil when absent."""
    request = models.DescribeDiskBackupsRequest()
    request.DiskBackupIds = [backup_id]
    found = c.DescribeDiskBackups(request).DiskBackupSet
    return found[0] if found else None


def present(c: Any, backup_id: str) -> Any:
    """The provider's refresh functions dereference the backup at once (a nil one is a
    panic): it must be there from the moment CreateDiskBackup answers."""
    backup = describe_backup_by_id(c, backup_id)
    assert backup is not None, f"{backup_id} is not described"
    return backup


def test_disk_backup_and_apply_disk_backup_resources(
    make_server: Callable[..., Server],
) -> None:
    """``tencentcloud_lighthouse_disk_backup`` (create, wait for DiskBackupState NORMAL, read,
    rename, delete) and ``tencentcloud_lighthouse_apply_disk_backup`` (apply, wait for the
    backup's LatestOperationState SUCCESS; read and delete are no-ops), with operations that
    take a second so that every wait sees the operation in flight."""
    server = make_server("--transition-seconds", "0", "--operation-seconds", "1")
    account = world.new_account(server, "tf-backup")
    c = world.client(server, account)
    create = models.CreateDisksRequest()
    create.Zone, create.DiskSize, create.DiskType = "ap-guangzhou-3", 20, "CLOUD_PREMIUM"
    create.DiskChargePrepaid = models.DiskChargePrepaid()
    create.DiskChargePrepaid.Period, create.DiskBackupQuota = 1, 1
    (disk_id,) = c.CreateDisks(create).DiskIdSet
    wait_for(lambda: describe_by_id(c, disk_id).DiskState, {"UNATTACHED", "ATTACHED"})
    server.admin("disk", "write", disk_id, "--offset", "0", input_bytes=b"state of monday")

    # disk_backup Create: CreateDiskBackup, wait DiskBackupState NORMAL (no pending states
    # given: any other state polls on), Read.
    backup = models.CreateDiskBackupRequest()
    backup.DiskId, backup.DiskBackupName = disk_id, "tf-backup"
    backup_id = c.CreateDiskBackup(backup).DiskBackupId
    seen = {present(c, backup_id).DiskBackupState}
    seen.add(wait_for(lambda: present(c, backup_id).DiskBackupState, {"NORMAL"}, timeout=60))
    assert seen == {"CREATING", "NORMAL"}
    read = present(c, backup_id)
    assert (read.DiskId, read.DiskBackupName) == (disk_id, "tf-backup")

    # disk_backup Update: ModifyDiskBackupsAttribute (disk_backup_name), then Read.
    rename = models.ModifyDiskBackupsAttributeRequest()
    rename.DiskBackupIds, rename.DiskBackupName = [backup_id], "tf-backup-renamed"
    c.ModifyDiskBackupsAttribute(rename)
    assert present(c, backup_id).DiskBackupName == "tf-backup-renamed"

    # apply_disk_backup Create: ApplyDiskBackup, wait for the backup's LatestOperationState
    # SUCCESS. The backup's last operation was a SUCCESS already (its creation), so the
    # apply must show as in flight from the moment it is accepted, or the wait would
    # return before the disk is rolled back.
    server.admin("disk", "write", disk_id, "--offset", "0", input_bytes=b"state of friday")
    apply = models.ApplyDiskBackupRequest()
    apply.DiskId, apply.DiskBackupId = disk_id, backup_id
    c.ApplyDiskBackup(apply)
    first = present(c, backup_id)
    assert (first.LatestOperation, first.LatestOperationState) == (
        "ApplyDiskBackup",
        "OPERATING",
    )
    wait_for(lambda: present(c, backup_id).LatestOperationState, {"SUCCESS"}, timeout=60)
    read = server.admin("disk", "read", disk_id, "--offset", "0", "--length", "15")
    assert read.stdout == "state of monday"

    # disk_backup Delete: DeleteDiskBackups; the next refresh reads nothing.
    delete = models.DeleteDiskBackupsRequest()
    delete.DiskBackupIds = [backup_id]
    c.DeleteDiskBackups(delete)
    assert describe_backup_by_id(c, backup_id) is None
