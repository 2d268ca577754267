"""``lightkeeper admin instance|blueprint|disk|snapshot|job``: set up and inspect a world."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lightkeeper import storage
from lightkeeper.cli.options import config_options, emit, fail, open_or_fail, settings_from
from lightkeeper.lighthouse.admin import AdminError, AdminService
from lightkeeper.server import DEFAULT_BLUEPRINT
from lightkeeper.store import jobs
from lightkeeper.store.accounts import AccountError

T = TypeVar("T")
json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
node_option = click.option(
    "--node",
    help="The node to run it on, one reaching this data dir's storage pool [the UP node of "
    "the pool with the fewest instances; none UP: any node].",
)


def _admin(data_dir: Path | None) -> AdminService:
    ctx = click.get_current_context()
    services = open_or_fail(settings_from(ctx, data_dir=data_dir))
    return AdminService(services.world, services.accounts, services.settings.regions)


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except (AdminError, AccountError, storage.StorageError, ValueError) as exc:
        fail(str(exc) or type(exc).__name__, status=1)


def _show(value: Any, as_json: bool) -> None:
    emit(value, as_json, lambda: click.echo(_text(value)))


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return "\n".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return "\n\n".join(_text(v) for v in value) or "(none)"
    return str(value)


@click.group("instance")
def instance() -> None:
    """Instances and their system disks."""


@instance.command("create")
@click.option("--account", required=True, help="Owning account name.")
@click.option("--region", required=True)
@click.option("--zone")
@click.option("--name")
@click.option("--disk-size", type=int, default=40, show_default=True, help="System disk, GB.")
@click.option(
    "--bundle-type",
    type=click.Choice(["GENERAL_BUNDLE", "STORAGE_BUNDLE"]),
    default="GENERAL_BUNDLE",
    show_default=True,
)
@click.option(
    "--state", type=click.Choice(["RUNNING", "STOPPED", "PENDING", "SHUTDOWN"]), default="RUNNING"
)
@click.option("--blueprint", default=DEFAULT_BLUEPRINT, show_default=True)
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE, repeatable.")
@node_option
@config_options
@json_flag
def instance_create(
    account: str,
    region: str,
    zone: str | None,
    name: str | None,
    disk_size: int,
    bundle_type: str,
    state: str,
    blueprint: str,
    tags: tuple[str, ...],
    node: str | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Create an instance (and its sparse system disk) in an account."""
    parsed = dict(t.split("=", 1) for t in tags if "=" in t)
    if len(parsed) != len(tags):
        fail("--tag takes KEY=VALUE")
    admin = _admin(data_dir)
    created = _run(
        lambda: admin.create_instance(
            account,
            region,
            zone=zone,
            name=name,
            disk_size_gb=disk_size,
            bundle_type=bundle_type,
            state=state,
            blueprint_id=blueprint,
            tags=parsed,
            node=node,
        )
    )
    _show(created, as_json)


