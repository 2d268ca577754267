"""Disks are rows of their own (migration 0008): a database the release before left is
migrated without loss, an instance is read with its system disk, a disk's lock is its own,
and a job need not belong to an instance (issue #12)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from alembic import command
from alembic.config import Config
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server

from lightkeeper.lighthouse.jobs import JobKinds
from lightkeeper.lighthouse.world import World
from lightkeeper.store import jobs
from lightkeeper.store.database import MIGRATIONS, migrate, open_engine, sqlite_url, write
from lightkeeper.store.tables import disks as disks_table


def _alembic(data_dir: Path, revision: str, *, down: bool = False) -> None:
    engine = open_engine(sqlite_url(data_dir))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with write(engine) as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
    engine.dispose()


def _db(server: Server) -> sqlite3.Connection:
    return sqlite3.connect(server.data_dir / "lightkeeper.db")


def _describe(server: Server, account: Account) -> tuple[list[object], list[object]]:
    c = world.client(server, account)
    instances = c.DescribeInstances(models.DescribeInstancesRequest()).InstanceSet
    snapshots = c.DescribeSnapshots(models.DescribeSnapshotsRequest()).SnapshotSet
    return [i._serialize() for i in instances], [s._serialize() for s in snapshots]


def test_instances_and_their_disks_survive_the_migration(
    make_server: Callable[..., Server],
) -> None:
    server = make_server("--transition-seconds", "0")
    account = world.new_account(server, "disks")
    first = world.create_instance(server, account)
    second = world.create_instance(server, account, "ap-guangzhou", "--disk-size", "3")
    world.disk_write(server, first["InstanceId"], 0, b"before the migration")
    content = world.disk_sha256(server, first["InstanceId"])
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, first["InstanceId"])
    world.wait_normal(c, snapshot_id)
    before = _describe(server, account)
    server.stop()

    _alembic(server.data_dir, "0007", down=True)  # the schema the release before left
    with _db(server) as db:
        rows = db.execute("SELECT instance_id, disk_id, disk_size_gb, disk_job FROM instances")
        old = {r[0]: r[1:] for r in rows}
        assert "disks" not in {
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert old[second["InstanceId"]] == (second["SystemDisk"]["DiskId"], 3, None)

    server.start()  # migrates to the head
    assert _describe(server, account) == before
    with _db(server) as db:
        disks = db.execute(
            "SELECT instance_id, disk_id, size_gb, op_job, disk_usage FROM disks"
        ).fetchall()
        columns = {r[1] for r in db.execute("PRAGMA table_info(instances)")}
    assert {(i, d, s, j) for i, d, s, j, _ in disks} == {(i, *v) for i, v in old.items()}
    assert {usage for *_, usage in disks} == {"SYSTEM_DISK"}
    assert not {"disk_id", "disk_size_gb", "disk_job"} & columns

    # The migrated disk is the instance's: its bytes roll back as before.
    world.disk_write(server, first["InstanceId"], 0, b"after the migration!")
    assert world.disk_sha256(server, first["InstanceId"]) != content
    c = world.client(server, account)
    world.apply_snapshot(c, first["InstanceId"], snapshot_id)
    world.wait_normal(c, snapshot_id)
    assert world.disk_sha256(server, first["InstanceId"]) == content


def test_a_disk_held_by_a_job_refuses_a_second_snapshot(server: Server) -> None:
    """The disk's own lock (``disks.op_job``) is what CreateInstanceSnapshot checks."""
    account = world.new_account(server, "disklock")
    instance = world.create_instance(server, account)
    disk_id = instance["SystemDisk"]["DiskId"]
    with _db(server) as db:
        db.execute("UPDATE disks SET op_job = -1 WHERE disk_id = ?", (disk_id,))
    c = world.client(server, account)
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId = instance["InstanceId"]
    try:
        with pytest.raises(TencentCloudSDKException) as info:
            c.CreateInstanceSnapshot(request)
        assert info.value.code == "UnsupportedOperation.DiskLatestOperationUnfinished"
    finally:
        with _db(server) as db:
            db.execute("UPDATE disks SET op_job = NULL WHERE disk_id = ?", (disk_id,))


def test_a_job_without_an_instance_is_failed_cleanly(tmp_path: Path) -> None:
    """A kind this server does not know, on a detached disk: failed, the disk released."""
    engine = open_engine(sqlite_url(tmp_path))
    migrate(engine)
    with write(engine) as conn:
        conn.exec_driver_sql(
            "INSERT INTO accounts (id, name, uin, app_id, created_at)"
            " VALUES (1, 'a', '100000000001', 1250000001, '2026-12-02 00:00:00')"
        )
        job_id = jobs.enqueue(
            conn,
            "disk_backup_v9",
            account_id=1,
            instance_id=None,
            disk_id="lhdisk-0000dead",
            request_id="r",
        )
        conn.execute(
            disks_table.insert().values(
                disk_id="lhdisk-0000dead",
                account_id=1,
                region="ap-guangzhou",
                zone="ap-guangzhou-3",
                instance_id=None,
                disk_usage="DATA_DISK",
                size_gb=1,
                op_job=job_id,
                created_at=dt.datetime(2026, 12, 2),
            )
        )
    claimed = jobs.claim(engine, "me", 5.0)
    assert claimed is not None and claimed.instance_id is None
    assert claimed.disk_id == "lhdisk-0000dead"
    world_ = World(engine, cast(Any, None), cast(Any, None))  # the job touches no driver
    JobKinds(world_).give_up(claimed, "no executor for this kind")
    with write(engine) as conn:
        state = conn.exec_driver_sql(f"SELECT state FROM jobs WHERE id = {job_id}").scalar()
        held = conn.exec_driver_sql("SELECT op_job FROM disks").scalar()
    assert (state, held) == ("FAILED", None)
    engine.dispose()
