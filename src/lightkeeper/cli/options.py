"""Options shared by ``serve`` and ``admin``: the TOML file and the data dir.

``--config`` is eager and loads the TOML into click's ``default_map``, which gives exactly the
documented precedence: flag > ``LIGHTKEEPER_*`` variable > TOML file > built-in default.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from lightkeeper.config import (
    ConfigError,
    Settings,
    build_settings,
    load_toml,
    prepare_data_dir,
    remember_drivers,
    remembered_drivers,
)
from lightkeeper.server import ExistingData, Services, open_services
from lightkeeper.storage import StorageError
from lightkeeper.store.database import StoreUnavailable, one_line, shown_url

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, status: int = 2) -> NoReturn:
    """One line on stderr and a non-zero exit: never a traceback for an operator's mistake."""
    click.echo(f"lightkeeper: error: {message}", err=True)
    sys.exit(status)


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value:
        try:
            data = load_toml(Path(value))
        except ConfigError as exc:
            fail(str(exc))
        defaults = dict(ctx.default_map or {})
        # Lists, tables and repeatable options reach the settings through ``ctx.meta``:
        # click would insist that a repeatable option's default be a list.
        repeatable = {p.name for p in ctx.command.params if getattr(p, "multiple", False)}
        defaults.update(
            {
                k: v
                for k, v in data.items()
                if not isinstance(v, (list, dict)) and k not in repeatable
            }
        )
        ctx.default_map = defaults
        ctx.meta["toml"] = data
    return value


def config_options(func: F) -> F:
    func = click.option(
        "--database",
        "database_url",
        envvar="LIGHTKEEPER_DATABASE_URL",
        expose_value=False,
        callback=_remember_database,
        help="Database URL: postgresql://USER@HOST/DB to share one database between nodes "
        "(default: SQLite in the data dir).",
    )(func)
    func = click.option(
        "--data-dir",
        envvar="LIGHTKEEPER_DATA_DIR",
        # no file_okay=False: click would report a file here in three lines of usage text;
        # ``prepare_data_dir`` says it in the one ``lightkeeper: error:`` line.
        type=click.Path(path_type=Path),
        help="Holds the database and disk images (default: a per-user data folder).",
    )(func)
    func = click.option(
        "--config",
        "config_file",
        envvar="LIGHTKEEPER_CONFIG",
        is_eager=True,
        expose_value=False,
        callback=_load_config,
        type=click.Path(),  # a directory is reported by ``load_toml``, in one line
        help="TOML file with defaults for every option (keys like data_dir, port).",
    )(func)
    return func


def _remember_database(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    """Every command takes ``--database``; it reaches the settings through ``ctx.meta`` so
    that no command's signature has to carry it."""
    if value:
        ctx.meta["database_url"] = value


def settings_from(ctx: click.Context, *, serving: bool = False, **values: Any) -> Settings:
    """The TOML file (including tables like ``regions``) under the resolved options, validated.

    ``admin`` commands then take the drivers the server last ran with; ``serve`` records them.
    """
    merged: dict[str, Any] = dict(ctx.meta.get("toml", {}))
    # ``()`` is what click gives a repeatable option that was not used: it means "not set",
    # not "empty", so a list from the TOML file (``trusted_proxy = [...]``) still applies.
    merged.update({k: v for k, v in values.items() if v is not None and v != ()})
    if "database_url" in ctx.meta:  # a flag or LIGHTKEEPER_DATABASE_URL, over the TOML key
        merged["database_url"] = ctx.meta["database_url"]
    os.umask(0o077)  # every file this process creates (database, images, state) is owner-only
    try:
        settings = build_settings(merged)
        settings.data_dir = prepare_data_dir(settings.data_dir, create=serving)
        if serving:
            remember_drivers(settings)
        else:
            remembered = remembered_drivers(settings.data_dir)
            settings = build_settings({**remembered, **merged, "data_dir": settings.data_dir})
    except ConfigError as exc:
        fail(str(exc))
    return settings


def open_or_fail(settings: Settings, existing_data: ExistingData = "refuse") -> Services:
    """The command's services; its database engine is disposed when the command ends, so a
    command run inside another process (the tests run ``admin`` in theirs) leaves no
    connection open."""
    try:
        services = open_services(settings, existing_data)
    except ConfigError as exc:  # e.g. a data dir whose database is missing
        fail(str(exc))
    except Exception as exc:  # a database that cannot be opened is an operator problem
        url = settings.database_url
        where = shown_url(url) if url else f"in {settings.data_dir}"
        fail(f"cannot open the database {where}: {failure_line(exc)}")
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(services.engine.dispose)
    return services


def failure_line(exc: BaseException) -> str:
    """A database, storage or OS failure as the one line an operator is shown."""
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {one_line(exc)}"
    if isinstance(exc, StoreUnavailable):
        return f"database unavailable: {exc}"
    if isinstance(exc, StorageError):
        return f"storage error: {one_line(exc) if str(exc) else type(exc).__name__}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return one_line(exc) or type(exc).__name__


class StoreErrorsGroup(click.Group):
    """A command group whose commands report database and storage failures (a full disk, a
    lost database file) as one ``lightkeeper: error:`` line, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (SQLAlchemyError, StoreUnavailable, StorageError, OSError) as exc:
            fail(failure_line(exc), status=1)


def emit(value: Any, as_json: bool, text: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))
    else:
        text()
