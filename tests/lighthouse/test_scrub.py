"""The scrubber and ``admin snapshot verify`` (issue #14), through the real server and CLI:
Apply trusts a sealed snapshot without reading it, so corruption its seal cannot see is
found by reading every snapshot back; a snapshot found corrupt is refused before the disk
is touched, and the finding shows in /metrics and DescribeSnapshotsDeniedActions."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from tencentcloud.lighthouse.v20200324.lighthouse_client import LighthouseClient as Client
from testkit import world
from testkit.server import Server

pytestmark = pytest.mark.both_engines  # (the due-copies query is a UNION on both engines)

MiB = 1024 * 1024


def _instance_with_snapshot(server: Server) -> tuple[Client, str, str]:
    account = world.new_account(server, f"scrub-{time.monotonic_ns()}")
    created = world.create_instance(server, account, "ap-guangzhou")
    c = world.client(server, account)
    instance_id = created["InstanceId"]
    world.disk_write(server, instance_id, 5 * MiB, b"data before the snapshot")
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    return c, instance_id, snapshot_id


def _rot(server: Server, snapshot_id: str, offset: int = 5 * MiB) -> None:
    """Damage one byte of the snapshot's stored data behind the server's back."""
    path = server.data_dir / "snapshots" / f"{snapshot_id}.img"
    path.chmod(0o600)
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"X")


def _metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def _wait_scrubbed(server: Server, what: str) -> None:
    """Until the scrubber has found one corruption and verified one good copy (30 s)."""
    deadline = time.monotonic() + 30
    while _metric(server, "lightkeeper_scrub_corruptions_found_total") < 1:
        assert time.monotonic() < deadline, f"the scrubber never found the damaged {what}"
        time.sleep(0.2)
    while _metric(server, 'lightkeeper_scrub_snapshots_total{result="good"}') < 1:
        assert time.monotonic() < deadline, f"the good {what} was never verified"
        time.sleep(0.2)


def _denied(c: Client, snapshot_id: str) -> list[tuple[str, str]]:
    request = models.DescribeSnapshotsDeniedActionsRequest()
    request.SnapshotIds = [snapshot_id]
    (found,) = c.DescribeSnapshotsDeniedActions(request).SnapshotDeniedActionSet
    return [(d.Action, d.Code) for d in found.DeniedActions]


def _refused_apply(c: Client, instance_id: str, snapshot_id: str) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        world.apply_snapshot(c, instance_id, snapshot_id)
    return str(info.value.code)


def test_scrubber_finds_a_corruption_planted_while_the_server_runs(
    make_server: Callable[..., Server],
) -> None:
    server = make_server("--transition-seconds", "0", "--scrub-interval", "1")
    c, instance_id, good = _instance_with_snapshot(server)
    owner, other_instance, bad = _instance_with_snapshot(server)
    before = world.disk_sha256(server, other_instance)
    _rot(server, bad)

    _wait_scrubbed(server, "snapshot")
    assert _metric(server, "lightkeeper_scrub_bytes_total") > 0

    assert _denied(owner, bad) == [
        ("RollbackInstanceSnapshot", "FailedOperation.SnapshotOperationFailed")
    ]
    assert _refused_apply(owner, other_instance, bad) == "FailedOperation.SnapshotOperationFailed"
    assert world.disk_sha256(server, other_instance) == before  # refused before any copy
    assert _denied(c, good) == []  # the good one is not marked
    world.apply_snapshot(c, instance_id, good)


def test_admin_verify_reports_and_marks(server: Server) -> None:
    c, instance_id, snapshot_id = _instance_with_snapshot(server)
    result = server.admin("snapshot", "verify", snapshot_id, "--json")
    assert result == [{"SnapshotId": snapshot_id, "Result": "GOOD"}]

    before = world.disk_sha256(server, instance_id)
    _rot(server, snapshot_id)
    failed = server.admin("snapshot", "verify", snapshot_id, "--json", check=False)
    assert failed.returncode == 1
    assert json.loads(failed.stdout) == [{"SnapshotId": snapshot_id, "Result": "CORRUPT"}]
    assert _refused_apply(c, instance_id, snapshot_id) == "FailedOperation.SnapshotOperationFailed"
    assert world.disk_sha256(server, instance_id) == before

    # --all no longer lists it (found corrupt), and an unknown id is one clear line
    listed: list[dict[str, Any]] = server.admin("snapshot", "verify", "--all", "--json")
    assert snapshot_id not in {row["SnapshotId"] for row in listed}
    unknown = server.admin("snapshot", "verify", "lhsnap-nothere", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "lightkeeper: error: snapshot 'lhsnap-nothere' does not exist"
    ]


def test_the_scrubber_reads_disk_backups_back_too(make_server: Callable[..., Server]) -> None:
    """A byte of a disk backup's data rots: the scrubber finds it and marks the backup, which
    ApplyDiskBackup then refuses before the disk is touched (DescribeDiskBackupsDeniedActions
    says so) and DeleteDiskBackups still removes; a good backup is verified and applied."""
    from tests.lighthouse.test_data_disks import call, code_of, create_disks, wait_state
    from tests.lighthouse.test_disk_backups import wait_backup

    server = make_server("--transition-seconds", "0", "--scrub-interval", "1")
    c = world.client(server, world.new_account(server, "scrub-backups"))
    rotten_disk, good_disk = create_disks(c, count=2, DiskBackupQuota=1)
    wait_state(c, [rotten_disk, good_disk], "UNATTACHED")
    backups = {}
    for disk_id in (rotten_disk, good_disk):
        server.admin("disk", "write", disk_id, "--offset", str(5 * MiB), input_bytes=b"kept")
        backups[disk_id] = call(c, "CreateDiskBackup", DiskId=disk_id).DiskBackupId
        wait_backup(c, backups[disk_id])
    before = server.admin("disk", "checksum", rotten_disk, "--json")["Checksum"]
    _rot(server, backups[rotten_disk])

    _wait_scrubbed(server, "backup")

    rotten = backups[rotten_disk]
    denied = call(c, "DescribeDiskBackupsDeniedActions", DiskBackupIds=[rotten])
    codes = {a.Action: a.Code for a in denied.DiskBackupDeniedActionSet[0].DeniedActions}
    assert codes == {"ApplyDiskBackup": "UnsupportedOperation.InvalidDiskBackupState"}
    assert code_of(c, "ApplyDiskBackup", DiskId=rotten_disk, DiskBackupId=rotten) == (
        "UnsupportedOperation.InvalidDiskBackupState"
    )
    assert server.admin("disk", "checksum", rotten_disk, "--json")["Checksum"] == before
    verified = server.admin("snapshot", "verify", rotten, "--json", check=False)
    assert verified.returncode == 1 and "CORRUPT" in verified.stdout
    call(c, "DeleteDiskBackups", DiskBackupIds=[rotten])

    call(c, "ApplyDiskBackup", DiskId=good_disk, DiskBackupId=backups[good_disk])
    assert wait_backup(c, backups[good_disk]).LatestOperationState == "SUCCESS"
    assert server.admin("snapshot", "verify", backups[good_disk], "--json") == [
        {"SnapshotId": backups[good_disk], "Result": "GOOD"}
    ]
