"""Server settings: CLI flags over ``LIGHTKEEPER_*`` environment variables over a TOML file.

The CLI resolves the three sources (click does flags > env > ``default_map``, and the TOML file
is loaded into ``default_map``); this model validates the result once, so a bad value is one
clear line, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lightkeeper.api.forwarded import Network, parse_networks
from lightkeeper.durable import replace_text
from lightkeeper.regions import DEFAULT_REGIONS, Region
from lightkeeper.store.database import normalise_url
from lightkeeper.store.nodes import checked_name, default_name

logger = logging.getLogger("lightkeeper.config")

API_VERSION = "2020-03-24"
SERVICE = "lighthouse"


class ConfigError(Exception):
    """A configuration problem, reported as one line and exit status 2."""


def default_data_dir() -> Path:
    """``$LIGHTKEEPER_DATA_DIR`` is handled by click; this is the per-user fallback."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lightkeeper"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    rate_limit: bool = True
    rate_limits: dict[str, int] = Field(default_factory=dict)
    regions: tuple[Region, ...] = DEFAULT_REGIONS
    log_level: str = "info"
    # Transport (cli/http.py): whose X-Forwarded-For is believed, how long a connection may
    # go without a complete request head, and how many may be open (None: from RLIMIT_NOFILE).
    trusted_proxy: tuple[Network, ...] = ()
    idle_timeout: float = Field(default=60.0, gt=0, le=3600)
    max_connections: int | None = Field(default=None, ge=1)
    storage: Literal["raw", "qcow2", "rbd"] = "raw"
    # The rbd driver (storage/rbd.py): where in Ceph the disks live, and as whom.
    rbd_pool: str = Field(default="rbd", min_length=1)
    rbd_namespace: str = ""
    ceph_conf: Path | None = None  # None: librados's own search ($CEPH_CONF, /etc/ceph)
    ceph_client: str = Field(default="admin", min_length=1)
    compute: Literal["null", "qemu"] = "null"
    qemu_kernel: Path | None = None  # boot this kernel (with qemu_initrd) instead of the disk
    qemu_initrd: Path | None = None
    qemu_append: str = "console=ttyS0 panic=-1"
    qemu_memory_mb: int = Field(default=256, ge=32)
    qemu_accel: Literal["auto", "kvm", "tcg"] = "auto"
    soft_stop_timeout: float = Field(default=30.0, gt=0)
    transition_seconds: float = Field(default=1.0, ge=0)
    operation_seconds: float = Field(default=0.0, ge=0)
    snapshot_quota_per_instance: int = Field(default=2, ge=0)
    snapshot_quota_max: int = Field(default=10, ge=0)
    quota_lock_timeout: float = Field(default=5.0, gt=0)
    max_queued_jobs: int = Field(default=1000, ge=1)
    restart_after_rollback: bool = False
    workers: int = Field(default=4, ge=1, le=64)
    node: str = Field(default_factory=default_name)  # this server's name among its database's
    job_lease_seconds: float = Field(default=6.0, ge=0.5, le=3600)
    # The scrubber (lighthouse/scrub.py): every snapshot read back whole once per interval
    # (0: never), at most this many MiB/s.
    scrub_interval: float = Field(default=7 * 86400.0, ge=0)
    scrub_bandwidth: float = Field(default=64.0, gt=0)
    # The control API (lighthouse/control_http.py) for tests: off unless asked; its token is
    # generated at start when not given.
    control_api: bool = False
    control_token: str | None = Field(default=None, min_length=16)

    @field_validator("rate_limits")
    @classmethod
    def _positive_limits(cls, value: dict[str, int]) -> dict[str, int]:
        for action, limit in value.items():
            if limit < 1:
                raise ValueError(f"rate limit for {action} must be at least 1")
        return value

    @field_validator("trusted_proxy", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> tuple[Network, ...]:
        """A list (TOML, repeated flag) whose items may each hold several, comma or blank
        separated (``LIGHTKEEPER_TRUSTED_PROXY="10.0.0.1, 10.1.0.0/16"``)."""
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            raise ValueError("must be a list of IP addresses or CIDRs")
        return parse_networks(items)

    @field_validator("node")
    @classmethod
    def _node_name(cls, value: str) -> str:
        return checked_name(value)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        return None if value is None else normalise_url(value)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"critical", "error", "warning", "info", "debug"}:
            raise ValueError("must be one of critical, error, warning, info, debug")
        return value.lower()

    def storage_options(self) -> dict[str, Any]:
        """The storage driver's own settings (storage.make_driver's ``options``)."""
        if self.storage != "rbd":
            return {}
        return {
            "pool": self.rbd_pool,
            "namespace": self.rbd_namespace,
            "conf": self.ceph_conf,
            "client": self.ceph_client,
        }

    def region_codes(self) -> frozenset[str]:
        return frozenset(r.region for r in self.regions)


