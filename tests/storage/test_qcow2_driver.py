"""Qcow2Driver specifics against the real qemu tools: internal snapshots and markers, redo
records, foreign image locks, live mode; the cases every driver shares are in
test_contract.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lightkeeper.storage import (
    DiskBusy,
    DiskNotFound,
    NoSpace,
    Qcow2Driver,
    RawDriver,
    SnapshotExists,
    SnapshotRef,
    StorageIOError,
    make_driver,
)
from lightkeeper.storage import qcow2 as qcow2_mod

if not (shutil.which("qemu-img") and shutil.which("qemu-io")):
    pytest.skip("qemu-img/qemu-io not installed", allow_module_level=True)

MiB = 1024 * 1024
GiB = 1024 * MiB
DISK = "lhdisk-ab12cd34"
SNAP = "lhsnap-ab12cd34"
OFFSETS = (0, 4096 + 7, MiB - 3, 32 * MiB, 64 * MiB - 100)


@pytest.fixture
def driver(tmp_path: Path) -> Qcow2Driver:
    return Qcow2Driver(tmp_path)


@pytest.fixture
def disk(driver: Qcow2Driver) -> str:
    """A 64 MiB disk with a small pattern at several (unaligned) offsets."""
    driver.create_disk(DISK, 64 * MiB)
    for i, offset in enumerate(OFFSETS):
        driver.write(DISK, offset, _pattern(i, 100))
    return DISK


def _pattern(seed: int, length: int) -> bytes:
    return bytes((seed * 31 + k) % 251 for k in range(length))


def _ignore(_: int) -> None:
    pass


def _temp_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp-*"))


def _tags(path: Path) -> list[str]:
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", "-f", "qcow2", str(path)],
        capture_output=True,
        check=True,
    ).stdout
    return [s["name"] for s in json.loads(out).get("snapshots", [])]


def test_checksums_equal_the_raw_drivers_for_the_same_content(
    tmp_path: Path, driver: Qcow2Driver, disk: str
) -> None:
    raw = RawDriver(tmp_path / "raw")
    raw.create_disk(DISK, 64 * MiB)
    for i, offset in enumerate(OFFSETS):
        raw.write(DISK, offset, _pattern(i, 100))
    content = bytearray(64 * MiB)
    for i, offset in enumerate(OFFSETS):
        content[offset : offset + 100] = _pattern(i, 100)

    assert driver.create_snapshot(disk, SNAP, _ignore) == raw.create_snapshot(DISK, SNAP, _ignore)
    assert driver.disk_sha256(disk) == raw.disk_sha256(DISK) == hashlib.sha256(content).hexdigest()
    assert driver.read(disk, 0, 64 * MiB) == content
    # a plain sha256 recorded by older versions is accepted too
    driver.restore_snapshot(disk, SNAP, hashlib.sha256(content).hexdigest(), _ignore)


def test_snapshot_markers_ids_and_idempotent_delete(
    tmp_path: Path, driver: Qcow2Driver, disk: str
) -> None:
    driver.create_snapshot(disk, SNAP, _ignore)
    driver.create_snapshot(disk, "lhsnap-b", _ignore)
    assert driver.snapshots() == [
        SnapshotRef(DISK, "lhsnap-ab12cd34"),
        SnapshotRef(DISK, "lhsnap-b"),
    ]
    assert _tags(driver.disk_path(disk)) == [SNAP, "lhsnap-b"]
    with pytest.raises(SnapshotExists):
        driver.create_snapshot(disk, SNAP, _ignore)

    driver.delete_snapshot(DISK, SNAP)
    driver.delete_snapshot(DISK, SNAP)  # idempotent
    assert not driver.snapshot_exists(DISK, SNAP)
    assert driver.snapshots() == [SnapshotRef(DISK, "lhsnap-b")]
    assert _tags(driver.disk_path(disk)) == ["lhsnap-b"]

    # a marker whose tag is gone (crash, or deleted through QMP) is listed, not "existing"
    subprocess.run(["qemu-img", "snapshot", "-d", "lhsnap-b", str(driver.disk_path(disk))])
    assert driver.snapshots() == [SnapshotRef(DISK, "lhsnap-b")] and not driver.snapshot_exists(
        DISK, "lhsnap-b"
    )
    driver.delete_snapshot(DISK, "lhsnap-b")
    assert driver.snapshots() == []
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == []


def test_leftover_tag_of_an_interrupted_attempt_is_replaced(driver: Qcow2Driver, disk: str) -> None:
    image = driver.disk_path(disk)
    subprocess.run(["qemu-img", "snapshot", "-c", SNAP, str(image)], check=True)
    driver.write(disk, 0, b"newer")
    checksum = driver.create_snapshot(disk, SNAP, _ignore)
    assert _tags(image) == [SNAP]
    assert driver.snapshot_sha256(DISK, SNAP) == driver.disk_sha256(disk)
    assert checksum == driver.snapshot_checksum(DISK, SNAP)


def test_restore_redo_record_is_completed_after_a_crash(
    tmp_path: Path, driver: Qcow2Driver, disk: str
) -> None:
    """A crash inside ``snapshot -a`` is simulated by its redo record left behind."""
    checksum = driver.create_snapshot(disk, SNAP, _ignore)
    expected = driver.snapshot_sha256(DISK, SNAP)
    driver.write(disk, 0, b"changed")
    (tmp_path / "disks" / f"{disk}.restoring").write_text(SNAP)
    (tmp_path / "tmp" / "export.raw.tmp-0123abcd").write_bytes(b"half an export")
    assert driver.cleanup_temporary() == 2
    assert driver.disk_sha256(disk) == expected
    assert _temp_files(tmp_path) == [] and not (tmp_path / "disks" / f"{disk}.restoring").exists()
    driver.restore_snapshot(disk, SNAP, checksum, _ignore)


@pytest.fixture
def holder(driver: Qcow2Driver, disk: str) -> Iterator[None]:
    """Another process (interactive qemu-io) holding the image open read-write."""
    proc = subprocess.Popen(
        ["qemu-io", "-f", "qcow2", str(driver.disk_path(disk))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write("write -P 1 0 512\n")  # answers only once the image is open
        proc.stdin.flush()
        while "wrote" not in proc.stdout.readline():
            pass
        yield
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


@pytest.mark.usefixtures("holder")
def test_image_held_by_another_process_is_busy(driver: Qcow2Driver, disk: str) -> None:
    with pytest.raises(DiskBusy):
        driver.create_snapshot(disk, SNAP, _ignore)
    assert not driver.snapshot_exists(DISK, SNAP) and driver.snapshots() == []
    with pytest.raises(DiskBusy):
        driver.write(disk, 0, b"x")
    with pytest.raises(DiskBusy):
        driver.read(disk, 0, 1)
    assert driver.disk_size(disk) == 64 * MiB  # header reads use force-share


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("qemu-img: Could not open 'd': Failed to get \"write\" lock\nIs another...", DiskBusy),
        ("qemu-img: Could not open 'd': Failed to get shared \"write\" lock", DiskBusy),
        ("qemu-img: error while writing at byte 0: No space left on device", NoSpace),
        ("qemu-img: Could not open 'd': No such file or directory", DiskNotFound),
        ("qemu-img: Failed to load snapshot: Can't find snapshot", DiskNotFound),
        ("qemu-img: Could not open 'd': Permission denied", StorageIOError),
    ],
)
def test_qemu_messages_are_mapped(message: str, error: type[Exception]) -> None:
    mapped = qcow2_mod._failure(message, DiskNotFound(DISK))
    assert type(mapped) is error
    if error is StorageIOError:
        assert "Permission denied" in str(mapped)


def test_disk_layout_sectors_and_base_image(tmp_path: Path, driver: Qcow2Driver) -> None:
    """The generic lifecycle is in test_contract.py; here: where images go, qemu's sector
    sizes, and which files a deleted disk leaves."""
    base = tmp_path / "base.img"
    base.write_bytes(_pattern(7, 10_000) + bytes(512 - 10_000 % 512))
    driver.create_disk(DISK, 8 * MiB, base_image=base)
    assert driver.disk_path(DISK) == tmp_path / "disks" / f"{DISK}.qcow2"
    assert driver.attachment(DISK).path == driver.disk_path(DISK)
    with pytest.raises(ValueError):
        driver.create_disk("lhdisk-small", 4096, base_image=base)
    with pytest.raises(ValueError):
        driver.create_disk("lhdisk-odd", 1000)  # qemu sizes disks in sectors
    driver.delete_disk(DISK)
    assert not driver.disk_exists(DISK) and not driver.disk_exists("lhdisk-small")
    assert sorted(p.name for p in (tmp_path / "disks").iterdir()) == ["lhdisk-small.lock"]
    assert (tmp_path / "disks").stat().st_mode & 0o777 == 0o700


def test_all_digit_ids_and_the_registry(tmp_path: Path, driver: Qcow2Driver, disk: str) -> None:
    with pytest.raises(ValueError):
        driver.create_snapshot(disk, "12345", _ignore)  # digits: a qemu snapshot id
    assert driver.snapshots() == []
    assert isinstance(make_driver("qcow2", tmp_path), Qcow2Driver)
    assert driver.capabilities.live_snapshot


QSD_TIMEOUT = 10


def _qmp(sock_path: Path, *commands: dict[str, object]) -> list[dict[str, object]]:
    """Minimal QMP client: greeting, capabilities, then one reply per command."""
    deadline = time.monotonic() + QSD_TIMEOUT
    while True:
        try:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(sock_path))
            break
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    with sock, sock.makefile("rw") as stream:
        assert "QMP" in json.loads(stream.readline())
        replies = []
        for command in ({"execute": "qmp_capabilities"}, *commands):
            stream.write(json.dumps(command) + "\n")
            stream.flush()
            while "return" not in (reply := json.loads(stream.readline())) and (
                "error" not in reply
            ):
                pass  # skip asynchronous events
            replies.append(reply)
        return replies[1:]


@pytest.mark.skipif(not shutil.which("qemu-storage-daemon"), reason="no qemu-storage-daemon")
def test_live_snapshot_through_a_running_qemu(
    tmp_path: Path, driver: Qcow2Driver, disk: str
) -> None:
    sock = tmp_path / "qmp.sock"
    daemon = subprocess.Popen(
        [
            "qemu-storage-daemon",
            "--blockdev",
            f"driver=file,node-name=file0,filename={driver.disk_path(disk)}",
            "--blockdev",
            "driver=qcow2,node-name=disk0,file=file0",
            # a writable export makes the daemon hold the image's write lock, like a VM
            "--nbd-server",
            f"addr.type=unix,addr.path={tmp_path / 'nbd.sock'}",
            "--export",
            "type=nbd,id=export0,node-name=disk0,writable=on",
            "--chardev",
            f"socket,path={sock},server=on,wait=off,id=qmp0",
            "--monitor",
            "chardev=qmp0",
        ]
    )
    try:

        def take(tag: str) -> None:
            (reply,) = _qmp(
                sock,
                {
                    "execute": "blockdev-snapshot-internal-sync",
                    "arguments": {"device": "disk0", "name": tag},
                },
            )
            assert reply == {"return": {}}, reply

        seen: list[int] = []
        live = driver.create_snapshot_live(disk, SNAP, take, seen.append)
        assert seen[0] == 0 and seen[-1] == 100
        assert driver.snapshot_exists(DISK, SNAP) and driver.snapshot_checksum(DISK, SNAP) == live
        with pytest.raises(DiskBusy):  # the daemon holds the image
            driver.create_snapshot(disk, "lhsnap-offline", _ignore)
        with pytest.raises(SnapshotExists):
            driver.create_snapshot_live(disk, SNAP, take, _ignore)
    finally:
        daemon.terminate()
        daemon.wait(timeout=QSD_TIMEOUT)
    offline = driver.create_snapshot(disk, "lhsnap-offline", _ignore)
    assert live == offline
    driver.restore_snapshot(disk, SNAP, live, _ignore)
