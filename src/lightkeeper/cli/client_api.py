"""The Lighthouse calls the client commands make, through the official SDK, and how their
failures become one ``Error:`` line (never a traceback). The SDK is imported when a command
runs: ``lightkeeper admin`` and ``serve`` start without it."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click

from lightkeeper.cli.client_target import SDK_ENDPOINT, Failure, Target, resolve_target

PAGE = 100  # the largest Limit DescribeInstances and DescribeSnapshots accept


def _fail(message: str, status: int = 1) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(status)


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
