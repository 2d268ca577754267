"""The data dir and its database: never replaced silently, never silently lost, owner-only.

Issue #11 defects 2 and 11: a database deleted under a running server (or before a start) and
a full disk, through the real ``lightkeeper serve`` and admin CLI.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import LIGHTKEEPER, Server, free_port, run_cli

from tests.cli.test_cli import one_line_error
from tests.support.drivers import storages
from tests.support.mounts import tmpfs_mounted

DB_FILES = ("lightkeeper.db", "lightkeeper.db-wal", "lightkeeper.db-shm")


def _delete_database(data_dir: Path) -> None:
    for name in DB_FILES:
        (data_dir / name).unlink(missing_ok=True)


def _serve_once(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``serve`` that is expected to refuse at once; one still running after 30 s is a failure."""
    command = [*LIGHTKEEPER, "serve", "--data-dir", str(data_dir), "--port", str(free_port())]
    process = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("serve started instead of refusing the data dir") from None
    return subprocess.CompletedProcess(command, process.returncode, out.decode(), err.decode())


def _server_with_a_snapshot(make_server: Callable[..., Server]) -> tuple[Server, str, str]:
    server = make_server("--transition-seconds", "0")
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    return server, instance_id, snapshot_id


def test_a_missing_database_next_to_data_is_refused_not_recreated(
    make_server: Callable[..., Server],
) -> None:
    server, instance_id, snapshot_id = _server_with_a_snapshot(make_server)
    server.stop()
    data = server.data_dir
    _delete_database(data)
    kept = sorted(p.name for p in (data / "snapshots").iterdir())
    assert f"{snapshot_id}.img" in kept

    for command in (("admin", "account", "list", "--json"), ("admin", "job", "list")):
        refused = run_cli(*command, data_dir=data, check=False)
        assert "holds disk or snapshot data but has no database" in one_line_error(refused, 2)
    served = _serve_once(data)
    assert "--existing-data quarantine" in one_line_error(served, 2)
    assert not (data / "lightkeeper.db").exists()  # nothing created, nothing deleted
    assert sorted(p.name for p in (data / "snapshots").iterdir()) == kept

    # The explicit way out: everything is moved aside (nothing deleted), then a fresh start.
    server.args = ("--transition-seconds", "0", "--existing-data", "quarantine")
    server.start()
    assert not any((data / "snapshots").iterdir())
    moved = list((data / "quarantine").glob(f"*/snapshots/{snapshot_id}.img"))
    assert len(moved) == 1
    assert list((data / "quarantine").glob("*/disks/*.img"))
    assert "moved the data of a data dir without its database" in server.log()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_lost_while_serving_fails_health_and_refuses_writes(
    make_server: Callable[..., Server], how: str
) -> None:
    server = make_server("--transition-seconds", "0")
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    db = server.data_dir / "lightkeeper.db"
    if how == "deleted":
        _delete_database(server.data_dir)
    else:
        shutil.copy(db, db.with_name("copy.db"))
        os.replace(db.with_name("copy.db"), db)

    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 503
    assert "lightkeeper.db" in health.text and how in health.text
    with pytest.raises(TencentCloudSDKException) as refused:  # refused, not accepted and lost
        world.create_snapshot(c, instance_id)
    assert refused.value.code == "InternalError"
    assert "lightkeeper_store_writable 0.0" in httpx.get(f"{server.url}/metrics").text


@pytest.mark.parametrize("storage", storages())
def test_orphan_snapshot_data_is_quarantined_not_deleted(
    make_server: Callable[..., Server], storage: str
) -> None:
    server = make_server("--transition-seconds", "0", "--storage", storage)
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    kept, orphan = (
        world.wait_normal(c, world.create_snapshot(c, instance_id)).SnapshotId for _ in range(2)
    )
    server.stop()
    with sqlite3.connect(server.data_dir / "lightkeeper.db") as db:  # its record is lost
        db.execute("DELETE FROM snapshots WHERE snapshot_id = ?", (orphan,))
    # qcow2: the record of an internal snapshot, kept beside its disk
    pattern = f"snapshots/{orphan}.img" if storage == "raw" else f"disks/*.snapshots/{orphan}.size"
    (data,) = server.data_dir.glob(pattern)
    before = data.read_bytes()
    server.start()
    assert not data.exists()
    moved = server.data_dir / "quarantine" / "snapshots" / data.name
    assert moved.read_bytes() == before
    assert stat.S_IMODE((server.data_dir / "quarantine").stat().st_mode) == 0o700
    assert orphan in server.log() and "quarantine" in server.log()
    assert server.admin("snapshot", "sha256", kept, "--json")["Verified"] is True
    if storage == "qcow2":  # the internal snapshot itself stays, intact, inside the image
        (image,) = (server.data_dir / "disks").glob("*.qcow2")
        listed = subprocess.run(
            ["qemu-img", "snapshot", "-U", "-l", str(image)], capture_output=True, text=True
        )
        assert orphan in listed.stdout


