"""The compute-driver contract, run unchanged against every driver: null always, qemu where
qemu-system-x86_64 and the test guest work (the ``guest`` fixture skips otherwise). What
one driver alone does (live snapshots, re-attaching after a restart) is in its own module."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lightkeeper.compute import ComputeDriver, NullDriver, StatusUnavailable
from lightkeeper.compute.qemu import QemuDriver
from lightkeeper.domain.attachment import Attachment, file_attachment

INSTANCE = "lhins-contract1"


@pytest.fixture(params=["null", "qemu"])
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> ComputeDriver:
    if request.param == "null":
        return NullDriver(tmp_path / "data", transition_seconds=0)
    make: Callable[[], QemuDriver] = request.getfixturevalue("drivers")  # needs the guest
    return make()


@pytest.fixture
def attachment(request: pytest.FixtureRequest) -> Attachment:
    disk: Path = request.getfixturevalue("disk")  # a fresh qcow2 image (conftest)
    return file_attachment(disk, "qcow2")


def test_unknown_instance_has_no_status(driver: ComputeDriver) -> None:
    assert isinstance(driver.supervised, bool)
    with pytest.raises(StatusUnavailable):
        driver.status(INSTANCE)
    for call in (
        lambda: driver.start(INSTANCE),
        lambda: driver.stop(INSTANCE, force=True),
        lambda: driver.reboot(INSTANCE),
    ):
        with pytest.raises(StatusUnavailable):
            call()
    driver.delete(INSTANCE)  # deleting what is not there is fine


def test_power_cycle(driver: ComputeDriver, attachment: Attachment) -> None:
    driver.create(INSTANCE, "STOPPED", attachment)
    assert driver.status(INSTANCE) == "STOPPED"
    driver.start(INSTANCE)
    assert driver.status(INSTANCE) == "RUNNING"
    driver.reboot(INSTANCE)
    assert driver.status(INSTANCE) == "RUNNING"
    driver.stop(INSTANCE, force=True)
    assert driver.status(INSTANCE) == "STOPPED"
    for force in (True, False):
        driver.stop(INSTANCE, force=force)  # already stopped: nothing to do
        assert driver.status(INSTANCE) == "STOPPED"
    driver.reboot(INSTANCE)  # a stopped machine is started
    assert driver.status(INSTANCE) == "RUNNING"
    driver.stop(INSTANCE, force=True)
    assert driver.status(INSTANCE) == "STOPPED"
    # a soft stop of a running machine needs a guest that handles ACPI: test_qemu.py


def test_create_brings_the_machine_to_the_asked_state(
    driver: ComputeDriver, attachment: Attachment
) -> None:
    driver.create(INSTANCE, "RUNNING", attachment)
    assert driver.status(INSTANCE) == "RUNNING"
    driver.create(INSTANCE, "STOPPED", attachment)  # registering again is allowed
    assert driver.status(INSTANCE) == "STOPPED"
    driver.delete(INSTANCE)
    with pytest.raises(StatusUnavailable):
        driver.status(INSTANCE)
    driver.delete(INSTANCE)  # idempotent
