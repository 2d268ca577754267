"""Every error code the SDK lists for the data-disk and disk-backup actions (issue #18): each
is produced by a real cause through the real server and asserted by its exact Code, or
documented in docs/behaviour.md ("Disk and backup error codes no cause reaches here"), with
the reason. The lists are the official Go SDK's per-action "possible error codes"
(tests/data/disk-action-error-codes.json).

The causes every action shares (a malformed or unknown id, a sub-user without the permission,
bad paging and filters) are the table below; the causes of one action's own rules are in the
tests of that action (test_data_disks.py, test_disk_backups.py, test_disks.py...). The last
test holds the three together: a listed code is asserted next to its action's name in a test
module, or documented, and the documented ones are listed codes nobody produces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testkit import world
from testkit.server import Account, Server

from tests.lighthouse.test_data_disks import call, code_of, create_disks, wait_state
from tests.lighthouse.test_disk_backups import wait_backup
from tests.support.access import allow, policy, sub_user

HERE = Path(__file__).parent
LISTED: dict[str, list[str]] = json.loads(
    (HERE.parent / "data" / "disk-action-error-codes.json").read_text("utf-8")
)["actions"]
BEHAVIOUR = HERE.parent.parent / "docs" / "behaviour.md"
BAD_DISK, NO_DISK = "lhdisk-BAD", "lhdisk-00000000"
BAD_BACKUP, NO_BACKUP = "lhbak-BAD", "lhbak-00000000"
BAD_INSTANCE, NO_INSTANCE = "lhins-BAD", "lhins-00000000"


class Things:
    """One account's instance, unattached data disk and a backup of it."""

    def __init__(self, server: Server, owner: Account) -> None:
        self.c = world.client(server, owner)
        created = world.create_instance(server, owner)
        self.instance, self.system_disk = created["InstanceId"], created["SystemDisk"]["DiskId"]
        (self.disk,) = create_disks(self.c, DiskBackupQuota=2)
        wait_state(self.c, [self.disk], "UNATTACHED")
        self.backup = call(self.c, "CreateDiskBackup", DiskId=self.disk).DiskBackupId
        wait_backup(self.c, self.backup)


def minimal(t: Things) -> dict[str, dict[str, Any]]:
    """A request each action accepts from the owner: what a sub-user is refused."""
    return {
        "CreateDisks": dict(Zone="ap-guangzhou-3", DiskSize=10, DiskType="CLOUD_PREMIUM"),
        "DescribeDisks": {},
        "AttachDisks": dict(DiskIds=[t.disk], InstanceId=t.instance),
        "DetachDisks": dict(DiskIds=[t.disk]),
        "ResizeDisks": dict(DiskIds=[t.disk], DiskSize=20),
        "ModifyDisksAttribute": dict(DiskIds=[t.disk], DiskName="n"),
        "TerminateDisks": dict(DiskIds=[t.disk]),
        "IsolateDisks": dict(DiskIds=[t.disk]),
        "DescribeDisksDeniedActions": dict(DiskIds=[t.disk]),
        "DescribeDiskConfigs": {},
        "DescribeInstancesDiskNum": dict(InstanceIds=[t.instance]),
        "ModifyDisksRenewFlag": dict(DiskIds=[t.disk], RenewFlag="NOTIFY_AND_AUTO_RENEW"),
        "CreateDiskBackup": dict(DiskId=t.disk),
        "ApplyDiskBackup": dict(DiskId=t.disk, DiskBackupId=t.backup),
        "DescribeDiskBackups": {},
        "DeleteDiskBackups": dict(DiskBackupIds=[t.backup]),
        "ModifyDiskBackupsAttribute": dict(DiskBackupIds=[t.backup], DiskBackupName="n"),
        "DescribeDiskBackupsDeniedActions": dict(DiskBackupIds=[t.backup]),
        "ModifyDisksBackupQuota": dict(DiskIds=[t.disk], DiskBackupQuota=3),
    }


