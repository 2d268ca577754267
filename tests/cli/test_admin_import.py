"""``admin instance import`` copies the image outside every database transaction (issue #11,
defect 6): a CreateInstanceSnapshot accepted meanwhile is neither refused nor lost, and an
import that dies half-way leaves nothing half-made."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import LIGHTKEEPER, Server

MiB = 1024 * 1024
IMAGE_MIB = 128  # 16 copy chunks; LIGHTKEEPER_FAULTS=storage.copy:slow makes each take 0.1 s


def _image(path: Path) -> bytes:
    head = os.urandom(MiB)
    with path.open("wb") as handle:
        handle.write(head)
        for _ in range(IMAGE_MIB - 1):
            handle.write(os.urandom(MiB))  # real data: nothing a sparse copy can skip
    return head


def _start_import(server: Server, account: str, image: Path) -> subprocess.Popen[bytes]:
    command = [
        *LIGHTKEEPER,
        "admin",
        "instance",
        "import",
        "--account",
        account,
        "--region",
        "ap-guangzhou",
        "--disk",
        str(image),
        "--json",
        "--data-dir",
        str(server.data_dir),
    ]
    env = {**os.environ, "LIGHTKEEPER_FAULTS": "storage.copy:slow"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _copying(server: Server) -> bool:
    return any((server.data_dir / "disks").glob("*.tmp-*"))


def test_a_create_accepted_during_an_import_succeeds(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    # A short quota-lock wait, so an import that held the write lock for its whole copy
    # (~1.6 s here) would make the create fail with GetSnapshotAllocQuotaLockError.
    server = make_server("--transition-seconds", "0", "--quota-lock-timeout", "0.5")
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    image = tmp_path / "web.img"
    head = _image(image)

    importer = _start_import(server, account.name, image)
    world.wait_for(lambda: _copying(server) or importer.poll() is not None, bool, interval=0.01)
    assert importer.poll() is None, importer.communicate()
    snapshot_id = world.create_snapshot(c, instance_id)  # while the image is being copied
    still_copying = _copying(server)
    out, err = importer.communicate(timeout=120)
    assert importer.returncode == 0, err.decode()
    assert still_copying  # the create really overlapped the copy

    assert world.wait_normal(c, snapshot_id).SnapshotState == "NORMAL"
    imported = world.instance(c, json.loads(out)["InstanceId"])
    assert imported.InstanceState == "STOPPED"
    assert _disk_head(server, imported.InstanceId) == head


def _disk_head(server: Server, instance_id: str) -> bytes:
    read = ["admin", "disk", "read", instance_id, "--length", str(MiB)]
    where = ["--data-dir", str(server.data_dir)]
    return subprocess.run([*LIGHTKEEPER, *read, *where], capture_output=True, check=True).stdout


def test_an_import_killed_mid_copy_leaves_nothing_after_a_restart(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = make_server("--transition-seconds", "0")
    account = world.new_account(server)
    image = tmp_path / "big.img"
    _image(image)
    c = world.client(server, account)

    importer = _start_import(server, account.name, image)
    world.wait_for(lambda: _copying(server) or importer.poll() is not None, bool, interval=0.01)
    importer.send_signal(signal.SIGKILL)
    importer.wait(timeout=30)
    server.stop()
    server.start()

    assert c.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 0
    assert list((server.data_dir / "disks").iterdir()) == []
    with sqlite3.connect(server.data_dir / "lightkeeper.db") as db:
        assert db.execute("SELECT count(*) FROM pending_instances").fetchone() == (0,)
