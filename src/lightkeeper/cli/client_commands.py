"""``lightkeeper instances|snapshots|snapshot|wait``: a CLI for humans over the official SDK.

These commands are clients, not part of the server: they speak API 3.0 through
``tencentcloud-sdk-python`` exactly as any other program would, so they work the same against
a Lightkeeper server (``--endpoint http://127.0.0.1:8080``) and against the real Tencent Cloud
(no endpoint: the SDK's own, ``lighthouse.tencentcloudapi.com`` over HTTPS).

Settings come from flags, then environment variables (``LIGHTKEEPER_ENDPOINT`` and the SDK's
``TENCENTCLOUD_SECRET_ID``/``_SECRET_KEY``/``_REGION``), then tccli's profile files
(``~/.tccli/<profile>.configure`` and ``.credential``), so an existing tccli setup just works.

The SDK and rich are imported inside functions: ``lightkeeper admin`` and ``serve`` start
without paying for them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from lightkeeper.cli.client_api import Api, connection_options
from lightkeeper.cli.client_progress import DEFAULT_TIMEOUT, console, text, wait_snapshot
from lightkeeper.cli.client_target import Failure

# --- output -----------------------------------------------------------------------------


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column.endswith("ID") or column == "State")
    for row in rows:
        table.add_row(*row)
    console().print(table)


def _json(items: list[dict[str, Any]]) -> None:
    click.echo(json.dumps(items, ensure_ascii=False, indent=2))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")


timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds to wait at most.",
)
wait_option = click.option(
    "--wait", is_flag=True, help="Wait until the snapshot is NORMAL and the operation SUCCESS."
)
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


@click.command()
@connection_options
@json_option
def instances(api: Api, as_json: bool) -> None:
    """List the instances (DescribeInstances), on Lightkeeper or the real Tencent Cloud."""
    found = api.instances()
    if as_json:
        return _json(found)
    rows = [
        [
            text(i.get("InstanceId")),
            text(i.get("InstanceName")),
            text(i.get("InstanceState")),
            text((i.get("SystemDisk") or {}).get("DiskId")),
            text(i.get("BlueprintId")),
            text(i.get("CreatedTime")),
        ]
        for i in found
    ]
    columns = ["Instance ID", "Name", "State", "Disk ID", "Blueprint", "Created"]
    _table(f"Instances in {api.target.region}", columns, rows)


@click.command()
@connection_options
@click.option("--instance", "instance_id", help="Only the snapshots of this instance.")
@json_option
def snapshots(api: Api, instance_id: str | None, as_json: bool) -> None:
    """List snapshots (DescribeSnapshots, filter instance-id), on Lightkeeper or Tencent Cloud."""
    found = api.snapshots(instance_id)
    if as_json:
        return _json(found)
    # A snapshot names its disk, not its instance: the instances say whose disk that is.
    owners = {}
    if instance_id is None and found:
        owners = {
            (i.get("SystemDisk") or {}).get("DiskId"): i.get("InstanceId") for i in api.instances()
        }
    rows = [
        [
            text(s.get("SnapshotId")),
            text(s.get("SnapshotName")),
            text(instance_id or owners.get(s.get("DiskId"))),
            text(s.get("SnapshotState")),
            f"{s.get('Percent') or 0}%",
            f"{text(s.get('LatestOperation'))} {text(s.get('LatestOperationState'))}",
            text(s.get("CreatedTime")),
        ]
        for s in found
    ]
    columns = [
        "Snapshot ID",
        "Name",
        "Instance ID",
        "State",
        "Percent",
        "Latest operation",
        "Created",
    ]
    _table(f"Snapshots in {api.target.region}", columns, rows)


@click.command()
@connection_options
@click.argument("snapshot_id", metavar="SNAPSHOT")
@timeout_option
def wait(api: Api, snapshot_id: str, timeout: float) -> None:
    """Wait for SNAPSHOT: exit 0 once NORMAL with its latest operation SUCCESS, non-zero when
    that operation FAILED, the snapshot is gone or the timeout passes."""
    wait_snapshot(api, snapshot_id, timeout)


@click.group()
def snapshot() -> None:
    """Create, roll back to and delete snapshots (Lightkeeper or the real Tencent Cloud)."""


def _confirm(question: str, why: str) -> None:
    """click's confirmation, or a refusal when nobody can answer it: a script that forgot
    --yes must not wait on a prompt, nor go ahead."""
    if not sys.stdin.isatty():
        raise Failure(f"{why}; stdin is not a terminal, so pass --yes to go ahead")
    click.confirm(question, abort=True)


@snapshot.command()
@connection_options
@click.argument("instance_id", metavar="INSTANCE")
@click.option("--name", help="Snapshot name [the server's default].")
@wait_option
@timeout_option
def create(api: Api, instance_id: str, name: str | None, wait: bool, timeout: float) -> None:
    """Snapshot INSTANCE's system disk (CreateInstanceSnapshot); prints the new SnapshotId."""
    snapshot_id, request_id = api.create(instance_id, name)
    click.echo(f"{snapshot_id}: creating from {instance_id} (RequestId {request_id})")
    if wait:
        wait_snapshot(api, snapshot_id, timeout, request_id)


@snapshot.command()
@connection_options
@click.argument("snapshot_id", metavar="SNAPSHOT")
@click.option("--instance", "instance_id", required=True, help="The instance to roll back.")
@wait_option
@timeout_option
@yes_option
def apply(
    api: Api, snapshot_id: str, instance_id: str, wait: bool, timeout: float, yes: bool
) -> None:
    """Roll the --instance back to SNAPSHOT (ApplyInstanceSnapshot). A RUNNING instance is
    force-stopped by the rollback, hence the confirmation (--yes skips it)."""
    (found,) = api.instances([instance_id])
    if found.get("InstanceState") == "RUNNING" and not yes:
        _confirm(
            f"{instance_id} is RUNNING: rolling back to {snapshot_id} force-stops it. Go on?",
            f"{instance_id} is RUNNING and the rollback would force-stop it",
        )
    request_id = api.apply(snapshot_id, instance_id)
    click.echo(f"{snapshot_id}: rolling back {instance_id} (RequestId {request_id})")
    if wait:
        wait_snapshot(api, snapshot_id, timeout, request_id)


@snapshot.command()
@connection_options
@click.argument("snapshot_ids", metavar="SNAPSHOT...", nargs=-1, required=True)
@yes_option
def delete(api: Api, snapshot_ids: tuple[str, ...], yes: bool) -> None:
    """Delete snapshots for good (DeleteSnapshots): asks first unless --yes."""
    if not yes:
        listed = ", ".join(snapshot_ids)
        _confirm(f"Delete {listed} for good?", f"deleting {listed} cannot be undone")
    request_id = api.delete(list(snapshot_ids))
    for snapshot_id in snapshot_ids:
        click.echo(f"{snapshot_id}: deleted (RequestId {request_id})")
