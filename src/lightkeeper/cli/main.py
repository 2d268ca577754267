"""``lightkeeper serve`` and the command group; admin commands live in ``admin.py``."""

from __future__ import annotations

import secrets
from typing import Any

import click

from lightkeeper import __version__
from lightkeeper.cli import client_commands
from lightkeeper.cli.admin import admin
from lightkeeper.cli.banner import print_banner, print_key_hint
from lightkeeper.cli.demo import seed_demo
from lightkeeper.cli.logs import configure_logging
from lightkeeper.cli.options import (
    StoreErrorsGroup,
    config_options,
    fail,
    open_or_fail,
    settings_from,
)
from lightkeeper.cli.setting_types import setting_type
from lightkeeper.config import ConfigError, Settings
from lightkeeper.server import (
    EXISTING_DATA_CHOICES,
    ExistingData,
    ensure_first_account,
    register_node,
)
from lightkeeper.store.nodes import NodeTaken


@click.group(cls=StoreErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lightkeeper")
def cli() -> None:
    """Lightkeeper: a self-hosted Tencent Cloud Lighthouse snapshot service (API 3.0)."""


def _env(name: str) -> str:
    return f"LIGHTKEEPER_{name.upper()}"


SERVE_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("host", {"help": "Address to listen on [127.0.0.1]."}),
    ("port", {"help": "TCP port [8080]."}),
    ("log-level", {"help": "debug, info, warning or error [info]."}),
    (
        "trusted-proxy",
        {
            "multiple": True,
            "help": "IP/CIDR of a reverse proxy whose X-Forwarded-For is believed; repeatable "
            "[none: the TCP peer is the client].",
        },
    ),
    (
        "idle-timeout",
        {"help": "Seconds a connection may wait without a full request head [60]."},
    ),
    (
        "max-connections",
        {"help": "Open connections at most [RLIMIT_NOFILE minus a reserve]."},
    ),
    ("storage", {"help": "Storage driver: raw, qcow2 or rbd (Ceph) [raw]."}),
    ("rbd-pool", {"help": "rbd: the Ceph pool of the disks [rbd]."}),
    ("rbd-namespace", {"help": "rbd: a RADOS namespace in that pool [none]."}),
    ("ceph-conf", {"help": "rbd: ceph.conf to use [librados's: $CEPH_CONF, /etc/ceph]."}),
    ("ceph-client", {"help": "rbd: the Ceph client id (client.ID) [admin]."}),
    ("compute", {"help": "Compute driver: null or qemu [null]."}),
    ("qemu-kernel", {"help": "qemu: boot this kernel instead of the disk's bootloader."}),
    ("qemu-initrd", {"help": "qemu: initramfs for --qemu-kernel."}),
    ("qemu-append", {"help": "qemu: kernel command line [console=ttyS0 panic=-1]."}),
    ("qemu-memory-mb", {"help": "qemu: guest memory [256]."}),
    ("qemu-accel", {"help": "qemu: auto, kvm or tcg [auto: KVM when it works]."}),
    ("soft-stop-timeout", {"help": "qemu: seconds a SOFT stop may take [30]."}),
    ("transition-seconds", {"help": "How long power transitions take [1]."}),
    ("operation-seconds", {"help": "Minimum duration of create/apply [0]."}),
    (
        "snapshot-quota-per-instance",
        {
            "help": "Not a per-instance limit: each instance that is neither SHUTDOWN nor a "
            "storage bundle adds this many snapshots to its account's pool in its region, "
            "which any of that account's instances there may use, up to "
            "--snapshot-quota-max [2].",
        },
    ),
    (
        "snapshot-quota-max",
        {
            "help": "Snapshots an account may have in one region at most, whatever its "
            "instances add [10]."
        },
    ),
    ("quota-lock-timeout", {"help": "Seconds to wait for the quota lock [5]."}),
    ("max-queued-jobs", {"help": "Queue depth that answers SystemBusy [1000]."}),
    ("workers", {"help": "Job worker threads [4]."}),
    ("node", {"help": "This server's name among the servers of its database [host name]."}),
    ("job-lease-seconds", {"help": "Lease a worker renews on a running job [6]."}),
    (
        "scrub-interval",
        {
            "help": "Seconds between two read-backs of each snapshot's data by the scrubber; "
            "0: no scrubbing [604800: weekly].",
        },
    ),
    ("scrub-bandwidth", {"help": "MiB/s the scrubber reads at most [64]."}),
]


