"""Waiting for a snapshot's operation as Terraform does (NORMAL, then LatestOperationState
SUCCESS), shown as a rich progress bar following ``Percent`` on a terminal and as plain lines
on change elsewhere."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

import click

from lightkeeper.cli.client_api import Api, sdk_error
from lightkeeper.cli.client_target import Failure

POLL_SECONDS = 0.5
"""Between two DescribeSnapshots of a wait: well under the 20 calls a second Tencent allows."""
DEFAULT_TIMEOUT = 600.0


def console() -> Any:
    """rich's console; in a pipe as wide as the table needs, so that no id is folded."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=1000)


def text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


# --- waiting ----------------------------------------------------------------------------


class _Lines:
    """Progress in a pipe or a file: one plain line per change, no control sequences."""

    def __init__(self, snapshot_id: str) -> None:
        self.snapshot_id = snapshot_id
        self.last: str | None = None

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def show(self, snap: dict[str, Any]) -> None:
        line = f"{self.snapshot_id}: {_status(snap)}"
        if line != self.last:
            click.echo(line)
            self.last = line


class _Bar:
    """Progress on a terminal: a rich bar following ``Percent``, the state beside it."""

    def __init__(self, snapshot_id: str) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console(),
        )
        self.task = self.progress.add_task(snapshot_id, total=100, status="")

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def show(self, snap: dict[str, Any]) -> None:
        percent = snap.get("Percent") or 0
        self.progress.update(self.task, completed=percent, status=_status(snap, percent=False))


def _status(snap: dict[str, Any], percent: bool = True) -> str:
    shown = f"{snap.get('SnapshotState')}"
    if percent:
        shown += f" {snap.get('Percent') or 0}%"
    operation = snap.get("LatestOperation")
    if operation:
        shown += f" ({operation} {text(snap.get('LatestOperationState'))})"
    return shown


def _poll(api: Api, snapshot_id: str) -> dict[str, Any] | None:
    """DescribeSnapshots, asked again when refused for the rate limit: a refused poll is no
    answer, and a wait must not fail for having polled."""
    while True:
        try:
            return api.snapshot(snapshot_id)
        except sdk_error() as exc:
            if exc.code != "RequestLimitExceeded":
                raise
            time.sleep(POLL_SECONDS)


def wait_snapshot(
    api: Api, snapshot_id: str, timeout: float, request_id: str | None = None
) -> dict[str, Any]:
    """Poll until the snapshot is NORMAL with its latest operation SUCCESS, as Terraform's
    provider waits; a FAILED operation, a snapshot gone (a failed creation removes it) or the
    timeout raise ``Failure``. With ``request_id`` (the call just made) an earlier operation's
    SUCCESS is not taken for this one's before the server has recorded it."""
    deadline = time.monotonic() + timeout
    display = _Bar(snapshot_id) if sys.stdout.isatty() else _Lines(snapshot_id)
    seen = False
    with display:
        while True:
            snap = _poll(api, snapshot_id)
            if snap is None:
                gone = "no longer exists (a failed creation removes it)" if seen else "not found"
                raise Failure(f"snapshot {snapshot_id} {gone}")
            seen = True
            display.show(snap)
            ours = request_id is None or snap.get("LatestOperationRequestId") == request_id
            operation_state = snap.get("LatestOperationState")
            if ours and operation_state == "FAILED":
                raise Failure(f"snapshot {snapshot_id}: {snap.get('LatestOperation')} FAILED")
            if ours and operation_state == "SUCCESS" and snap.get("SnapshotState") == "NORMAL":
                return snap
            if time.monotonic() >= deadline:
                raise Failure(f"snapshot {snapshot_id}: still {_status(snap)} after {timeout:g} s")
            time.sleep(POLL_SECONDS)
