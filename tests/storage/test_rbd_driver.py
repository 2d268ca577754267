"""What is particular to the rbd driver, against a real Ceph cluster (tests/support/ceph.py);
the contract every driver passes is tests/storage/test_contract.py."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lightkeeper.storage import DiskBusy, make_driver
from lightkeeper.storage.rbd import BASE_PREFIX, DISK_PREFIX, RESTORING_KEY, RbdDriver

MiB = 1024 * 1024
DISK = "lhdisk-rbd00001"


def _ignore(_: int) -> None:
    pass


@pytest.fixture
def driver(tmp_path: Path, rbd_options: dict[str, Any]) -> Iterator[RbdDriver]:
    made = make_driver("rbd", tmp_path, **rbd_options)
    assert isinstance(made, RbdDriver)
    yield made
    made.close()


def _filled(driver: RbdDriver, mib: int = 32) -> None:
    driver.create_disk(DISK, 64 * MiB)
    driver.write(DISK, 0, os.urandom(mib * MiB))


def test_a_second_snapshot_hashes_only_what_diff_iterate_reports(
    tmp_path: Path, rbd_options: dict[str, Any]
) -> None:
    """The parent's table plus the changed blocks: 1 MiB rewritten since the first snapshot
    of 32 MiB costs one block's read, and the table equals a full hash."""
    chunks = [0]

    def count() -> None:
        chunks[0] += 1

    driver = RbdDriver(tmp_path, on_chunk=count, **rbd_options)
    _filled(driver)
    driver.create_snapshot(DISK, "lhsnap-first", _ignore)
    full = chunks[0]
    assert full >= 4  # 32 MiB of data in 8 MiB chunks
    driver.write(DISK, 5 * MiB, os.urandom(MiB))
    chunks[0] = 0
    checksum = driver.create_snapshot(DISK, "lhsnap-second", _ignore)
    assert chunks[0] == 1
    assert checksum == driver.snapshot_checksum(DISK, "lhsnap-second")
    driver.close()


def test_another_ceph_client_holding_the_image_makes_the_disk_busy(driver: RbdDriver) -> None:
    """A VM or an operator's ``rbd`` holding the image's exclusive lock: DiskBusy, nothing
    written, nothing snapshotted."""
    import rados
    import rbd

    _filled(driver, 1)
    before = driver.disk_sha256(DISK)
    other = rados.Rados(conffile=os.environ["CEPH_CONF"])
    other.connect(timeout=10)
    try:
        ioctx = other.open_ioctx("rbd")
        ioctx.set_namespace(driver._namespace)
        with rbd.Image(ioctx, DISK_PREFIX + DISK) as image:
            image.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
            with pytest.raises(DiskBusy):
                driver.write(DISK, 0, b"x")
            with pytest.raises(DiskBusy):
                driver.create_snapshot(DISK, "lhsnap-held", _ignore)
            image.lock_release()
        ioctx.close()
    finally:
        other.shutdown()
    assert driver.disk_sha256(DISK) == before
    assert not driver.snapshot_exists(DISK, "lhsnap-held")
    driver.write(DISK, 0, b"x")  # released


def test_an_interrupted_rollback_is_finished_before_anything_else(driver: RbdDriver) -> None:
    """A crash inside rollback_to_snap leaves its intent in the image's metadata: the next
    operation on the disk (here, cleanup at start) rolls back again, whole."""
    import rbd

    _filled(driver, 2)
    driver.create_snapshot(DISK, "lhsnap-target", _ignore)
    want = driver.disk_sha256(DISK)
    driver.write(DISK, 0, os.urandom(MiB))  # a half-done rollback: neither old nor new
    with rbd.Image(driver.ioctx, DISK_PREFIX + DISK) as image:
        image.metadata_set(RESTORING_KEY, "lhsnap-target")
    assert driver.cleanup_temporary() == 1
    assert driver.disk_sha256(DISK) == want
    with rbd.Image(driver.ioctx, DISK_PREFIX + DISK) as image:
        assert RESTORING_KEY not in dict(image.metadata_list())


def test_disks_from_one_base_image_are_clones_of_one_protected_snapshot(
    tmp_path: Path, driver: RbdDriver
) -> None:
    import rbd

    base = tmp_path / "base.img"
    content = os.urandom(3 * MiB)
    base.write_bytes(content)
    driver.create_disk("lhdisk-clone001", 16 * MiB, base_image=base)
    driver.create_disk("lhdisk-clone002", 16 * MiB, base_image=base)
    bases = [n for n in rbd.RBD().list(driver.ioctx) if n.startswith(BASE_PREFIX)]
    assert len(bases) == 1
    with rbd.Image(driver.ioctx, bases[0]) as image:
        assert image.is_protected_snap("base")
        children = sorted(name for _, name in image.list_children())
    assert children == [DISK_PREFIX + "lhdisk-clone001", DISK_PREFIX + "lhdisk-clone002"]
    for disk in ("lhdisk-clone001", "lhdisk-clone002"):
        assert driver.read(disk, 0, len(content)) == content
        assert driver.disk_size(disk) == 16 * MiB
    driver.write("lhdisk-clone001", 0, b"only mine")
    assert driver.read("lhdisk-clone002", 0, 9) == content[:9]


def test_the_pool_id_is_the_same_for_every_node_and_differs_by_namespace(
    tmp_path: Path, driver: RbdDriver, rbd_options: dict[str, Any]
) -> None:
    elsewhere = RbdDriver(tmp_path / "other-node", **rbd_options)
    assert elsewhere.pool == driver.pool and driver.pool.startswith("lhpool-")
    assert len(driver.pool) == len("lhpool-") + 8
    default = RbdDriver(tmp_path / "third")
    assert default.pool != driver.pool
    elsewhere.close()
    default.close()


