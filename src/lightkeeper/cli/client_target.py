"""Where the client commands connect, and as whom: flags and environment variables over
tccli's own profile files (``~/.tccli/<profile>.configure`` and ``.credential``), so an
existing tccli setup just works; no endpoint means the SDK's own (the real Tencent Cloud)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SDK_ENDPOINT = "lighthouse.tencentcloudapi.com"


class Failure(Exception):
    """A reason to stop with one ``Error:`` line and a non-zero status, never a traceback."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


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
