"""The Terraform provider's call sequences for ``tencentcloud_lighthouse_disk`` and
``tencentcloud_lighthouse_disk_attachment`` (terraform-provider-tencentcloud,
services/lighthouse/resource_tc_lighthouse_disk*.go), replayed through the official SDK with
the provider's own waits: create, poll, read, update, attach, detach, delete."""

from __future__ import annotations

import time
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