_HOLDER = """
import json, sys, time
from pathlib import Path
from lightkeeper.storage import make_driver
with make_driver("rbd", Path(sys.argv[1]), **json.loads(sys.argv[2])).lock_disk(sys.argv[3]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_does_not_keep_the_disk(
    tmp_path: Path, driver: RbdDriver, rbd_options: dict[str, Any]
) -> None:
    """A process SIGKILLed while it held the disk (its lock object and its client's exclusive
    lock on the image): the next operation breaks both at once — it does not wait for Ceph to
    time the dead client's watch out (~30 s) — and a live holder still makes it DiskBusy."""
    import json
    import signal
    import subprocess
    import sys
    import threading

    _filled(driver, 1)
    args = [sys.executable, "-c", _HOLDER, str(tmp_path), json.dumps(rbd_options), DISK]
    holder = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(DiskBusy):
        driver.write(DISK, 0, b"while it lives")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    done = threading.Event()

    def snapshot() -> None:
        driver.create_snapshot(DISK, "lhsnap-after01", _ignore)
        done.set()

    threading.Thread(target=snapshot, daemon=True).start()
    assert done.wait(10), "waited for Ceph's watch timeout instead of breaking a dead lock"
    assert driver.snapshot_exists(DISK, "lhsnap-after01")


_UNRECORDED_HOLDER = """
import json, sys, time
from pathlib import Path
import rbd
from lightkeeper.storage import make_driver
from lightkeeper.storage.rbd import DISK_PREFIX
driver = make_driver("rbd", Path(sys.argv[1]), **json.loads(sys.argv[2]))
with driver.lock_disk(sys.argv[3]):
    image = rbd.Image(driver.ioctx, DISK_PREFIX + sys.argv[3])
    image.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_holder_killed_before_it_recorded_its_image_lock_does_not_keep_the_disk(
    tmp_path: Path, driver: RbdDriver, rbd_options: dict[str, Any]
) -> None:
    """A node killed after librbd gave its client the image's exclusive lock but before the
    image's metadata named that client (librbd takes the lock for the metadata write
    itself): the lock's owner is not the recorded Lightkeeper client, but it no longer
    watches the image once its lock object is broken (which blocklists it), so it is dead
    and its lock is broken too. It kept the disk DiskBusy for ever (CI, 2 runs of 7)."""
    import json
    import signal
    import subprocess
    import sys

    _filled(driver, 1)  # (the image's metadata now names this test's own client)
    args = [sys.executable, "-c", _UNRECORDED_HOLDER, str(tmp_path), json.dumps(rbd_options)]
    holder = subprocess.Popen([*args, DISK], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 10
    while True:  # (the blocklisting reaches the OSD's watch list a moment after the break)
        try:
            driver.create_snapshot(DISK, "lhsnap-after02", _ignore)
            break
        except DiskBusy:
            assert time.monotonic() < deadline, "the dead client's image lock kept the disk"
            time.sleep(0.2)
    assert driver.snapshot_exists(DISK, "lhsnap-after02")


def test_a_lock_of_another_host_holds_until_its_lease_runs_out(driver: RbdDriver) -> None:
    """A holder on another node: its lock object is respected while its lease runs
    (DiskBusy), then broken, and that node's Ceph client blocklisted first, so a stalled node
    that wakes up can write nothing any more."""
    import json
    import time

    import rados

    from lightkeeper.storage.rbd import LOCK_PREFIX

    _filled(driver, 1)
    other = rados.Rados(conffile=os.environ["CEPH_CONF"])
    other.connect(timeout=10)
    try:
        theirs = other.open_ioctx("rbd")
        theirs.set_namespace(driver._namespace)
        key = LOCK_PREFIX + DISK

        def held_by_them(expires: float) -> None:
            about = {"holder": "node-b:1234:99", "client": other.get_addrs(), "expires": expires}
            theirs.write_full(key, b"0" * 32 + b"\n" + json.dumps(about).encode())

        held_by_them(time.time() + 60)
        with pytest.raises(DiskBusy):
            driver.write(DISK, 0, b"too early")
        held_by_them(time.time() - 1)
        driver.write(DISK, 0, b"after the lease")
        assert driver.read(DISK, 0, 15) == b"after the lease"
        with pytest.raises(rados.Error):  # the stalled node's client is fenced off
            theirs.write_full("lk-probe", b"late write")
    finally:
        other.shutdown()


def test_a_stopped_instance_whose_image_another_client_holds_is_refused_disk_busy(
    make_server: Any, rbd_options: dict[str, Any]
) -> None:
    """Through the API (the official SDK): CreateInstanceSnapshot of a STOPPED instance whose
    RBD image another Ceph client holds is UnsupportedOperation.DiskBusy at once; accepted
    again once that client lets go."""
    import rados
    import rbd
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )
    from testkit import world

    server = make_server("--storage", "rbd", "--rbd-namespace", rbd_options["namespace"])
    account = world.new_account(server)
    created = world.create_instance(server, account, "ap-guangzhou", "--state", "STOPPED")
    c = world.client(server, account)
    other = rados.Rados(conffile=os.environ["CEPH_CONF"])
    other.connect(timeout=10)
    try:
        ioctx = other.open_ioctx("rbd")
        ioctx.set_namespace(rbd_options["namespace"])
        with rbd.Image(ioctx, DISK_PREFIX + created["SystemDisk"]["DiskId"]) as image:
            image.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)
            with pytest.raises(TencentCloudSDKException) as refused:
                world.create_snapshot(c, created["InstanceId"])
            assert refused.value.code == "UnsupportedOperation.DiskBusy"
            image.lock_release()
        ioctx.close()
    finally:
        other.shutdown()
    world.wait_normal(c, world.create_snapshot(c, created["InstanceId"]))
