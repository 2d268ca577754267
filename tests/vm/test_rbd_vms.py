"""Issue #15: VMs on Ceph RBD disks. QEMU opens the disk itself through librbd (its rbd block
driver), so a VM on any node reaches it; a live snapshot of the running guest is taken by
QEMU (in-flight writes drained) and holds records 1..k with no gap or torn record, five
rounds in a row; ApplyInstanceSnapshot stops the guest and rolls the image back, and the guest
resumes from k."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Server, free_port

from tests.vm.test_live_snapshots import kill_own_vms, vm_args, wait_written, written


@pytest.fixture
def rbd_vm_server(
    make_server: Callable[..., Server], guest: tuple[Path, Path], rbd_options: dict[str, Any]
) -> Iterator[Server]:
    args = list(vm_args(guest))
    args[args.index("qcow2")] = "rbd"
    server = make_server(*args, "--rbd-namespace", rbd_options["namespace"])
    server.namespace = rbd_options["namespace"]  # type: ignore[attr-defined]
    yield server
    kill_own_vms(server)


def rbd_snapshot_records(
    namespace: str, disk_id: str, snapshot_id: str, records: ModuleType, tmp: Path
) -> tuple[int, list[str], bool]:
    """(k, problems, quiesced) of the snapshot's image (records.py)."""
    raw = tmp / f"{snapshot_id}.raw"
    subprocess.run(
        ["rbd", "--namespace", namespace, "export", f"rbd/lk.{disk_id}@{snapshot_id}", str(raw)],
        check=True,
        capture_output=True,
    )
    try:
        k, problems = records.parse(raw)
        return k, problems, records.quiesced(raw, k)
    finally:
        raw.unlink()


def test_live_snapshots_of_a_guest_on_rbd_pass_the_prefix_check_and_roll_back(
    rbd_vm_server: Server, records: ModuleType, tmp_path: Path
) -> None:
    server = rbd_vm_server
    namespace: str = server.namespace  # type: ignore[attr-defined]
    account = world.new_account(server, "rbd-vm")
    created = world.create_instance(server, account)  # 1 GiB RBD image, RUNNING
    instance_id, disk_id = created["InstanceId"], created["SystemDisk"]["DiskId"]
    c = world.client(server, account)
    assert world.instance(c, instance_id).InstanceState == "RUNNING"

    previous = None
    for round_number in range(5):
        before = wait_written(server, instance_id, 50 * (round_number + 1))
        snapshot_id = world.create_snapshot(c, instance_id, f"live-{round_number}")
        world.wait_normal(c, snapshot_id, timeout=60)
        k, problems, quiesced = rbd_snapshot_records(
            namespace, disk_id, snapshot_id, records, tmp_path
        )
        assert problems == [], problems
        assert k >= before
        assert quiesced, "the guest agent did not hold the writer at a consistent point"
        assert world.instance(c, instance_id).InstanceState == "RUNNING"
        verified = server.admin("snapshot", "sha256", snapshot_id, "--json")
        assert verified["Verified"] is True  # its table (incremental after round 1) is right
        if previous is not None:  # (the quota: 2 per instance)
            delete = models.DeleteSnapshotsRequest()
            delete.SnapshotIds = [previous]
            c.DeleteSnapshots(delete)  # an RBD snapshot of an image a running VM holds
        previous = snapshot_id
        wait_written(server, instance_id, k + 60)

    world.apply_snapshot(c, instance_id, snapshot_id)
    done = world.wait_for(
        lambda: world.snapshot(c, snapshot_id),
        lambda s: s.LatestOperationState != "OPERATING",
        timeout=60,
    )
    assert done.LatestOperationState == "SUCCESS"
    assert world.instance(c, instance_id).InstanceState == "STOPPED"
    start = models.StartInstancesRequest()
    start.InstanceIds = [instance_id]
    c.StartInstances(start)
    world.wait_for(  # (QEMU truncates the console log as it starts)
        lambda: world.instance(c, instance_id), lambda i: i.InstanceState == "RUNNING", timeout=60
    )
    boot = world.wait_for(
        lambda: [w for w in written(server, instance_id) if w[1]],
        bool,
        timeout=90,
        interval=0.2,
    )
    assert boot[0][0] == k  # the guest continues from the snapshot's last record


def test_the_guest_of_a_dead_node_resumes_on_a_live_one(
    postgres_server: Any, guest: tuple[Path, Path], rbd_options: dict[str, Any], tmp_path: Path
) -> None:
    """Two nodes on PostgreSQL and RBD. The host of a running guest dies (its server and its
    QEMU SIGKILLed: the image's exclusive lock is left with a dead client); once the node is
    DOWN, StartInstances through the other node fences the disk, boots the guest there, and the
    guest resumes from the last record it had reported written."""
    database = postgres_server.create_database(f"rbdvm{os.getpid()}")
    args = list(vm_args(guest))
    args[args.index("qcow2")] = "rbd"
    args += ["--rbd-namespace", rbd_options["namespace"], "--job-lease-seconds", "1.5"]
    nodes = []
    for n in range(2):
        node = Server(tmp_path / f"node{n}", free_port(), ("--node", f"n{n}", *args))
        node.database = database
        node.start()
        nodes.append(node)
    a, b = nodes
    try:
        account = world.new_account(a, "rbd-orphan-vm")
        instance_id = world.create_instance(a, account)["InstanceId"]  # RUNNING on n0
        reported = wait_written(a, instance_id, 40)
        qemu = int((a.data_dir / "vms" / instance_id / "qemu.pid").read_text().split()[0])
        a.kill()
        os.kill(qemu, 9)
        world.wait_for(
            lambda: {n["Name"]: n["State"] for n in b.admin("node", "list", "--json")},
            lambda states: states["n0"] == "DOWN",
            timeout=30,
        )
        c = world.client(b, account)
        start = models.StartInstancesRequest()
        start.InstanceIds = [instance_id]
        c.StartInstances(start)
        world.wait_for(
            lambda: world.instance(c, instance_id),
            lambda i: i.InstanceState == "RUNNING",
            timeout=90,
        )
        boot = world.wait_for(
            lambda: [w for w in written(b, instance_id) if w[1]], bool, timeout=90, interval=0.2
        )
        assert boot[0][0] >= reported  # every record reported before the crash is on the disk
    finally:
        for node in nodes:
            node.stop()
            kill_own_vms(node)
