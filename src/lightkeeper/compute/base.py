"""The compute-driver contract: power an instance on and off and say what state it is in.

Drivers are synchronous and may block for as long as the transition really takes; the job
worker calls them from its own threads.
"""

from __future__ import annotations

from typing import Literal, Protocol

PowerState = Literal["RUNNING", "STOPPED"]


class ComputeError(Exception):
    """Base of every failure a compute driver reports."""


class StatusUnavailable(ComputeError):
    """The driver has no record of the instance's power state (FailedOperation)."""


class StatusCorrupt(ComputeError):
    """The driver's record exists but cannot be read right now (InternalError, retryable)."""


class ComputeDriver(Protocol):
    def create(self, instance_id: str, state: PowerState) -> None: ...

    def delete(self, instance_id: str) -> None: ...

    def status(self, instance_id: str) -> PowerState: ...

    def start(self, instance_id: str) -> None: ...

    def stop(self, instance_id: str, force: bool) -> None: ...

    def reboot(self, instance_id: str) -> None: ...