# What the server's drivers are: remembered in the data dir by ``serve`` so that ``admin``
# commands (another process) build disks and machines the same way.
DRIVER_KEYS = (
    "node",  # whose machines the compute driver of this data dir keeps (admin places there)
    "storage",
    "rbd_pool",
    "rbd_namespace",
    "ceph_conf",
    "ceph_client",
    "compute",
    "transition_seconds",
    "qemu_kernel",
    "qemu_initrd",
    "qemu_append",
    "qemu_memory_mb",
    "qemu_accel",
    "soft_stop_timeout",
)
DRIVERS_FILE = "drivers.json"


def remembered_drivers(data_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((data_dir / DRIVERS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if k in DRIVER_KEYS} if isinstance(data, dict) else {}


def remember_drivers(settings: Settings) -> None:
    """Refuse to switch an existing data dir to another disk format; record the choice."""
    before = remembered_drivers(settings.data_dir)
    if before.get("storage", settings.storage) != settings.storage:
        raise ConfigError(
            f"data dir {settings.data_dir} holds {before['storage']} disks: "
            f"cannot serve it with --storage {settings.storage}"
        )
    chosen = json.loads(settings.model_dump_json(include=set(DRIVER_KEYS)))
    replace_text(settings.data_dir / DRIVERS_FILE, json.dumps(chosen, indent=1, sort_keys=True))


def build_settings(values: dict[str, Any]) -> Settings:
    """Validate merged values; the first problem becomes a ``ConfigError`` naming the field."""
    try:
        return Settings.model_validate({k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        raise ConfigError(f"invalid {where}: {first['msg']}") from None


def load_toml(path: Path) -> dict[str, Any]:
    """Read the optional TOML file; keys use the flag names with ``_`` (``data_dir``)."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def prepare_data_dir(path: Path, create: bool = True) -> Path:
    """Create the data dir owner-only, or say in one line why it cannot be used.

    An existing one that others may read is tightened to 0700 (with a warning); one owned by
    another user is refused: fixing someone else's directory is not ours to decide.
    ``create=False`` (``admin`` commands): a data dir that does not exist is refused, since
    making one would answer from an empty world (``account list``: none) instead of saying
    that the command looked in the wrong place."""
    path = path.expanduser()
    if not create and not path.exists():
        raise ConfigError(
            f"data dir {path} does not exist: pass the --data-dir (or LIGHTKEEPER_DATA_DIR) "
            f"the server uses; `lightkeeper serve --data-dir {path}` creates a new one"
        )
    if path.exists() and not path.is_dir():  # mkdir would only say "File exists"
        raise ConfigError(f"data dir {path} is not a directory")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create data dir {path}: {exc.strerror}") from None
    if not path.is_dir():
        raise ConfigError(f"data dir {path} is not a directory")
    found = path.stat()
    if found.st_uid != os.geteuid():
        raise ConfigError(
            f"data dir {path} is owned by uid {found.st_uid}, not by this user "
            f"(uid {os.geteuid()}): refusing to keep credentials and disks in it"
        )
    mode = stat.S_IMODE(found.st_mode)
    if mode & 0o077:  # ours, but others may look in: the database holds SecretKeys
        try:
            os.chmod(path, 0o700)
        except OSError as exc:
            raise ConfigError(f"cannot make data dir {path} owner-only: {exc.strerror}") from None
        logger.warning("data dir %s had mode %04o: tightened to 0700 (owner-only)", path, mode)
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"data dir {path} is not readable and writable")
    return path.resolve()