Case = tuple[str, str, Callable[[Things], dict[str, Any]]]
DISK_LISTS = (
    "AttachDisks",
    "DetachDisks",
    "ResizeDisks",
    "ModifyDisksAttribute",
    "TerminateDisks",
    "IsolateDisks",
    "ModifyDisksRenewFlag",
)
BACKUP_LISTS = ("DeleteDiskBackups", "ModifyDiskBackupsAttribute")


def fields(**values: Any) -> Callable[[Things], dict[str, Any]]:
    """Fields over the action's minimal request; a callable value is given the things."""
    return lambda t: {k: v(t) if callable(v) else v for k, v in values.items()}


BAD_FILTER = fields(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
CASES: list[Case] = [
    # malformed ids
    *[(a, "InvalidParameterValue.InvalidDiskIdMalformed", fields(DiskIds=[BAD_DISK]))
      for a in (*DISK_LISTS, "DescribeDisks", "DescribeDisksDeniedActions",
                "ModifyDisksBackupQuota")],
    *[(a, "InvalidParameterValue.InvalidDiskIdMalformed", fields(DiskId=BAD_DISK))
      for a in ("CreateDiskBackup", "ApplyDiskBackup")],
    ("DescribeDiskBackups", "InvalidParameterValue.InvalidDiskIdMalformed",
     fields(Filters=[{"Name": "disk-id", "Values": [BAD_DISK]}])),
    *[(a, "InvalidParameterValue.DiskBackupIdMalformed", fields(DiskBackupIds=[BAD_BACKUP]))
      for a in (*BACKUP_LISTS, "DescribeDiskBackups", "DescribeDiskBackupsDeniedActions")],
    ("ApplyDiskBackup", "InvalidParameterValue.DiskBackupIdMalformed",
     fields(DiskBackupId=BAD_BACKUP)),
    ("AttachDisks", "InvalidParameterValue.InstanceIdMalformed", fields(InstanceId=BAD_INSTANCE)),
    ("DescribeInstancesDiskNum", "InvalidParameterValue.InstanceIdMalformed",
     fields(InstanceIds=[BAD_INSTANCE])),
    # unknown ids (another account's are the same: test_data_disks, test_disk_backups)
    *[(a, "ResourceNotFound.DiskIdNotFound", fields(DiskIds=[NO_DISK]))
      for a in DISK_LISTS],
    *[(a, "ResourceNotFound.DiskNotExists", fields(DiskId=NO_DISK))
      for a in ("CreateDiskBackup", "ApplyDiskBackup")],
    ("ModifyDisksBackupQuota", "ResourceNotFound.DiskNotExists", fields(DiskIds=[NO_DISK])),
    *[(a, "ResourceNotFound.DiskBackupIdNotFound", fields(DiskBackupIds=[NO_BACKUP]))
      for a in BACKUP_LISTS],
    ("ApplyDiskBackup", "ResourceNotFound.DiskBackupNotExists", fields(DiskBackupId=NO_BACKUP)),
    ("AttachDisks", "ResourceNotFound.InstanceIdNotFound", fields(InstanceId=NO_INSTANCE)),
    ("DescribeInstancesDiskNum", "ResourceNotFound.InstanceIdNotFound",
     fields(InstanceIds=[NO_INSTANCE])),
    # paging, filters, repeats, missing attributes
    ("DescribeDisks", "InvalidParameterValue.OutOfRange", fields(Limit=101)),
    ("DescribeDiskBackups", "InvalidParameterValue", fields(Limit=101)),
    ("DescribeDiskBackups", "InvalidParameterValue", fields(Offset=-1)),
    ("DescribeDisks", "InvalidParameterValue", fields(Offset=-1)),
    ("DescribeDisks", "InvalidParameterValue.LimitExceeded",
     fields(DiskIds=[f"lhdisk-{n:08d}" for n in range(101)])),
    ("DescribeInstancesDiskNum", "InvalidParameterValue.LimitExceeded",
     fields(InstanceIds=[f"lhins-{n:08d}" for n in range(101)])),
    ("DescribeDisks", "InvalidParameter.InvalidFilterInvalidKey", BAD_FILTER),
    ("DescribeDiskBackups", "InvalidParameter.InvalidFilter", BAD_FILTER),
    ("DescribeDiskConfigs", "InvalidParameter.InvalidFilter", BAD_FILTER),
    ("DescribeDisks", "InvalidParameter.FilterValueLimitExceeded",
     fields(Filters=[{"Name": "disk-id", "Values": [NO_DISK] * 101}])),
    *[(a, "InvalidParameterValue.Duplicated", fields(DiskIds=lambda t: [t.disk, t.disk]))
      for a in ("ResizeDisks", "ModifyDisksBackupQuota", "DescribeDisks")],
    ("ModifyDiskBackupsAttribute", "InvalidParameter.OnlyAllowModifyOneAttribute",
     fields(DiskBackupName=None)),
    ("IsolateDisks", "LimitExceeded.IsolateResourcesLimitExceeded",
     fields(DiskIds=[f"lhdisk-{n:08d}" for n in range(21)])),
    ("ModifyDisksRenewFlag", "OperationDenied.DiskUsageNotSupportOperation",
     fields(DiskIds=lambda t: [t.system_disk])),
]  # fmt: skip


@pytest.fixture(scope="module")
def things(server: Server) -> Things:
    return Things(server, world.new_account(server, "disk-codes"))


@pytest.mark.parametrize(("action", "code", "given"), CASES, ids=[f"{a}-{c}" for a, c, _ in CASES])
def test_shared_causes(
    things: Things, action: str, code: str, given: Callable[[Things], dict[str, Any]]
) -> None:
    assert code in LISTED[action]
    request = minimal(things)[action] | given(things)  # (the rest of a valid request)
    assert code_of(things.c, action, **request) == code


def test_a_sub_user_without_the_permission_is_refused_every_action(
    server: Server, things: Things, tmp_path: Path
) -> None:
    owner = world.new_account(server, "disk-codes-cam")
    t = Things(server, owner)
    nobody = sub_user(server, owner, "nobody", policy(allow(["lighthouse:DescribeRegions"],
                                                            ["*"])), tmp_path)  # fmt: skip
    c = world.client(server, nobody)
    for action, fields in minimal(t).items():
        if "UnauthorizedOperation.NoPermission" in LISTED[action]:
            assert code_of(c, action, **fields) == "UnauthorizedOperation.NoPermission", action


def test_refusals_that_meet_an_operation_or_a_state(make_server: Callable[..., Server]) -> None:
    """Transitions and operations of 2 s, so that each refusal meets what it is about: a
    disk being created, attached or isolated; an instance stopping, being rolled back, shut
    down or being created (the last two set by ``admin instance set-state``)."""
    server = make_server("--storage", "raw", "--transition-seconds", "2",
                         "--operation-seconds", "2")  # fmt: skip
    owner = world.new_account(server, "disk-codes-slow")
    c = world.client(server, owner)
    instance = world.create_instance(server, owner, "ap-guangzhou", "--state", "STOPPED")
    instance_id = instance["InstanceId"]
    attached, spare, isolated = create_disks(c, count=3, DiskBackupQuota=2)
    for action, fields_ in (
        ("AttachDisks", dict(DiskIds=[spare], InstanceId=instance_id)),
        ("IsolateDisks", dict(DiskIds=[spare])),
        ("ModifyDisksRenewFlag", dict(DiskIds=[spare], RenewFlag="NOTIFY_AND_AUTO_RENEW")),
        ("DetachDisks", dict(DiskIds=[spare])),
    ):
        assert code_of(c, action, **fields_) == "OperationDenied.DiskCreating", action
    wait_state(c, [attached, spare, isolated], "UNATTACHED")
    backup = call(c, "CreateDiskBackup", DiskId=attached).DiskBackupId
    kept = call(c, "CreateDiskBackup", DiskId=isolated).DiskBackupId
    wait_backup(c, backup)
    wait_backup(c, kept)

    call(c, "IsolateDisks", DiskIds=[isolated])
    wait_state(c, [isolated], "SHUTDOWN")
    assert (
        code_of(c, "CreateDiskBackup", DiskId=isolated) == "UnsupportedOperation.InvalidDiskState"
    )
    assert code_of(c, "ApplyDiskBackup", DiskId=isolated, DiskBackupId=kept) == (
        "UnsupportedOperation.InvalidDiskState"
    )

    call(c, "AttachDisks", DiskIds=[attached], InstanceId=instance_id)
    for action, fields_ in (
        ("CreateDiskBackup", {}),
        ("ApplyDiskBackup", {"DiskBackupId": backup}),
    ):
        assert code_of(c, action, DiskId=attached, **fields_) == (
            "OperationDenied.DiskOperationInProgress"
        ), action
    wait_state(c, [attached], "ATTACHED")

    def refused_on_the_instance(code: str) -> None:
        for action, fields_ in (
            ("CreateDiskBackup", dict(DiskId=attached)),
            ("ApplyDiskBackup", dict(DiskId=attached, DiskBackupId=backup)),
            ("DetachDisks", dict(DiskIds=[attached])),
            ("AttachDisks", dict(DiskIds=[spare], InstanceId=instance_id)),
        ):
            assert code_of(c, action, **fields_) == code, (action, code)

    call(c, "StartInstances", InstanceIds=[instance_id])
    refused_on_the_instance("UnsupportedOperation.LatestOperationUnfinished")
    world.wait_for(lambda: world.instance(c, instance_id), lambda i: i.InstanceState == "RUNNING")
    server.admin("instance", "set-state", instance_id, "--state", "SHUTDOWN")
    refused_on_the_instance("UnsupportedOperation.InvalidInstanceState")
    server.admin("instance", "set-state", instance_id, "--state", "PENDING")
    assert code_of(c, "AttachDisks", DiskIds=[spare], InstanceId=instance_id) == (
        "OperationDenied.InstanceCreating"
    )
    server.admin("instance", "set-state", instance_id, "--state", "STOPPED")
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    world.apply_snapshot(c, instance_id, snapshot_id)
    assert code_of(c, "AttachDisks", DiskIds=[spare], InstanceId=instance_id) == (
        "OperationDenied.InstanceOperationInProgress"
    )


def documented() -> dict[tuple[str, str], str]:
    """The rows of behaviour.md's table: (action, code) -> why no cause reaches it."""
    text = BEHAVIOUR.read_text("utf-8")
    section = text.split("## Disk and backup error codes no cause reaches here", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([A-Za-z, ]+) \| `([A-Za-z.]+)` \| (.+) \|$", section, re.M)
    return {(action.strip(), code): why for actions, code, why in rows
            for action in actions.split(",")}  # fmt: skip


def test_every_listed_code_is_produced_or_documented() -> None:
    modules = {p.name: p.read_text("utf-8") for p in HERE.glob("test_*.py")}
    shared = {(a, c) for a, c, _ in CASES} | {
        (a, "UnauthorizedOperation.NoPermission")
        for a, codes in LISTED.items()
        if "UnauthorizedOperation.NoPermission" in codes
    }
    rows = documented()
    unaccounted, doubly = [], []
    for action, codes in LISTED.items():
        for code in codes:
            produced = (action, code) in shared or any(
                f'"{code}"' in text and action in text for text in modules.values()
            )
            if not produced and (action, code) not in rows:
                unaccounted.append(f"{action}: {code}")
            if (action, code) in shared and (action, code) in rows:
                doubly.append(f"{action}: {code}")
    assert unaccounted == [], "listed codes neither produced by a test nor documented"
    assert doubly == [], "documented as unreached, yet produced"
    stale = [f"{a}: {c}" for a, c in rows if c not in LISTED.get(a, [])]
    assert stale == [], "documented rows for codes the action does not list"
