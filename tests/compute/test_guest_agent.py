"""Live snapshots through the QEMU guest agent: a guest that runs one is frozen around the
snapshot (its fsfreeze hook brings the application to a consistent point), one that runs
none is snapshotted crash-consistent, and a freeze whose owner was killed is thawed by the
next look at the machine, so no guest stays frozen."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from lightkeeper.compute.qemu import QemuDriver
from lightkeeper.domain.attachment import file_attachment
from tests.compute.conftest import console_ks, wait_console

INSTANCE = "lhins-agent001"


def snapshot_raw(disk: Path, tag: str, out: Path) -> Path:
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-U",
            "-l",
            f"snapshot.name={tag}",
            "-O",
            "raw",
            str(disk),
            str(out),
        ],
        check=True,
    )
    return out


def agent_up(log: Path) -> bool:
    return b"LKGUEST agent" in log.read_bytes() if log.exists() else False


def quiet_lines(log: Path) -> list[int]:
    return [int(k) for k in re.findall(rb"LKGUEST quiet k=(\d+)", log.read_bytes())]


def test_agent_freezes_the_guest_around_a_live_snapshot(
    drivers: Callable[[], QemuDriver], disk: Path, tmp_path: Path, records: ModuleType
) -> None:
    driver = drivers()
    driver.create(INSTANCE, "RUNNING", file_attachment(disk, "qcow2"))
    log = driver.console_log(INSTANCE)
    wait_console(log, lambda s: bool(s) and s[-1][0] >= 100)
    assert agent_up(log)

    for round_number in range(3):
        tag = f"app{round_number}"
        assert driver.internal_snapshot(INSTANCE, tag) is True
        raw = snapshot_raw(disk, tag, tmp_path / f"{tag}.raw")
        k, problems = records.parse(raw)
        assert problems == []
        # The writer stopped at record k and marked it: the snapshot was taken inside the
        # freeze, at the application's own consistent point, not at a random instant.
        assert records.quiesced(raw, k), f"round {round_number}: no quiesce marker after {k}"
        assert quiet_lines(log)[-1] == k
        assert driver.frozen(INSTANCE) is False  # thawed...
        wait_console(log, lambda s, k=k: s[-1][0] >= k + 60)  # ...and writing again


def test_guest_without_agent_is_snapshotted_crash_consistent(
    guest: tuple[Path, Path], disk: Path, tmp_path: Path, records: ModuleType
) -> None:
    kernel, initrd = guest
    driver = QemuDriver(
        tmp_path / "data",
        0,
        kernel=kernel,
        initrd=initrd,
        append="console=ttyS0 panic=-1 lk.agent=off",
    )
    try:
        driver.create(INSTANCE, "RUNNING", file_attachment(disk, "qcow2"))
        log = driver.console_log(INSTANCE)
        wait_console(log, lambda s: bool(s) and s[-1][0] >= 100)
        assert not agent_up(log)
        assert driver.internal_snapshot(INSTANCE, "crash") is True  # no wait for an agent
        raw = snapshot_raw(disk, "crash", tmp_path / "crash.raw")
        k, problems = records.parse(raw)
        assert problems == [] and k >= 100
        assert not records.quiesced(raw, k)
        assert quiet_lines(log) == []
    finally:
        driver.stop(INSTANCE, force=True)


def test_freeze_left_by_a_killed_process_is_thawed_by_the_next_look(
    drivers: Callable[[], QemuDriver], disk: Path, guest: tuple[Path, Path], tmp_path: Path
) -> None:
    driver = drivers()
    driver.create(INSTANCE, "RUNNING", file_attachment(disk, "qcow2"))
    log = driver.console_log(INSTANCE)
    wait_console(log, lambda s: bool(s) and s[-1][0] >= 100)
    kernel, initrd = guest
    # Another process opens a freeze window and is SIGKILLed inside it, as a server would be.
    victim = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from lightkeeper.compute.qemu import QemuDriver
        driver = QemuDriver(Path({str(tmp_path / "data")!r}), 0,
                            kernel=Path({str(kernel)!r}), initrd=Path({str(initrd)!r}))
        with driver._quiesced({INSTANCE!r}) as frozen:
            assert frozen
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    died = subprocess.run([sys.executable, "-c", victim], check=False)
    assert died.returncode == -9
    assert driver.frozen(INSTANCE) is True  # the guest is held: its writer waits
    held_at = quiet_lines(log)[-1]
    assert console_ks(log)[-1][0] <= held_at

    restarted = drivers()
    assert restarted.status(INSTANCE) == "RUNNING"  # the look that pays the owed thaw
    assert restarted.frozen(INSTANCE) is False
    wait_console(log, lambda s: s[-1][0] >= held_at + 60)
