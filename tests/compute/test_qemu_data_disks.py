"""Data disks on real machines: hot-plugged into a running guest (``blockdev-add`` +
``device_add``), recorded so every later boot has them, and unplugged again."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from lightkeeper.compute.qemu import QemuDriver
from lightkeeper.domain.attachment import file_attachment
from tests.compute.conftest import wait_console

INSTANCE = "lhins-datadisk"
DATA = "lhdisk-data0001"


def devices(driver: QemuDriver) -> set[str]:
    return driver._devices(INSTANCE)  # (what QEMU itself says the machine has)


def test_hot_plug_cold_boot_and_unplug(
    drivers: Callable[[], QemuDriver], disk: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(data), "32M"], check=True)
    driver = drivers()
    driver.create(INSTANCE, "RUNNING", file_attachment(disk, "qcow2"))
    wait_console(driver.console_log(INSTANCE), lambda s: bool(s))

    driver.attach_disk(INSTANCE, DATA, file_attachment(data, "qcow2"))
    assert "vd-" + DATA in devices(driver)  # hot-plugged into the running guest
    driver.attach_disk(INSTANCE, DATA, file_attachment(data, "qcow2"))  # idempotent
    assert driver.status(INSTANCE) == "RUNNING"

    # A backup of the data disk while the guest runs: QEMU snapshots the data disk's node,
    # not the system disk's.
    assert driver.internal_snapshot(INSTANCE, "lhbak-live0001", DATA) is True
    listed = subprocess.run(["qemu-img", "snapshot", "-U", "-l", str(data)],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    system = subprocess.run(["qemu-img", "snapshot", "-U", "-l", str(disk)],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "lhbak-live0001" in listed and "lhbak-live0001" not in system
    assert driver.internal_snapshot_delete(INSTANCE, "lhbak-live0001", DATA) is True

    driver.stop(INSTANCE, force=True)
    driver.start(INSTANCE)  # a later boot has it from the start
    assert "vd-" + DATA in devices(driver)
    wait_console(driver.console_log(INSTANCE), lambda s: bool(s))  # the guest is up: it can
    # take the unplug request (ACPI hotplug) only once its kernel handles events
    busy = subprocess.run(["qemu-img", "info", str(data)], capture_output=True, text=True)
    assert busy.returncode != 0 and "lock" in busy.stderr  # QEMU holds the data disk open

    driver.detach_disk(INSTANCE, DATA)
    assert "vd-" + DATA not in devices(driver)
    subprocess.run(["qemu-img", "info", str(data)], check=True, capture_output=True)  # released
    driver.detach_disk(INSTANCE, DATA)  # idempotent
    driver.stop(INSTANCE, force=True)
    driver.start(INSTANCE)
    assert "vd-" + DATA not in devices(driver)  # and forgotten for later boots
