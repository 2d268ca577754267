"""The compute-driver contract: power an instance on and off and say what state it is in.

Drivers are synchronous and may block for as long as the transition really takes; the job
worker calls them from its own threads.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from lightkeeper.domain.attachment import Attachment

PowerState = Literal["RUNNING", "STOPPED"]


class ComputeError(Exception):
    """Base of every failure a compute driver reports."""


class StatusUnavailable(ComputeError):
    """The driver has no record of the instance's power state (FailedOperation)."""


class StatusCorrupt(ComputeError):
    """The driver's record exists but cannot be read right now (InternalError, retryable)."""


class ComputeDriver(Protocol):
    """Machines, one per instance, that boot their system disk and report their power state.

    A driver gets the disk as the storage driver's ``Attachment`` (what to open, not where a
    file is), so it never learns which storage driver made it. tests/compute/test_contract.py
    is what every driver must pass.
    """

    supervised: bool
    """True when machines can change state behind our back (crash, guest shutdown), so the
    server must watch them; the null driver's state only changes through the driver."""

    def create(self, instance_id: str, state: PowerState, disk: Attachment) -> None:
        """Register (or re-register) an instance booting ``disk``, and bring its machine to
        ``state``. A disk kind the driver cannot open is a ComputeError."""
        ...

    def delete(self, instance_id: str) -> None: ...

    def status(self, instance_id: str) -> PowerState: ...

    def start(self, instance_id: str) -> None: ...

    def stop(self, instance_id: str, force: bool) -> None: ...

    def reboot(self, instance_id: str) -> None: ...


@runtime_checkable
class DataDiskCompute(Protocol):
    """Optional: a driver whose machines take data disks besides their system disk."""

    def attach_disk(self, instance_id: str, disk_id: str, disk: Attachment) -> None:
        """Give the instance's machine ``disk`` (now if it runs, at every boot from now on);
        idempotent."""
        ...

    def detach_disk(self, instance_id: str, disk_id: str) -> None:
        """Take the disk away from the machine; idempotent (an unknown disk is no error)."""
        ...


@runtime_checkable
class LiveSnapshotCompute(Protocol):
    """Optional: a driver whose running machines can snapshot their own disk."""

    def internal_snapshot(self, instance_id: str, tag: str, disk_id: str | None = None) -> bool:
        """If the instance's machine is running, have it take internal snapshot ``tag`` of
        its system disk (or of its data disk ``disk_id``) while the guest keeps running
        (crash-consistent) and return True; return False when it is not running (the caller
        then snapshots the disk offline)."""
        ...

    def internal_snapshot_delete(
        self, instance_id: str, tag: str, disk_id: str | None = None
    ) -> bool:
        """Delete internal snapshot ``tag`` (of data disk ``disk_id``, if given) through the
        running machine; False when it is not running (the caller then deletes it offline)."""
        ...
