"""The ``null`` compute driver: power state only, kept in a small file per instance.

Transitions take ``transition_seconds`` (default 1 s, 0 in tests), so pollers see STOPPING
before STOPPED just as with a real machine. The state file is written atomically; a missing
or unreadable file is a real failure the API reports as DescribeInstanceStatus.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from lightkeeper.compute.base import PowerState, StatusCorrupt, StatusUnavailable
from lightkeeper.domain.attachment import Attachment
from lightkeeper.durable import replace_text


class NullDriver:
    """ComputeDriver without machines: what the API needs of power state, and nothing more."""

    supervised = False

    def __init__(self, root: Path, transition_seconds: float = 1.0) -> None:
        self._root = root / "compute"
        self._root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.transition_seconds = transition_seconds
        """How long each transition takes; changeable while serving (control API timing)."""

    def _path(self, instance_id: str) -> Path:
        return self._root / f"{instance_id}.json"

    def _write(self, instance_id: str, state: PowerState) -> None:
        replace_text(self._path(instance_id), json.dumps({"power": state}))

    def create(self, instance_id: str, state: PowerState, disk: Attachment) -> None:
        self._write(instance_id, state)  # power state only: the disk is never opened

    def delete(self, instance_id: str) -> None:
        self._path(instance_id).unlink(missing_ok=True)

    def status(self, instance_id: str) -> PowerState:
        try:
            data = json.loads(self._path(instance_id).read_text())
        except FileNotFoundError:
            raise StatusUnavailable(f"no power record for {instance_id}") from None
        except (OSError, ValueError) as exc:
            raise StatusCorrupt(f"power record of {instance_id} unreadable: {exc}") from None
        power = data.get("power") if isinstance(data, dict) else None
        if power not in ("RUNNING", "STOPPED"):
            raise StatusCorrupt(f"power record of {instance_id} holds {power!r}")
        return power  # type: ignore[no-any-return]

    def _transition_to(self, instance_id: str, state: PowerState) -> None:
        self.status(instance_id)  # fail before waiting if the record is gone
        time.sleep(self.transition_seconds)
        self._write(instance_id, state)

    def start(self, instance_id: str) -> None:
        self._transition_to(instance_id, "RUNNING")

    def stop(self, instance_id: str, force: bool) -> None:
        self._transition_to(instance_id, "STOPPED")

    def reboot(self, instance_id: str) -> None:
        self._transition_to(instance_id, "STOPPED")
        self._transition_to(instance_id, "RUNNING")
