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

import functools
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import click

POLL_SECONDS = 0.5
"""Between two DescribeSnapshots of a wait: well under the 20 calls a second Tencent allows."""
DEFAULT_TIMEOUT = 600.0
SDK_ENDPOINT = "lighthouse.tencentcloudapi.com"
PAGE = 100  # the largest Limit DescribeInstances and DescribeSnapshots accept


class Failure(Exception):
    """A reason to stop with one ``Error:`` line and a non-zero status, never a traceback."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _fail(message: str, status: int = 1) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(status)


# --- where to connect -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Everything the SDK client needs; ``endpoint`` None means the SDK's default."""

    endpoint: str | None
    protocol: str
    secret_id: str
    secret_key: str
    token: str | None
    region: str
    language: str

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.endpoint or SDK_ENDPOINT}"


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """``http://host:port`` -> (``http``, ``host:port``): the SDK takes the scheme apart, as
    ``HttpProfile(protocol=...)``; a bare host means HTTPS, the SDK's default."""
    match = re.fullmatch(r"(?:(https?)://)?([^/]+)/?", endpoint.strip(), re.IGNORECASE)
    if match is None:
        raise Failure(
            f"bad endpoint {endpoint!r}: expected HOST[:PORT] or http(s)://HOST[:PORT]", 2
        )
    return (match.group(1) or "https").lower(), match.group(2)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise Failure(f"cannot read {path}: {exc}", 2) from exc
    if not isinstance(data, dict):
        raise Failure(f"{path} is not a JSON object", 2)
    return data


def tccli_profile(name: str, explicit: bool) -> dict[str, str]:
    """What tccli's own files say (its ``configure`` command writes them; same keys here):
    ``<name>.configure`` holds ``_sys_param.region``/``language`` and ``lighthouse.endpoint``,
    ``<name>.credential`` holds ``secretId``/``secretKey``/``token``. A profile named with
    ``--profile`` must exist; the implicit ``default`` one may not."""
    folder = Path.home() / ".tccli"
    configure = _read_json(folder / f"{name}.configure")
    credential = _read_json(folder / f"{name}.credential")
    if explicit and not configure and not credential:
        raise Failure(f"no tccli profile {name!r} in {folder} ({name}.configure/.credential)", 2)
    sys_param = configure.get("_sys_param")
    sys_param = sys_param if isinstance(sys_param, dict) else {}
    service = configure.get("lighthouse")
    service = service if isinstance(service, dict) else {}
    found = {
        "endpoint": service.get("endpoint"),
        "region": sys_param.get("region"),
        "language": sys_param.get("language"),
        "secret_id": credential.get("secretId"),
        "secret_key": credential.get("secretKey"),
        "token": credential.get("token"),
    }
    return {k: str(v) for k, v in found.items() if v}


def resolve_target(
    endpoint: str | None,
    secret_id: str | None,
    secret_key: str | None,
    region: str | None,
    profile: str | None,
    language: str | None,
) -> Target:
    """Flags and variables (already merged by click) over the tccli profile. The profile's
    session token goes only with the profile's own keys, never with keys given otherwise."""
    given = {
        "endpoint": endpoint,
        "secret_id": secret_id,
        "secret_key": secret_key,
        "region": region,
        "language": language,
    }
    values = {k: v for k, v in given.items() if v}
    missing_any = len(values) < len(given)
    if missing_any or profile:
        found = tccli_profile(profile or "default", explicit=bool(profile))
        if "secret_id" in values or "secret_key" in values:
            found.pop("token", None)
        values = {**found, **values}
    for key, flag, variable in (
        ("secret_id", "--secret-id", "TENCENTCLOUD_SECRET_ID"),
        ("secret_key", "--secret-key", "TENCENTCLOUD_SECRET_KEY"),
        ("region", "--region", "TENCENTCLOUD_REGION"),
    ):
        if key not in values:
            raise Failure(
                f"no {key.replace('_', ' ')}: give {flag}, set {variable} or run `tccli configure`",
                2,
            )
    language = values.get("language", "en-US")
    if language not in ("en-US", "zh-CN"):
        raise Failure(f"language {language!r}: expected en-US or zh-CN", 2)
    protocol, host = split_endpoint(values["endpoint"]) if "endpoint" in values else ("https", None)
    return Target(
        host,
        protocol,
        values["secret_id"],
        values["secret_key"],
        values.get("token"),
        values["region"],
        language,
    )


