"""The qemu driver against a real guest: live snapshots must be crash-consistent, and
machines must outlive (and be re-found by) the driver that started them."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from lightkeeper.compute import StatusUnavailable
from lightkeeper.compute.qemu import QemuDriver, probe_kvm
from lightkeeper.domain.attachment import file_attachment
from tests.compute.conftest import console_ks, wait_console

INSTANCE = "lhins-test0001"


def started(seen: list[tuple[int, bool]]) -> bool:
    return any(start for _, start in seen)


def start_k(seen: list[tuple[int, bool]]) -> int:
    return next(k for k, start in seen if start)


def test_live_snapshot_is_crash_consistent_and_rollback_continues(
    drivers: Callable[[], QemuDriver],
    disk: Path,
    tmp_path: Path,
    records: ModuleType,
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = drivers()
    driver.create(INSTANCE, "RUNNING", file_attachment(disk, "qcow2"))
    assert driver.status(INSTANCE) == "RUNNING"
    log = driver.console_log(INSTANCE)
    seen = wait_console(log, lambda s: started(s) and s[-1][0] >= 100)
    assert start_k(seen) == 0  # a fresh disk

    assert driver.internal_snapshot(INSTANCE, "snap1") is True
    at_snapshot = console_ks(log)[-1][0]
    wait_console(log, lambda s: s[-1][0] >= at_snapshot + 100)  # the guest kept writing
    driver.stop(INSTANCE, force=True)
    assert driver.status(INSTANCE) == "STOPPED"
    assert driver.internal_snapshot(INSTANCE, "late") is False

    raw = tmp_path / "snap1.raw"
    subprocess.run(
        ["qemu-img", "convert", "-l", "snapshot.name=snap1", "-O", "raw", str(disk), str(raw)],
        check=True,
    )
    k, problems = records.parse(raw)
    assert problems == []
    assert k >= at_snapshot  # every record announced before the snapshot is in it
    whole = tmp_path / "now.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(disk), str(whole)], check=True)
    k_now, problems_now = records.parse(whole)
    assert problems_now == [] and k_now >= at_snapshot + 100

    subprocess.run(["qemu-img", "snapshot", "-a", "snap1", str(disk)], check=True)
    driver.start(INSTANCE)
    seen = wait_console(log, started)
    assert start_k(seen) == k  # the guest found exactly the snapshot's records...
    wait_console(log, lambda s: s[-1][0] > k)  # ...and carries on after them

    with caplog.at_level(logging.WARNING, logger="lightkeeper.compute.qemu"):
        driver.stop(INSTANCE, force=False)  # ACPI power button, handled by the guest's acpid
    assert "ACPI power button; quitting" not in caplog.text, "SOFT stop fell back to quit"
    assert b"LKGUEST powerdown" in log.read_bytes()
    assert driver.status(INSTANCE) == "STOPPED"


def test_restarted_driver_reattaches_and_sees_deaths(
    drivers: Callable[[], QemuDriver], disk: Path
) -> None:
    first = drivers()
    first.create(INSTANCE, "RUNNING", file_attachment(disk, "qcow2"))
    wait_console(first.console_log(INSTANCE), started)

    second = drivers()  # a server restart: nothing but the files on disk
    assert second.status(INSTANCE) == "RUNNING"
    second.reboot(INSTANCE)
    assert second.status(INSTANCE) == "RUNNING"
    second.stop(INSTANCE, force=True)
    assert first.status(INSTANCE) == second.status(INSTANCE) == "STOPPED"

    second.start(INSTANCE)
    pid = second.pid(INSTANCE)
    assert pid is not None
    third = drivers()
    assert third.status(INSTANCE) == "RUNNING"
    os.kill(pid, signal.SIGKILL)  # the machine dies on its own
    deadline = time.monotonic() + 30  # a wait, not a timing claim
    while third.status(INSTANCE) != "STOPPED":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert third.internal_snapshot(INSTANCE, "dead") is False
    third.start(INSTANCE)  # stale pidfile and socket are no obstacle
    assert third.status(INSTANCE) == "RUNNING"
    third.delete(INSTANCE)
    with pytest.raises(StatusUnavailable):
        third.status(INSTANCE)


@pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm here")
def test_kvm_missing_cpu_features_means_tcg(tmp_path: Path) -> None:
    """A nested host whose KVM lacks features of the default CPU model runs firmware but not
    Linux: the probe must not pick it (seen: every qemu test timing out on a silent console)."""
    fake = tmp_path / "qemu"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "qemu: warning: host doesn\'t support requested feature: CPUID.01H:ECX.pni" >&2\n'
        "exec sleep 30\n"
    )
    fake.chmod(0o755)
    accel, why = probe_kvm(str(fake))
    assert (accel, why) == ("tcg", "the host's KVM lacks a feature of the default CPU model")
    # decided on the warning, not by the guest's timing out