def test_a_loose_data_dir_is_tightened_and_every_file_is_owner_only(
    make_server: Callable[..., Server],
) -> None:
    server = make_server("--transition-seconds", "0", start=False)
    server.data_dir.mkdir(mode=0o755)
    os.chmod(server.data_dir, 0o755)
    created = run_cli("admin", "account", "create", "perm", "--json", data_dir=server.data_dir)
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    assert "0755" in created.stderr and "0700" in created.stderr
    server.start()
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    world.wait_normal(c, world.create_snapshot(c, instance_id))
    loose = {
        str(p.relative_to(server.data_dir)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in [server.data_dir, *server.data_dir.rglob("*")]
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert loose == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the data dir away needs root")
def test_a_data_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "theirs"
    data.mkdir(mode=0o700)
    os.chown(data, 65534, 65534)
    refused = run_cli("admin", "account", "list", data_dir=data, check=False)
    assert "is owned by uid 65534" in one_line_error(refused, 2)
    assert not (data / "lightkeeper.db").exists()


def test_a_full_disk_is_one_line_for_admin_and_unhealthy_in_healthz(tmp_path: Path) -> None:
    with tmpfs_mounted(tmp_path, 24 * 1024 * 1024) as mount:
        server = Server(mount / "data", free_port(), ("--transition-seconds", "0"))
        server.start()
        try:
            account = world.new_account(server)
            filler = mount / "filler"
            with filler.open("wb", buffering=0) as handle, pytest.raises(OSError):
                while True:
                    handle.write(b"\xa5" * 65536)
            commands = [
                ("account", "create", "nospace", "--json"),
                ("key", "create", "--account", account.name, "--json"),
                ("instance", "create", "--account", account.name, "--region", "ap-guangzhou"),
                ("user", "create", account.name, "robot"),
                ("sts", "issue", "--account", account.name, "--duration", "60"),
            ]
            for command in commands:
                line = one_line_error(server.admin(*command, check=False), 1)
                assert "no space" in line.lower() or "disk is full" in line.lower(), line
            health = httpx.get(f"{server.url}/healthz")
            assert health.status_code == 503 and "space" in health.text
            assert "lightkeeper_store_writable 0.0" in httpx.get(f"{server.url}/metrics").text

            filler.unlink()
            world.wait_for(
                lambda: httpx.get(f"{server.url}/healthz").status_code, lambda s: s == 200
            )
            assert "lightkeeper_store_writable 1.0" in httpx.get(f"{server.url}/metrics").text
            assert server.admin("account", "create", "roomy", "--json")["Name"] == "roomy"
        finally:
            server.stop()


def test_data_of_a_deleted_snapshot_left_behind_is_deleted_at_the_next_start(
    make_server: Callable[..., Server],
) -> None:
    """DeleteSnapshots commits, then cannot remove the file (here: an immutable snapshots/
    folder, as after a crash between the two): the tombstone written with the deletion proves
    the data garbage, so the next start deletes it instead of quarantining it."""
    server = make_server("--transition-seconds", "0")
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    snapshot_id = world.wait_normal(c, world.create_snapshot(c, instance_id)).SnapshotId
    folder = server.data_dir / "snapshots"
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        request = models.DeleteSnapshotsRequest()
        request.SnapshotIds = [snapshot_id]
        c.DeleteSnapshots(request)
        assert world.snapshot(c, snapshot_id) is None
        assert (folder / f"{snapshot_id}.img").exists()
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    server.stop()
    server.start()
    assert not (folder / f"{snapshot_id}.img").exists()
    assert not list((server.data_dir / "quarantine").glob("**/*.img"))
    with sqlite3.connect(server.data_dir / "lightkeeper.db") as db:
        assert db.execute("SELECT count(*) FROM deleted_snapshots").fetchone() == (0,)
