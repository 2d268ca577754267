"""The ``qemu`` compute driver: every running instance is a real ``qemu-system-x86_64``.

Layout under ``root/vms/<instance>/``: ``instance.json`` (disk path + format: the record
whose absence means StatusUnavailable), ``qemu.pid``, ``qmp.sock``, ``qga.sock`` (the guest
agent's virtio-serial port), ``console.log`` (the serial port; the previous boot's is kept as
``console.log.1``) and, only while a thaw is owed, ``frozen``.

Live snapshots are application-consistent when the guest runs the QEMU guest agent: its
fsfreeze (filesystems frozen, its fsfreeze hooks run so applications reach a consistent point)
is held around the snapshot. A guest without an agent, or one that fails to freeze, gets a
crash-consistent snapshot. The ``frozen`` record is written before a freeze is asked and
removed after the thaw, so a Lightkeeper killed in between leaves a thaw owed, and the next
look at the machine (``status``, the next snapshot) pays it: no guest stays frozen.

QEMU runs with ``-daemonize`` (its own session), so machines outlive the Lightkeeper server;
a new driver on the same root re-attaches through the pidfile and the QMP socket, and a
machine whose process is gone is simply STOPPED. A PID is only ever signalled after its
``/proc/<pid>/cmdline`` proves it is the QEMU this driver started for that instance (its
unique QMP socket path), so a recycled PID is never killed.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from lightkeeper.compute.base import ComputeError, PowerState, StatusCorrupt, StatusUnavailable
from lightkeeper.compute.guest_agent import GuestAgent, GuestAgentError
from lightkeeper.compute.qmp import QMPClient, QMPCommandError, QMPError
from lightkeeper.domain.attachment import Attachment
from lightkeeper.durable import replace_text

logger = logging.getLogger("lightkeeper.compute.qemu")

QEMU = "qemu-system-x86_64"
Accel = Literal["auto", "kvm", "tcg"]
_DISK_NODE = "disk0"  # root block node: blockdev-snapshot-internal-sync's ``device``
_DEAD_RUN_STATES = {"shutdown", "guest-panicked", "internal-error"}
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes including the NUL
_AGENT_CHARDEV = "qga0"
_AGENT_PORT = "org.qemu.guest_agent.0"  # the port name qemu-ga looks for
_AGENT_TIMEOUT = 2.0  # sync, thaw, status: the agent answers these at once
_FREEZE_TIMEOUT = 10.0  # the freeze runs the guest's hooks; Windows' VSS allows 10 s too
_UNPLUG_TIMEOUT = 15.0  # for the guest to release a data disk being hot-unplugged


class VMStartFailed(ComputeError):
    """QEMU refused to start (bad disk, missing kernel, locked image...)."""


class QMPFailed(ComputeError):
    """A running machine rejected a monitor command."""


def _data_names(disk_id: str) -> tuple[str, str]:
    """(block node, device id) of a data disk in its machine."""
    return f"data-{disk_id}", f"vd-{disk_id}"


def _opt(path: Path) -> str:
    """A path inside a QEMU ``key=value,...`` option: commas are doubled."""
    return str(path).replace(",", ",,")


@functools.cache
def detect_accel(qemu: str = QEMU) -> Literal["kvm", "tcg"]:
    """The accelerator ``accel="auto"`` runs with, probed once per process and logged."""
    accel, why = probe_kvm(qemu)
    logger.info("qemu accelerator: %s (%s)", accel, why)
    return accel


def probe_kvm(qemu: str = QEMU) -> tuple[Literal["kvm", "tcg"], str]:
    """KVM only if a KVM guest actually executes: on some hosts /dev/kvm opens but the vCPU
    spins forever (seen on nested sandboxes), so firmware is booted and must reach HLT. And
    only if the host gives the vCPU every feature of QEMU's default CPU model: a nested host
    that lacks some ("host doesn't support requested feature: CPUID.01H:ECX.pni") still runs
    the firmware, but a Linux guest then never prints a line (seen on a Firecracker host).
    Returns the choice and why it was made."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "no usable /dev/kvm"
    with tempfile.TemporaryDirectory(prefix="lk-kvm-probe-") as tmp:
        sock = Path(tmp) / "qmp.sock"
        stderr = Path(tmp) / "stderr"
        with stderr.open("wb") as err:
            proc = subprocess.Popen(
                [qemu, "-accel", "kvm", "-m", "32", "-nodefaults", "-no-user-config",
                 "-display", "none", "-qmp", f"unix:{sock},server=on,wait=off"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.1)
                if b"doesn't support requested feature" in stderr.read_bytes():
                    return "tcg", "the host's KVM lacks a feature of the default CPU model"
                with contextlib.suppress(QMPError):
                    with QMPClient(sock, timeout=1.0) as qmp:
                        regs = qmp.execute(
                            "human-monitor-command", {"command-line": "info registers"}
                        )
                    if isinstance(regs, str) and "HLT=1" in regs:  # SeaBIOS: no boot device
                        return "kvm", "a KVM guest ran its firmware to HLT"
            return "tcg", "a KVM guest did not reach HLT within 3 s"
        finally:
            proc.kill()
            proc.wait()


class QemuDriver:
    supervised = True  # guests power off, crash and get killed behind the driver's back

    def __init__(
        self,
        root: Path,
        transition_seconds: float = 0.0,
        *,
        kernel: Path | None = None,
        initrd: Path | None = None,
        append: str = "console=ttyS0 panic=-1",
        memory_mb: int = 256,
        soft_stop_timeout: float = 30.0,
        accel: Accel = "auto",
        qemu: str = QEMU,
    ) -> None:
        """``transition_seconds`` is accepted for make_driver symmetry and ignored: real
        machines take as long as they take. ``accel="auto"`` probes KVM once per process."""
        self._root = root / "vms"
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._kernel = kernel.resolve() if kernel is not None else None  # qemu runs elsewhere
        self._initrd = initrd.resolve() if initrd is not None else None
        self._append = append
        self._memory_mb = memory_mb
        self._soft_stop_timeout = soft_stop_timeout
        self._accel = accel
        self._qemu = qemu
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        if kernel is None and initrd is not None:
            raise ValueError("initrd given without kernel")

    # -- paths and records --------------------------------------------------------------------

    def _dir(self, instance_id: str) -> Path:
        if not instance_id or "/" in instance_id or instance_id.startswith("."):
            raise ValueError(f"bad instance id {instance_id!r}")
        return self._root / instance_id

    def _socket(self, instance_id: str, name: str = "qmp") -> Path:
        """Deterministic, so a restarted driver finds it; moved to the temp dir if the
        instance directory is too deep for a unix socket path."""
        path = self._dir(instance_id) / f"{name}.sock"
        if len(str(path)) <= _SOCKET_PATH_MAX:
            return path
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:20]
        return Path(tempfile.gettempdir()) / f"lk-{name}-{digest}.sock"

    def console_log(self, instance_id: str) -> Path:
        return self._dir(instance_id) / "console.log"

    def _record(self, instance_id: str) -> dict[str, Any]:
        path = self._dir(instance_id) / "instance.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise StatusUnavailable(f"no machine record for {instance_id}") from None
        except (OSError, ValueError) as exc:
            raise StatusCorrupt(f"machine record of {instance_id} unreadable: {exc}") from None
        if not (
            isinstance(data, dict)
            and isinstance(data.get("disk"), str)
            and isinstance(data.get("format"), str)
        ):
            raise StatusCorrupt(f"machine record of {instance_id} is malformed")
        return data

    @staticmethod
    def _disk_record(instance_id: str, disk: Attachment) -> dict[str, Any]:
        """What QEMU opens for ``disk``, as kept in ``instance.json``."""
        if disk.kind == "file":
            return {"disk": str(disk.path.resolve()), "format": disk.format}
        if disk.kind == "rbd" and disk.rbd is not None:  # QEMU's rbd driver, via librbd
            target = disk.rbd
            rbd = {"pool": target.pool, "image": target.image, "user": target.client}
            rbd |= {"namespace": target.namespace} if target.namespace else {}
            rbd |= {"conf": str(target.conf)} if target.conf else {}
            return {"disk": disk.spec, "format": "raw", "rbd": rbd}
        raise ComputeError(f"{instance_id}: cannot open a {disk.kind!r} disk")

    def _write_record(self, instance_id: str, record: dict[str, Any]) -> None:
        directory = self._dir(instance_id)
        directory.mkdir(mode=0o700, exist_ok=True)
        replace_text(directory / "instance.json", json.dumps(record))

    def _replace_text(self, instance_id: str, disk: Attachment) -> None:
        """The system disk's record; the data disks recorded before stay attached."""
        record = self._disk_record(instance_id, disk)
        try:
            record["data_disks"] = self._record(instance_id).get("data_disks", {})
        except (StatusUnavailable, StatusCorrupt):
            pass
        self._write_record(instance_id, record)

    @contextlib.contextmanager
    def _locked(self, instance_id: str) -> Iterator[None]:
        """One power operation per instance at a time: per thread here, per process via
        flock, so a second driver on the same root cannot boot a machine twice."""
        with self._locks_guard:
            lock = self._locks.setdefault(instance_id, threading.Lock())
        with lock:
            directory = self._dir(instance_id)
            directory.mkdir(mode=0o700, exist_ok=True)
            with (directory / "lock").open("a") as handle:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                yield

    # -- the process --------------------------------------------------------------------------

    def _pid(self, instance_id: str) -> int | None:
        """PID of this instance's live QEMU, or None (stale pidfiles and zombies included)."""
        try:
            pid = int((self._dir(instance_id) / "qemu.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        except OSError as exc:
            raise StatusCorrupt(f"pidfile of {instance_id} unreadable: {exc}") from None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")
        except OSError:
            return None  # gone
        if f"unix:{_opt(self._socket(instance_id))},".encode() not in b" ".join(cmdline):
            return None  # a zombie (empty cmdline) or a recycled PID
        return pid

    def _qmp(self, instance_id: str, command: str, arguments: dict[str, Any] | None = None) -> Any:
        try:
            with QMPClient(self._socket(instance_id)) as qmp:
                return qmp.execute(command, arguments)
        except QMPCommandError as exc:
            raise QMPFailed(f"{instance_id}: {exc}") from None
        except QMPError as exc:
            raise StatusCorrupt(f"monitor of {instance_id} unreachable: {exc}") from None

    def _wait_exit(self, instance_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._pid(instance_id) is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def _accel_for_run(self) -> str:
        return detect_accel(self._qemu) if self._accel == "auto" else self._accel

    @staticmethod
    def _blockdev(record: dict[str, Any], node: str) -> dict[str, Any]:
        if isinstance(record.get("rbd"), dict):  # a raw RBD image: the protocol node is it
            return {"driver": "rbd", "node-name": node, **record["rbd"]}
        return {
            "driver": record["format"],
            "node-name": node,
            "file": {"driver": "file", "filename": record["disk"]},
        }

    def _command(self, instance_id: str, record: dict[str, Any]) -> list[str]:
        directory = self._dir(instance_id)
        blockdev = self._blockdev(record, _DISK_NODE)
        command = [
            self._qemu,
            "-name", f"lightkeeper-{instance_id}",
            "-accel", self._accel_for_run(),
            "-m", str(self._memory_mb),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-chardev", f"file,id=console,path={_opt(directory / 'console.log')}",
            "-serial", "chardev:console",
            "-qmp", f"unix:{_opt(self._socket(instance_id))},server=on,wait=off",
            "-pidfile", str(directory / "qemu.pid"),
            "-daemonize",
            "-blockdev", json.dumps(blockdev),
            "-device", f"virtio-blk-pci,drive={_DISK_NODE},id=vda",
            "-chardev", f"socket,id={_AGENT_CHARDEV},server=on,wait=off,"
                        f"path={_opt(self._socket(instance_id, 'qga'))}",
            "-device", "virtio-serial-pci,id=vser0",
            "-device", f"virtserialport,chardev={_AGENT_CHARDEV},name={_AGENT_PORT}",
        ]  # fmt: skip
        for disk_id, data in sorted(record.get("data_disks", {}).items()):
            node, device = _data_names(disk_id)
            command += ["-blockdev", json.dumps(self._blockdev(data, node)),
                        "-device", f"virtio-blk-pci,drive={node},id={device}"]  # fmt: skip
        if self._kernel is not None:
            command += ["-kernel", str(self._kernel), "-append", self._append]
            if self._initrd is not None:
                command += ["-initrd", str(self._initrd)]
        return command

    def _start_locked(self, instance_id: str) -> None:
        record = self._record(instance_id)
        if self._pid(instance_id) is not None:
            return  # already running: start is idempotent
        directory = self._dir(instance_id)
        for name in ("qmp", "qga"):
            self._socket(instance_id, name).unlink(missing_ok=True)
        (directory / "qemu.pid").unlink(missing_ok=True)
        (directory / "frozen").unlink(missing_ok=True)  # a new boot is not frozen
        console = directory / "console.log"
        if console.exists():
            os.replace(console, directory / "console.log.1")
        try:
            result = subprocess.run(
                self._command(instance_id, record),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=directory,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise VMStartFailed(f"{instance_id}: cannot run {self._qemu}: {exc}") from None
        if result.returncode != 0:
            detail = result.stderr.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
            raise VMStartFailed(f"{instance_id}: qemu failed to start: {detail[0]}")
        if self._pid(instance_id) is None:
            raise VMStartFailed(f"{instance_id}: qemu exited right after starting")

    def _quit_locked(self, instance_id: str) -> None:
        pid = self._pid(instance_id)
        if pid is None:
            return
        with contextlib.suppress(ComputeError):
            self._qmp(instance_id, "quit")
        if not self._wait_exit(instance_id, 10.0):
            pid = self._pid(instance_id)
            if pid is not None:  # ours, checked just now: the last resort
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if not self._wait_exit(instance_id, 5.0):
                raise ComputeError(f"{instance_id}: qemu (pid {pid}) would not exit")

    # -- the ComputeDriver protocol -----------------------------------------------------------

    def create(self, instance_id: str, state: PowerState, disk: Attachment) -> None:
        with self._locked(instance_id):
            self._replace_text(instance_id, disk)
            if state == "RUNNING":
                self._start_locked(instance_id)
            else:
                self._quit_locked(instance_id)

    def delete(self, instance_id: str) -> None:
        directory = self._dir(instance_id)
        if not directory.exists():
            return
        with self._locked(instance_id):
            self._quit_locked(instance_id)
            for name in ("qmp", "qga"):
                self._socket(instance_id, name).unlink(missing_ok=True)
            shutil.rmtree(directory, ignore_errors=True)

    def status(self, instance_id: str) -> PowerState:
        self._record(instance_id)
        if (self._dir(instance_id) / "frozen").exists():
            self._pay_owed_thaw(instance_id)
        if self._pid(instance_id) is None:
            return "STOPPED"
        try:
            reply = self._qmp(instance_id, "query-status")
        except StatusCorrupt:
            if self._pid(instance_id) is None:
                return "STOPPED"  # exited while we asked
            raise
        run_state = reply.get("status") if isinstance(reply, dict) else None
        if not isinstance(run_state, str):
            raise StatusCorrupt(f"{instance_id}: query-status answered {reply!r}")
        # Paused, saving or in io-error the machine is still on; only a dead guest is not.
        return "STOPPED" if run_state in _DEAD_RUN_STATES else "RUNNING"

    def start(self, instance_id: str) -> None:
        with self._locked(instance_id):
            self._start_locked(instance_id)

    def stop(self, instance_id: str, force: bool) -> None:
        """Soft: ACPI power button, then ``quit`` after ``soft_stop_timeout``; hard: ``quit``."""
        with self._locked(instance_id):
            self._record(instance_id)
            if self._pid(instance_id) is None:
                return
            if not force:
                try:
                    self._qmp(instance_id, "system_powerdown")
                except StatusCorrupt:
                    if self._pid(instance_id) is None:
                        return
                    raise
                if self._wait_exit(instance_id, self._soft_stop_timeout):
                    return
                logger.warning(
                    "%s: still running %.0f s after the ACPI power button; quitting it",
                    instance_id,
                    self._soft_stop_timeout,
                )
            self._quit_locked(instance_id)

    def reboot(self, instance_id: str) -> None:
        """A hard reset (``system_reset``) of a running machine; a stopped one is started."""
        with self._locked(instance_id):
            self._record(instance_id)
            if self._pid(instance_id) is None:
                self._start_locked(instance_id)
            else:
                self._qmp(instance_id, "system_reset")

    # -- LiveSnapshotCompute ------------------------------------------------------------------

    def _node(self, instance_id: str, disk_id: str | None) -> str:
        """The block node of the instance's system disk, or of its data disk ``disk_id``."""
        if disk_id is not None and disk_id in self._record(instance_id).get("data_disks", {}):
            return _data_names(disk_id)[0]
        return _DISK_NODE

    def internal_snapshot(self, instance_id: str, tag: str, disk_id: str | None = None) -> bool:
        """QEMU drains in-flight I/O and snapshots the disk in place while the guest keeps
        running, so the guest sees no more than a short pause: crash-consistent, and
        application-consistent when the guest agent held the guest frozen around it."""
        self._record(instance_id)
        if self._pid(instance_id) is None:
            return False
        try:
            with self._quiesced(instance_id):
                self._qmp(
                    instance_id,
                    "blockdev-snapshot-internal-sync",
                    {"device": self._node(instance_id, disk_id), "name": tag},
                )
        except StatusCorrupt:
            if self._pid(instance_id) is None:
                return False
            raise
        return True

    def internal_snapshot_delete(
        self, instance_id: str, tag: str, disk_id: str | None = None
    ) -> bool:
        """Delete internal snapshot ``tag`` through the running VM (the image is locked to
        everyone else); False when the VM is not running."""
        self._record(instance_id)
        if self._pid(instance_id) is None:
            return False
        self._qmp(
            instance_id,
            "blockdev-snapshot-delete-internal-sync",
            {"device": self._node(instance_id, disk_id), "name": tag},
        )
        return True

    # -- DataDiskCompute ----------------------------------------------------------------------

    def attach_disk(self, instance_id: str, disk_id: str, disk: Attachment) -> None:
        """Recorded for every boot, and hot-plugged (``blockdev-add`` + ``device_add``) into a
        running machine; a disk already there is left as it is."""
        with self._locked(instance_id):
            record = self._record(instance_id)
            data = self._disk_record(instance_id, disk)
            record.setdefault("data_disks", {})[disk_id] = data
            self._write_record(instance_id, record)
            if self._pid(instance_id) is None:
                return
            node, device = _data_names(disk_id)
            if node not in self._block_nodes(instance_id):
                self._qmp(instance_id, "blockdev-add", self._blockdev(data, node))
            if device not in self._devices(instance_id):
                self._qmp(
                    instance_id,
                    "device_add",
                    {"driver": "virtio-blk-pci", "drive": node, "id": device},
                )

    def detach_disk(self, instance_id: str, disk_id: str) -> None:
        """Unplugged from a running machine (``device_del``, which the guest must accept,
        then ``blockdev-del``) before the record forgets it, so a guest that keeps the disk
        fails the detach instead of losing it silently."""
        with self._locked(instance_id):
            record = self._record(instance_id)
            node, device = _data_names(disk_id)
            if self._pid(instance_id) is not None:
                deadline = time.monotonic() + _UNPLUG_TIMEOUT
                if device in self._devices(instance_id):
                    self._qmp(instance_id, "device_del", {"id": device})
                    while device in self._devices(instance_id):
                        if time.monotonic() > deadline:
                            raise ComputeError(
                                f"{instance_id}: the guest did not release {disk_id}"
                            )
                        time.sleep(0.1)
                # The device leaves the QOM tree a moment before it lets go of its node
                # ("is in use": seen under load in CI), so the node's removal is retried.
                while node in self._block_nodes(instance_id):
                    try:
                        self._qmp(instance_id, "blockdev-del", {"node-name": node})
                    except QMPFailed as exc:
                        if "is in use" not in str(exc) or time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
            record.get("data_disks", {}).pop(disk_id, None)
            self._write_record(instance_id, record)

    def _block_nodes(self, instance_id: str) -> set[str]:
        nodes = self._qmp(instance_id, "query-named-block-nodes", {"flat": True})
        return {str(n.get("node-name")) for n in nodes or [] if isinstance(n, dict)}

    def _devices(self, instance_id: str) -> set[str]:
        found = self._qmp(instance_id, "qom-list", {"path": "/machine/peripheral"})
        return {str(p.get("name")) for p in found or [] if isinstance(p, dict)}

    # -- the guest agent ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _agent_lock(self, instance_id: str, wait: bool = True) -> Iterator[bool]:
        """One freeze window per guest, across threads and processes; yields False when
        ``wait`` is off and a freeze window is open (its owner will thaw)."""
        with (self._dir(instance_id) / "agent.lock").open("a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True

    def _agent_listening(self, instance_id: str) -> bool:
        """The guest has opened its agent port (QEMU's ``frontend-open``): asking a guest
        that runs no agent would only wait for a timeout."""
        try:
            chardevs = self._qmp(instance_id, "query-chardev")
        except ComputeError:
            return False
        return any(
            isinstance(chardev, dict)
            and chardev.get("label") == _AGENT_CHARDEV
            and chardev.get("frontend-open") is True
            for chardev in chardevs or []
        )

    @contextlib.contextmanager
    def _quiesced(self, instance_id: str) -> Iterator[bool]:
        """Hold the guest frozen through its agent for the body, if it runs one; yields
        whether it is frozen (False: the body's snapshot is crash-consistent only)."""
        with self._agent_lock(instance_id):
            if (self._dir(instance_id) / "frozen").exists():
                self._thaw(instance_id)  # owed by a process killed inside its window
            frozen = self._freeze(instance_id)
            try:
                yield frozen
            finally:
                if frozen:
                    self._thaw(instance_id)

    def _freeze(self, instance_id: str) -> bool:
        if not self._agent_listening(instance_id):
            return False
        replace_text(self._dir(instance_id) / "frozen", f"{time.time():.3f}\n")  # thaw owed
        try:
            with GuestAgent(self._socket(instance_id, "qga"), _AGENT_TIMEOUT) as agent:
                count = agent.execute("guest-fsfreeze-freeze", timeout=_FREEZE_TIMEOUT)
        except GuestAgentError as exc:
            logger.warning("%s: the guest agent did not freeze the guest (%s)", instance_id, exc)
            self._thaw(instance_id)  # it may have frozen part of the guest before failing
            return False
        logger.info("%s: guest agent froze the guest (%s filesystems)", instance_id, count)
        return True

    def _thaw(self, instance_id: str) -> bool:
        """Thaw the guest (a guest that is not frozen stays as it is); the owed-thaw record
        is removed only once the agent confirms."""
        try:
            with GuestAgent(self._socket(instance_id, "qga"), _AGENT_TIMEOUT) as agent:
                agent.execute("guest-fsfreeze-thaw")
        except GuestAgentError as exc:
            logger.warning("%s: cannot thaw the guest yet (%s)", instance_id, exc)
            return False
        (self._dir(instance_id) / "frozen").unlink(missing_ok=True)
        return True

    def _pay_owed_thaw(self, instance_id: str) -> None:
        """A freeze whose owner died: thaw the guest unless a live freeze window is open."""
        with self._agent_lock(instance_id, wait=False) as mine:
            if not mine:
                return
            if self._pid(instance_id) is None:  # a stopped guest is not frozen
                (self._dir(instance_id) / "frozen").unlink(missing_ok=True)
                return
            self._thaw(instance_id)

    def frozen(self, instance_id: str) -> bool:
        """The agent's own word on whether the guest is frozen (for operators and tests);
        False when it runs no agent."""
        if self._pid(instance_id) is None or not self._agent_listening(instance_id):
            return False
        try:
            with GuestAgent(self._socket(instance_id, "qga"), _AGENT_TIMEOUT) as agent:
                return bool(agent.execute("guest-fsfreeze-status") == "frozen")
        except GuestAgentError:
            return False

    def pid(self, instance_id: str) -> int | None:
        """The live QEMU's PID (for operators and tests), None when stopped."""
        return self._pid(instance_id)