def serve_options(func: Any) -> Any:
    for name, extra in reversed(SERVE_OPTIONS):
        env = _env(name.replace("-", "_"))
        func = click.option(f"--{name}", envvar=env, type=setting_type(name), **extra)(func)
    func = click.option(
        "--rate-limit/--no-rate-limit",
        envvar="LIGHTKEEPER_RATE_LIMIT",
        default=None,
        help="Enforce Tencent's per-second limits (default on; off for load tests).",
    )(func)
    func = click.option(
        "--control-api/--no-control-api",
        envvar="LIGHTKEEPER_CONTROL_API",
        default=None,
        help="Serve the control API for tests under /lightkeeper-api/ (reset, seed, timing, "
        "faults, state), behind a token printed at start (default off).",
    )(func)
    func = click.option(
        "--control-token",
        envvar="LIGHTKEEPER_CONTROL_TOKEN",
        help="The control API's token (16+ characters) [generated at start].",
    )(func)
    func = click.option(
        "--restart-after-rollback/--stay-stopped-after-rollback",
        envvar="LIGHTKEEPER_RESTART_AFTER_ROLLBACK",
        default=None,
        help="Start a rolled-back instance again if it was running (default: leave STOPPED).",
    )(func)
    return func


@cli.command()
@config_options
@serve_options
@click.option(
    "--demo",
    is_flag=True,
    help="Seed three instances, with data, in the first account (the banner's keys).",
)
@click.option(
    "--existing-data",
    type=click.Choice(EXISTING_DATA_CHOICES),
    default="refuse",
    help="When the database is new but the data dir holds disks or snapshots: refuse to start "
    "[default], or move that data into quarantine/ and start empty. This run only: no "
    "variable or TOML key.",
)
@click.pass_context
def serve(ctx: click.Context, /, demo: bool, existing_data: ExistingData, **values: Any) -> None:
    """Run the API server until SIGINT or SIGTERM."""
    import uvicorn

    from lightkeeper.cli.http import Server
    from lightkeeper.server import create_app

    settings = settings_from(ctx, serving=True, **values)
    try:
        options = uvicorn_options(settings)
    except ConfigError as exc:
        fail(str(exc))
    services = open_or_fail(settings, existing_data)
    try:
        register_node(services)
    except NodeTaken as exc:
        fail(str(exc))
    created = ensure_first_account(services)
    endpoint = f"{settings.host}:{settings.port}"
    if created is not None:
        print_banner(endpoint, *created)
    else:
        print_key_hint(settings)
    if demo:
        seed_demo(services, endpoint)
    if settings.control_api:
        settings.control_token = settings.control_token or secrets.token_urlsafe(24)
        click.echo(
            f"Control API for tests: http://{endpoint}/lightkeeper-api/ "
            f"(Authorization: Bearer {settings.control_token})"
        )
    configure_logging(settings.log_level)
    config = uvicorn.Config(
        create_app(services),
        host=settings.host,
        port=settings.port,
        **options,
    )
    Server(config).run()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How ``serve`` runs uvicorn; the benchmarks' bare-stack baseline uses the same. Raises
    ``ConfigError`` when ``max_connections`` does not fit this process's RLIMIT_NOFILE."""
    from lightkeeper.cli.http import transport_limits, uvicorn_transport

    limits = transport_limits(settings.idle_timeout, settings.max_connections)
    return {
        "log_level": settings.log_level,
        "access_log": False,
        "lifespan": "on",
        "server_header": False,
        # The client is the TCP peer unless --trusted-proxy says otherwise, a rule the API
        # applies (api/forwarded.py); uvicorn would rewrite it first, trusting any
        # X-Forwarded-For from 127.0.0.1.
        "proxy_headers": False,
        # h11 (uvicorn's, with the idle timeout and connection cap of cli/http.py), not
        # httptools even when installed: httptools answers 400 to request lines h11 accepts
        # (tests/api/test_malformed.py), and the parser is not where the time goes.
        **uvicorn_transport(limits),
        "h11_max_incomplete_event_size": 1024 * 1024,
        # uvloop (a dependency), asyncio's loop should it be missing.
        "loop": "auto",
    }


cli.add_command(admin)
cli.add_command(client_commands.instances)
cli.add_command(client_commands.snapshots)
cli.add_command(client_commands.snapshot)
cli.add_command(client_commands.wait)


def main() -> None:
    cli(prog_name="lightkeeper")
