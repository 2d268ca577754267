"""``lightkeeper serve`` and the command group; admin commands live in ``admin.py``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import uvicorn

from lightkeeper import __version__
from lightkeeper.cli.admin import admin
from lightkeeper.cli.banner import print_banner
from lightkeeper.cli.options import config_options, open_or_fail, settings_from
from lightkeeper.server import create_app, ensure_first_account


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lightkeeper")
def cli() -> None:
    """Lightkeeper: a self-hosted Tencent Cloud Lighthouse snapshot service (API 3.0)."""


@cli.command()
@config_options
@click.option("--host", envvar="LIGHTKEEPER_HOST", help="Address to listen on [127.0.0.1].")
@click.option("--port", envvar="LIGHTKEEPER_PORT", type=str, help="TCP port [8080].")
@click.option(
    "--rate-limit/--no-rate-limit",
    envvar="LIGHTKEEPER_RATE_LIMIT",
    default=None,
    help="Enforce Tencent's per-second limits (default on; off for load tests).",
)
@click.option("--log-level", envvar="LIGHTKEEPER_LOG_LEVEL", help="debug, info, warning, error.")
@click.pass_context
def serve(
    ctx: click.Context,
    data_dir: Path | None,
    host: str | None,
    port: str | None,
    rate_limit: bool | None,
    log_level: str | None,
) -> None:
    """Run the API server until SIGINT or SIGTERM."""
    settings = settings_from(
        ctx, data_dir=data_dir, host=host, port=port, rate_limit=rate_limit, log_level=log_level
    )
    services = open_or_fail(settings)
    created = ensure_first_account(services)
    endpoint = f"{settings.host}:{settings.port}"
    if created is not None:
        print_banner(endpoint, *created)
    logging.basicConfig(
        level=settings.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(message)s"
    )
    config = uvicorn.Config(
        create_app(settings, services),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        server_header=False,
        h11_max_incomplete_event_size=1024 * 1024,
    )
    uvicorn.Server(config).run()


cli.add_command(admin)


def main() -> None:
    cli(prog_name="lightkeeper")