# --- the API ----------------------------------------------------------------------------


class Api:
    """The few Lighthouse calls these commands make, through the official SDK client."""

    def __init__(self, target: Target) -> None:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.lighthouse.v20200324 import lighthouse_client, models

        self.target = target
        self.models: Any = models
        http = HttpProfile(protocol=target.protocol, endpoint=target.endpoint, reqTimeout=30)
        profile = ClientProfile(httpProfile=http, language=target.language)
        cred = credential.Credential(target.secret_id, target.secret_key, target.token)
        self.client: Any = lighthouse_client.LighthouseClient(cred, target.region, profile)

    def _request(self, name: str, **fields: Any) -> Any:
        request = getattr(self.models, f"{name}Request")()
        for key, value in fields.items():
            setattr(request, key, value)
        return request

    def _pages(self, action: str, set_name: str, **fields: Any) -> list[dict[str, Any]]:
        """Every item of a paged Describe call, as plain JSON (what ``--json`` prints)."""
        items: list[dict[str, Any]] = []
        while True:
            request = self._request(action, Offset=len(items), Limit=PAGE, **fields)
            page = json.loads(getattr(self.client, action)(request).to_json_string())
            items += page.get(set_name) or []
            if not page.get(set_name) or len(items) >= int(page.get("TotalCount") or 0):
                return items

    def instances(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        fields = {"InstanceIds": ids} if ids else {}
        return self._pages("DescribeInstances", "InstanceSet", **fields)

    def snapshots(self, instance_id: str | None = None) -> list[dict[str, Any]]:
        fields: dict[str, Any] = {}
        if instance_id:
            fields["Filters"] = [self._filter("instance-id", instance_id)]
        return self._pages("DescribeSnapshots", "SnapshotSet", **fields)

    def _filter(self, name: str, value: str) -> Any:
        flt = self.models.Filter()
        flt.Name, flt.Values = name, [value]
        return flt

    def snapshot(self, snapshot_id: str) -> dict[str, Any] | None:
        """One snapshot, None when it does not exist (any more)."""
        request = self._request("DescribeSnapshots", SnapshotIds=[snapshot_id])
        found = json.loads(self.client.DescribeSnapshots(request).to_json_string())["SnapshotSet"]
        return dict(found[0]) if found else None

    def create(self, instance_id: str, name: str | None) -> tuple[str, str]:
        """(SnapshotId, RequestId) of a new CreateInstanceSnapshot."""
        request = self._request("CreateInstanceSnapshot", InstanceId=instance_id)
        if name:
            request.SnapshotName = name
        response = self.client.CreateInstanceSnapshot(request)
        return str(response.SnapshotId), str(response.RequestId)

    def apply(self, snapshot_id: str, instance_id: str) -> str:
        request = self._request(
            "ApplyInstanceSnapshot", InstanceId=instance_id, SnapshotId=snapshot_id
        )
        return str(self.client.ApplyInstanceSnapshot(request).RequestId)

    def delete(self, snapshot_ids: list[str]) -> str:
        request = self._request("DeleteSnapshots", SnapshotIds=snapshot_ids)
        return str(self.client.DeleteSnapshots(request).RequestId)


def _network_reason(message: str) -> str:
    """requests' long ``HTTPConnectionPool(...): Max retries exceeded ...`` text, cut down to
    its cause (``[Errno 111] Connection refused``) when it has one. A TLS failure is most
    often HTTPS spoken to a plain-HTTP server, such as Lightkeeper without a proxy in front."""
    found = re.search(r"\[Errno -?\d+\][^'\")]*", message)
    if found:
        return found.group(0).strip()
    tls = re.search(r"\[SSL: [^]]+\][^'\")(]*", message)
    if tls:
        return f"{tls.group(0).strip()} (a plain-HTTP server? write the endpoint as http://...)"
    return message


def sdk_error() -> Any:
    """The SDK's exception class, imported only when a command runs."""
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    return TencentCloudSDKException


@contextmanager
def reporting(target: Target | None) -> Iterator[None]:
    """SDK errors and ``Failure`` as one ``Error:`` line on stderr and status 1."""
    try:
        yield
    except Failure as exc:
        _fail(str(exc), exc.status)
    except sdk_error() as exc:
        if exc.code == "ClientNetworkError":
            where = target.url if target else "the endpoint"
            _fail(f"cannot reach {where}: {_network_reason(str(exc.message))}")
        # One line even when the body of an HTTP error page came back as the message.
        message = " ".join(str(exc.message).split())
        message = message if len(message) <= 300 else message[:299] + "…"
        request_id = f" (RequestId {exc.requestId})" if exc.requestId else ""
        _fail(f"{exc.code}: {message}{request_id}")


def connection_options(func: Callable[..., None]) -> Callable[..., None]:
    """The connection flags of every client command; the command gets an ``Api`` instead."""

    @functools.wraps(func)
    def command(**kwargs: Any) -> None:
        settings = {k: kwargs.pop(k) for k in _CONNECTION}
        with reporting(None):
            target = resolve_target(**settings)
            api = Api(target)
        with reporting(target):
            func(api, **kwargs)

    wrapped: Callable[..., None] = command
    for option in reversed(_CONNECTION_OPTIONS):
        wrapped = option(wrapped)
    return wrapped


_CONNECTION = ("endpoint", "secret_id", "secret_key", "region", "profile", "language")
_CONNECTION_OPTIONS = [
    click.option(
        "--endpoint",
        envvar="LIGHTKEEPER_ENDPOINT",
        help="API endpoint, e.g. http://127.0.0.1:8080 (http:// means plain HTTP) [tccli "
        f"profile's lighthouse.endpoint, else the real Tencent Cloud: {SDK_ENDPOINT}].",
    ),
    click.option("--secret-id", envvar="TENCENTCLOUD_SECRET_ID", help="SecretId [profile]."),
    click.option("--secret-key", envvar="TENCENTCLOUD_SECRET_KEY", help="SecretKey [profile]."),
    click.option("--region", envvar="TENCENTCLOUD_REGION", help="Region, e.g. ap-guangzhou."),
    click.option(
        "--profile",
        envvar="TCCLI_PROFILE",
        help="tccli profile: ~/.tccli/NAME.configure and NAME.credential [default].",
    ),
    click.option(
        "--language",
        type=click.Choice(["en-US", "zh-CN"]),
        help="Language of error messages [en-US].",
    ),
]


# --- output -----------------------------------------------------------------------------


def _console() -> Any:
    """rich's console; in a pipe as wide as the table needs, so that no id is folded."""
    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=1000)


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column.endswith("ID") or column == "State")
    for row in rows:
        table.add_row(*row)
    _console().print(table)


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _json(items: list[dict[str, Any]]) -> None:
    click.echo(json.dumps(items, ensure_ascii=False, indent=2))


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")


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
            _text(i.get("InstanceId")),
            _text(i.get("InstanceName")),
            _text(i.get("InstanceState")),
            _text((i.get("SystemDisk") or {}).get("DiskId")),
            _text(i.get("BlueprintId")),
            _text(i.get("CreatedTime")),
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
            _text(s.get("SnapshotId")),
            _text(s.get("SnapshotName")),
            _text(instance_id or owners.get(s.get("DiskId"))),
            _text(s.get("SnapshotState")),
            f"{s.get('Percent') or 0}%",
            f"{_text(s.get('LatestOperation'))} {_text(s.get('LatestOperationState'))}",
            _text(s.get("CreatedTime")),
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
            console=_console(),
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
        shown += f" ({operation} {_text(snap.get('LatestOperationState'))})"
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