@instance.command("import")
@click.option("--account", required=True, help="Owning account name.")
@click.option("--region", required=True)
@click.option(
    "--disk",
    "disk_image",
    type=click.Path(path_type=Path),
    required=True,
    help="An existing VM disk image (raw, or qcow2 with --storage qcow2); copied.",
)
@click.option("--zone")
@click.option("--name")
@click.option("--state", type=click.Choice(["RUNNING", "STOPPED"]), default="STOPPED")
@click.option("--blueprint", default=DEFAULT_BLUEPRINT, show_default=True)
@node_option
@config_options
@json_flag
def instance_import(
    account: str,
    region: str,
    disk_image: Path,
    zone: str | None,
    name: str | None,
    state: str,
    blueprint: str,
    node: str | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Create an instance whose system disk is a copy of an existing VM disk image."""
    admin = _admin(data_dir)
    imported = _run(
        lambda: admin.import_instance(
            account,
            region,
            disk_image,
            zone=zone,
            name=name,
            state=state,
            blueprint_id=blueprint,
            node=node,
        )
    )
    _show(imported, as_json)


@instance.command("delete")
@click.argument("instance_id")
@config_options
@json_flag
def instance_delete(instance_id: str, data_dir: Path | None, as_json: bool) -> None:
    """Delete an instance, its disk and all its snapshots."""
    removed = _run(lambda: _admin(data_dir).delete_instance(instance_id))
    _show({"InstanceId": instance_id, "DeletedSnapshotIds": removed}, as_json)


@instance.command("resize-disk")
@click.argument("instance_id")
@click.option("--size", type=int, required=True, help="New system disk size, GB (grow only).")
@config_options
@json_flag
def instance_resize(instance_id: str, size: int, data_dir: Path | None, as_json: bool) -> None:
    """Grow the system disk (snapshots taken before then no longer fit: DiskSizeNotMatch)."""
    _show(_run(lambda: _admin(data_dir).resize_disk(instance_id, size)), as_json)


@instance.command("restrict")
@click.argument("instance_id")
@click.option("--lift", is_flag=True, help="Remove the restriction instead.")
@config_options
@json_flag
def instance_restrict(instance_id: str, lift: bool, data_dir: Path | None, as_json: bool) -> None:
    """Mark an instance restricted: creating snapshots is then denied."""
    _show(_run(lambda: _admin(data_dir).restrict(instance_id, not lift)), as_json)


@instance.command("move")
@click.argument("instance_id")
@click.option("--node", required=True, help="The node to place it on (admin node list).")
@config_options
@json_flag
def instance_move(instance_id: str, node: str, data_dir: Path | None, as_json: bool) -> None:
    """Place a STOPPED instance on another node of its disk's shared pool (Ceph)."""
    _show(_run(lambda: _admin(data_dir).move_instance(instance_id, node)), as_json)


@instance.command("set-state")
@click.argument("instance_id")
@click.option(
    "--state", type=click.Choice(["RUNNING", "STOPPED", "PENDING", "SHUTDOWN"]), required=True
)
@config_options
@json_flag
def instance_set_state(instance_id: str, state: str, data_dir: Path | None, as_json: bool) -> None:
    """Put an idle instance into STATE (e.g. SHUTDOWN after it was snapshotted)."""
    _show(_run(lambda: _admin(data_dir).set_state(instance_id, state)), as_json)


@instance.command("show")
@click.argument("instance_id")
@config_options
@json_flag
def instance_show(instance_id: str, data_dir: Path | None, as_json: bool) -> None:
    """Show an instance as DescribeInstances would."""
    _show(_run(lambda: _admin(data_dir).describe_instance(instance_id)), as_json)


@click.group("blueprint")
def blueprint() -> None:
    """Blueprints (images) that instances are created from."""


@blueprint.command("create")
@click.option("--name", required=True)
@click.option("--os-name", default="Custom Linux 64bit", show_default=True)
@click.option("--platform", default="OTHER_LINUX", show_default=True)
@click.option("--platform-type", type=click.Choice(["LINUX_UNIX", "WINDOWS"]), default="LINUX_UNIX")
@click.option("--image", type=click.Path(path_type=Path), help="Base image copied into new disks.")
@config_options
@json_flag
def blueprint_create(
    name: str,
    os_name: str,
    platform: str,
    platform_type: str,
    image: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Register a blueprint."""
    admin = _admin(data_dir)
    _show(
        _run(lambda: admin.create_blueprint(name, os_name, platform, platform_type, image)), as_json
    )


@blueprint.command("list")
@config_options
@json_flag
def blueprint_list(data_dir: Path | None, as_json: bool) -> None:
    """List blueprints."""
    _show(_run(lambda: _admin(data_dir).list_blueprints()), as_json)


@blueprint.command("delete")
@click.argument("blueprint_id")
@config_options
def blueprint_delete(blueprint_id: str, data_dir: Path | None) -> None:
    """Delete a blueprint (instances made from it can then no longer be snapshotted)."""
    _run(lambda: _admin(data_dir).delete_blueprint(blueprint_id))
    click.echo(f"{blueprint_id}: deleted")


@click.group("disk")
def disk() -> None:
    """Read and write a disk: name it by its instance's id or by its own (lhdisk-...)."""


@disk.command("write")
@click.argument("disk_ref", metavar="INSTANCE_OR_DISK_ID")
@click.option("--offset", type=int, default=0, show_default=True)
@config_options
def disk_write(disk_ref: str, offset: int, data_dir: Path | None) -> None:
    """Write the bytes read from stdin at OFFSET."""
    data = sys.stdin.buffer.read()
    _run(lambda: _admin(data_dir).write_disk(disk_ref, offset, data))
    click.echo(f"wrote {len(data)} bytes at {offset}", err=True)


@disk.command("read")
@click.argument("disk_ref", metavar="INSTANCE_OR_DISK_ID")
@click.option("--offset", type=int, default=0, show_default=True)
@click.option("--length", type=int, required=True)
@config_options
def disk_read(disk_ref: str, offset: int, length: int, data_dir: Path | None) -> None:
    """Write LENGTH bytes from OFFSET to stdout."""
    data = _run(lambda: _admin(data_dir).read_disk(disk_ref, offset, length))
    sys.stdout.buffer.write(data)


@disk.command("sha256")
@click.argument("disk_ref", metavar="INSTANCE_OR_DISK_ID")
@config_options
@json_flag
def disk_sha256(disk_ref: str, data_dir: Path | None, as_json: bool) -> None:
    """sha256 of the whole disk, as sha256sum of its bytes would say. Holes are not read,
    but sha256 must still digest their zeros: about half a second per GB of disk size."""
    _disk_digest(disk_ref, data_dir, as_json, "Sha256", AdminService.disk_sha256)


@disk.command("checksum")
@click.argument("disk_ref", metavar="INSTANCE_OR_DISK_ID")
@config_options
@json_flag
def disk_checksum(disk_ref: str, data_dir: Path | None, as_json: bool) -> None:
    """The disk's block checksum (b1m-sha256:...): what a snapshot taken now would record
    as its Checksum (admin snapshot sha256 shows it), so after a rollback the disk's equals
    the snapshot's. It costs the data, not the disk size: holes are not hashed."""
    _disk_digest(disk_ref, data_dir, as_json, "Checksum", AdminService.disk_checksum)


def _disk_digest(
    disk_ref: str,
    data_dir: Path | None,
    as_json: bool,
    field: str,
    digest_of: Callable[[AdminService, str], str],
) -> None:
    admin = _admin(data_dir)
    found = _run(lambda: admin.find_disk(disk_ref))
    digest = _run(lambda: digest_of(admin, disk_ref))
    value = {"DiskId": found.disk_id, "InstanceId": found.instance_id, field: digest}
    emit(value, as_json, lambda: click.echo(digest))


@click.group("snapshot")
def snapshot() -> None:
    """Inspect snapshot data."""


@snapshot.command("sha256")
@click.argument("snapshot_id")
@config_options
@json_flag
def snapshot_sha256(snapshot_id: str, data_dir: Path | None, as_json: bool) -> None:
    """sha256 of a snapshot's (or a disk backup's) data, and whether it matches the recorded
    checksum."""
    result = _run(lambda: _admin(data_dir).snapshot_sha256(snapshot_id))
    emit(result, as_json, lambda: click.echo(result["Sha256"]))


@snapshot.command("checksum")
@click.argument("snapshot_id")
@config_options
@json_flag
def snapshot_checksum(snapshot_id: str, data_dir: Path | None, as_json: bool) -> None:
    """The block checksum of a snapshot's (or a disk backup's) data as stored now, next to
    the one recorded when it was taken: equal to ``disk checksum`` of the disk it was taken
    of, or rolled back to. Holes are not hashed."""
    result = _run(lambda: _admin(data_dir).snapshot_checksum(snapshot_id))
    emit(result, as_json, lambda: click.echo(result["Actual"]))


@snapshot.command("verify")
@click.argument("snapshot_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every NORMAL snapshot of this data dir's pool.")
@config_options
@json_flag
def snapshot_verify(
    snapshot_ids: tuple[str, ...], every: bool, data_dir: Path | None, as_json: bool
) -> None:
    """Read snapshots back whole and compare them with their checksums, as the scrubber
    does. A mismatch marks the snapshot corrupt (ApplyInstanceSnapshot then refuses it).
    Exit status 1 when any is corrupt."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    if bool(snapshot_ids) == every:
        fail("name snapshot ids, or --all (not both)")
    admin = _admin(data_dir)
    ids = list(snapshot_ids) or _run(admin.verifiable_snapshots)
    for snapshot_id in snapshot_ids:  # every name checked before anything is read
        _run(lambda: admin.check_verifiable(snapshot_id))  # noqa: B023
    results = []
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        console=Console(stderr=True),
        disable=as_json,
    )
    with bar:
        for snapshot_id in ids:
            task = bar.add_task(snapshot_id, total=100)

            def shown(percent: int, task: Any = task) -> None:
                bar.update(task, completed=percent)

            verdict = _run(lambda: admin.verify_snapshot(snapshot_id, shown))  # noqa: B023
            bar.update(task, completed=100, description=f"{snapshot_id} {verdict.result}")
            results.append({"SnapshotId": snapshot_id, "Result": verdict.result})
    text = "\n".join(f"{r['SnapshotId']} {r['Result']}" for r in results) or "(none)"
    emit(results, as_json, lambda: click.echo(text))
    if any(r["Result"] == "CORRUPT" for r in results):
        sys.exit(1)


@click.group("job")
def job() -> None:
    """The durable operation history."""


@job.command("list")
@click.option("--limit", type=int, default=50, show_default=True)
@config_options
@json_flag
def job_list(limit: int, data_dir: Path | None, as_json: bool) -> None:
    """Recent jobs, newest first, with why any failed."""
    admin = _admin(data_dir)
    with admin.world.read() as conn:
        rows = jobs.history(conn, limit)
    _show(rows, as_json)


COMMANDS = (instance, blueprint, disk, snapshot, job)
