"""Disk backups through the official SDK (issue #18): the round trip of the issue (a data
disk attached to a RUNNING instance, patterns written, backed up, overwritten, rolled back:
the bytes come back), the backup quota, the states and their refusals, denied actions,
isolation, and a backup that survives a server restart (the orphan scan knows backups)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server

from tests.lighthouse.test_data_disks import call, code_of, create_disks, disks, wait_state
from tests.support.access import allow, policy, sub_user
from tests.support.sabotage import sabotage

MiB = 1024 * 1024


def backups(c: Any, backup_ids: list[str]) -> dict[str, Any]:
    answer = call(c, "DescribeDiskBackups", DiskBackupIds=backup_ids)
    return {b.DiskBackupId: b for b in answer.DiskBackupSet}


def wait_backup(c: Any, backup_id: str) -> Any:
    return world.wait_for(
        lambda: backups(c, [backup_id]).get(backup_id),
        lambda b: b is None or b.LatestOperationState != "OPERATING",
        timeout=60,
    )


def data_disk(server: Server, c: Any, quota: int = 2, **fields: Any) -> str:
    (disk_id,) = create_disks(c, DiskBackupQuota=quota, **fields)
    wait_state(c, [disk_id], "UNATTACHED")
    return disk_id


@pytest.fixture
def owner(server: Server) -> Account:
    return world.new_account(server, "backups")


def round_trip(server: Server, owner: Account) -> None:
    c = world.client(server, owner)
    instance_id = world.create_instance(server, owner)["InstanceId"]  # RUNNING
    disk_id = data_disk(server, c)
    call(c, "AttachDisks", DiskIds=[disk_id], InstanceId=instance_id)
    wait_state(c, [disk_id], "ATTACHED")
    patterns = {0: os.urandom(MiB), 5 * MiB: os.urandom(2 * MiB), 9 * 1024 * MiB: b"end" * 999}
    for offset, data in patterns.items():
        server.admin("disk", "write", disk_id, "--offset", str(offset), input_bytes=data)
    before = server.admin("disk", "checksum", disk_id).stdout.strip()

    backup_id = call(c, "CreateDiskBackup", DiskId=disk_id, DiskBackupName="nightly").DiskBackupId
    assert backup_id.startswith("lhbak-")
    made = wait_backup(c, backup_id)
    assert (made.DiskBackupState, made.Percent, made.LatestOperationState) == (
        "NORMAL",
        100,
        "SUCCESS",
    )
    assert (made.DiskId, made.DiskUsage, made.DiskSize, made.DiskBackupName) == (
        disk_id,
        "DATA_DISK",
        10,
        "nightly",
    )
    assert disks(c, [disk_id])[disk_id].DiskBackupCount == 1

    for offset, data in patterns.items():  # the disk is damaged
        server.admin(
            "disk", "write", disk_id, "--offset", str(offset), input_bytes=bytes(len(data))
        )
    assert server.admin("disk", "checksum", disk_id).stdout.strip() != before

    call(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=backup_id)
    applied = wait_backup(c, backup_id)
    assert (applied.DiskBackupState, applied.LatestOperation, applied.LatestOperationState) == (
        "NORMAL",
        "ApplyDiskBackup",
        "SUCCESS",
    )
    # byte for byte: the block checksum hashes every byte of the 10 GB disk's data
    assert server.admin("disk", "checksum", disk_id).stdout.strip() == before
    request = models.DescribeInstancesRequest()
    request.InstanceIds = [instance_id]
    (instance,) = c.DescribeInstances(request).InstanceSet
    assert (instance.InstanceState, instance.LatestOperation) == ("STOPPED", "ApplyDiskBackup")


def test_round_trip_on_a_running_instance(server: Server, owner: Account) -> None:
    round_trip(server, owner)


@pytest.mark.parametrize("storage", ["qcow2"])
def test_round_trip_on_qcow2(make_server: Callable[..., Server], storage: str) -> None:
    server = make_server("--storage", storage, "--transition-seconds", "0")
    round_trip(server, world.new_account(server, "backups-qcow2"))


def test_round_trip_on_rbd(make_server: Callable[..., Server], rbd_options: dict[str, Any]) -> None:
    """The data disk an RBD image, its backup an RBD snapshot of it (issue #15's driver)."""
    server = make_server("--storage", "rbd", "--rbd-namespace", rbd_options["namespace"],
                         "--transition-seconds", "0")  # fmt: skip
    round_trip(server, world.new_account(server, "backups-rbd"))


def test_quota_states_and_refusals(server: Server, owner: Account) -> None:
    c = world.client(server, owner)
    disk_id = data_disk(server, c, quota=1)
    first = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
    assert code_of(c, "CreateDiskBackup", DiskId=disk_id) in (
        "OperationDenied.DiskBusyForBackupOperation",  # (test_refusals_while_backups_run)
        "LimitExceeded.DiskBackupQuotaLimitExceeded",
    )
    wait_backup(c, first)
    assert code_of(c, "CreateDiskBackup", DiskId=disk_id) == (
        "LimitExceeded.DiskBackupQuotaLimitExceeded"
    )
    assert code_of(c, "ModifyDisksBackupQuota", DiskIds=[disk_id], DiskBackupQuota=0) == (
        "InvalidParameterValue.DiskBackupQuotaLessThanCurrentDiskBackupNum"
    )
    assert code_of(c, "ModifyDisksBackupQuota", DiskIds=[disk_id], DiskBackupQuota=1) == (
        "UnsupportedOperation.SameWithOldConfig"
    )
    call(c, "ModifyDisksBackupQuota", DiskIds=[disk_id], DiskBackupQuota=3)
    assert disks(c, [disk_id])[disk_id].DiskBackupQuota == 3
    second = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
    wait_backup(c, second)

    other_disk = data_disk(server, c)
    assert code_of(c, "ApplyDiskBackup", DiskId=other_disk, DiskBackupId=first) == (
        "UnsupportedOperation.ApplyDiskBackupToAnotherDisk"
    )
    assert code_of(c, "CreateDiskBackup", DiskId="lhdisk-00000000") == (
        "ResourceNotFound.DiskNotExists"
    )
    assert code_of(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId="lhbak-00000000") == (
        "ResourceNotFound.DiskBackupNotExists"
    )
    assert code_of(c, "DeleteDiskBackups", DiskBackupIds=["lhbak-BAD"]) == (
        "InvalidParameterValue.DiskBackupIdMalformed"
    )
    assert code_of(c, "CreateDiskBackup", DiskId=disk_id, DiskBackupName="n" * 91) == (
        "InvalidParameterValue.DiskBackupNameTooLong"
    )
    system = world.create_instance(server, owner)["SystemDisk"]["DiskId"]
    assert code_of(c, "CreateDiskBackup", DiskId=system) == (
        "OperationDenied.DiskUsageNotSupportOperation"
    )
    call(c, "ModifyDiskBackupsAttribute", DiskBackupIds=[first, second], DiskBackupName="kept")
    assert {b.DiskBackupName for b in backups(c, [first, second]).values()} == {"kept"}

    filtered = models.Filter()
    filtered.Name, filtered.Values = "disk-id", [disk_id]
    listed = call(c, "DescribeDiskBackups", Filters=[filtered])
    assert listed.TotalCount == 2 and listed.DiskBackupSet[0].DiskBackupId == second

    call(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=first)
    denied = call(c, "DescribeDiskBackupsDeniedActions", DiskBackupIds=[first])
    codes = {a.Action: a.Code for a in denied.DiskBackupDeniedActionSet[0].DeniedActions}
    if backups(c, [first])[first].LatestOperationState == "OPERATING":  # (it may be done)
        assert codes == {
            "ApplyDiskBackup": "OperationDenied.DiskBackupOperationInProgress",
            "DeleteDiskBackups": "ResourceInUse.DiskBackupInUse",
        }
    wait_backup(c, first)
    call(c, "DeleteDiskBackups", DiskBackupIds=[first, second])
    assert backups(c, [first, second]) == {}
    assert disks(c, [disk_id])[disk_id].DiskBackupCount == 0


def test_refusals_while_backups_run(make_server: Callable[..., Server]) -> None:
    """Operations of 2 s, so that each refusal meets the operation it is about: a disk busy
    with a backup's creation or rollback refuses the next backup operation as such
    (DiskBusyForBackupOperation, not the generic DiskOperationInProgress); a backup the disk
    is being rolled back to is in use for a delete; and a backup whose data another
    operation of the server holds (here a reader outside the API) is busy for an apply."""
    server = make_server("--storage", "raw", "--transition-seconds", "0",
                         "--operation-seconds", "2")  # fmt: skip
    c = world.client(server, world.new_account(server, "backups-busy"))
    disk_id = data_disk(server, c, quota=3)
    first = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
    assert backups(c, [first])[first].LatestOperationState == "OPERATING"
    assert code_of(c, "CreateDiskBackup", DiskId=disk_id) == (
        "OperationDenied.DiskBusyForBackupOperation"
    )
    assert code_of(c, "DeleteDiskBackups", DiskBackupIds=[first]) == (
        "OperationDenied.DiskBackupOperationInProgress"
    )
    wait_backup(c, first)

    call(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=first)
    assert backups(c, [first])[first].DiskBackupState == "ROLLBACKING"
    assert code_of(c, "DeleteDiskBackups", DiskBackupIds=[first]) == (
        "ResourceInUse.DiskBackupInUse"
    )
    for action, fields in (("ApplyDiskBackup", {"DiskBackupId": first}), ("CreateDiskBackup", {})):
        assert code_of(c, action, DiskId=disk_id, **fields) == (
            "OperationDenied.DiskBusyForBackupOperation"
        )
    assert wait_backup(c, first).LatestOperationState == "SUCCESS"

    with sabotage(server, "raw").hold_snapshot(disk_id, first):
        assert code_of(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=first) == (
            "OperationDenied.DiskBackupBusy"
        )
    call(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=first)  # free again
    assert wait_backup(c, first).LatestOperationState == "SUCCESS"


def test_a_rollback_of_an_attached_disk_and_the_instance_snapshot_exclude_each_other(
    make_server: Callable[..., Server],
) -> None:
    """ApplyDiskBackup of an attached disk holds the instance (it stops the machine), so it
    is refused while the instance's system disk is being snapshotted, and an
    ApplyInstanceSnapshot is refused while it runs. Both once overlapped (the storm's job
    history showed it)."""
    server = make_server("--storage", "raw", "--transition-seconds", "0",
                         "--operation-seconds", "2")  # fmt: skip
    owner = world.new_account(server, "backups-exclusive")
    c = world.client(server, owner)
    instance_id = world.create_instance(server, owner, "ap-guangzhou", "--state", "STOPPED")[
        "InstanceId"
    ]
    disk_id = data_disk(server, c)
    call(c, "AttachDisks", DiskIds=[disk_id], InstanceId=instance_id)
    wait_state(c, [disk_id], "ATTACHED")
    backup_id = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
    wait_backup(c, backup_id)

    snapshot_id = world.create_snapshot(c, instance_id)
    assert code_of(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=backup_id) == (
        "UnsupportedOperation.LatestOperationUnfinished"
    )
    world.wait_normal(c, snapshot_id)
    call(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=backup_id)
    assert code_of(c, "ApplyInstanceSnapshot", InstanceId=instance_id, SnapshotId=snapshot_id) == (
        "UnsupportedOperation.LatestOperationUnfinished"
    )
    assert wait_backup(c, backup_id).LatestOperationState == "SUCCESS"


def test_backups_are_the_accounts_own(server: Server, owner: Account) -> None:
    c = world.client(server, owner)
    disk_id = data_disk(server, c)
    backup_id = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
    wait_backup(c, backup_id)
    stranger = world.client(server, world.new_account(server, "backups-stranger"))
    assert backups(stranger, [backup_id]) == {}
    assert code_of(stranger, "DeleteDiskBackups", DiskBackupIds=[backup_id]) == (
        "ResourceNotFound.DiskBackupIdNotFound"
    )
    assert code_of(stranger, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=backup_id) == (
        "ResourceNotFound.DiskBackupNotExists"
    )


def test_a_sub_user_reaches_the_backups_its_policy_names(
    server: Server, owner: Account, tmp_path: Path
) -> None:
    """CAM's resource level for backups: ``disk-backup/<id>`` in the six-segment format."""
    c = world.client(server, owner)
    disk_id = data_disk(server, c)
    mine = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
    wait_backup(c, mine)
    other = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
    wait_backup(c, other)
    resource = f"qcs::lighthouse:ap-guangzhou:uin/{owner.uin}:disk-backup/{mine}"
    document = policy(allow(["lighthouse:ModifyDiskBackupsAttribute",
                             "lighthouse:DescribeDiskBackups"], [resource]))  # fmt: skip
    keeper = world.client(server, sub_user(server, owner, "backup-keeper", document, tmp_path))
    call(keeper, "ModifyDiskBackupsAttribute", DiskBackupIds=[mine], DiskBackupName="mine")
    assert backups(c, [mine])[mine].DiskBackupName == "mine"
    assert code_of(keeper, "ModifyDiskBackupsAttribute", DiskBackupIds=[other],
                   DiskBackupName="x") == "UnauthorizedOperation.NoPermission"  # fmt: skip
    assert code_of(keeper, "DeleteDiskBackups", DiskBackupIds=[mine]) == (
        "UnauthorizedOperation.NoPermission"  # (the action is not in its policy)
    )


def test_a_backup_outlives_a_restart_and_goes_with_its_disk(
    make_server: Callable[..., Server],
) -> None:
    server = make_server("--storage", "raw", "--transition-seconds", "0")
    owner = world.new_account(server, "backups-restart")
    c = world.client(server, owner)
    disk_id = data_disk(server, c)
    server.admin("disk", "write", disk_id, "--offset", "0", input_bytes=b"keep me")
    backup_id = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
    wait_backup(c, backup_id)
    server.stop()
    server.start()  # the orphan scan must take the backup's data for a snapshot with a record
    assert not (server.data_dir / "quarantine").exists() or not any(
        (server.data_dir / "quarantine").rglob(f"*{backup_id}*")
    )
    c = world.client(server, owner)
    server.admin("disk", "write", disk_id, "--offset", "0", input_bytes=b"lost it")
    call(c, "ApplyDiskBackup", DiskId=disk_id, DiskBackupId=backup_id)
    assert wait_backup(c, backup_id).LatestOperationState == "SUCCESS"
    read = server.admin("disk", "read", disk_id, "--offset", "0", "--length", "7")
    assert read.stdout == "keep me"

    call(c, "IsolateDisks", DiskIds=[disk_id])
    call(c, "TerminateDisks", DiskIds=[disk_id])  # its backups go with it, data and all
    assert backups(c, [backup_id]) == {}
    stored = list((server.data_dir / "snapshots").rglob(f"*{backup_id}*"))
    assert stored == []
