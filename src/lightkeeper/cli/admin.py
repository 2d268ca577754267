"""``lightkeeper admin``: accounts and API keys. Works while the server runs (same database)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from lightkeeper.cli import access_commands, world_commands
from lightkeeper.cli.options import config_options, emit, fail, open_or_fail, settings_from
from lightkeeper.lighthouse.views import iso
from lightkeeper.server import Services
from lightkeeper.store import nodes
from lightkeeper.store.accounts import AccountError
from lightkeeper.store.principals import UserStore
from lightkeeper.store.resources import utcnow

json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
account_flag = click.option("--account", required=True, help="Account name.")


def _services(data_dir: Path | None) -> Services:
    ctx = click.get_current_context()
    return open_or_fail(settings_from(ctx, data_dir=data_dir))


def _run(action: Callable[[], Any], hint: str = "") -> Any:
    try:
        return action()
    except AccountError as exc:
        fail(f"{exc}{hint}", status=1)


@click.group()
def admin() -> None:
    """Manage accounts, keys, instances and disks directly (works while the server runs)."""


@admin.group()
def account() -> None:
    """Accounts (each has a Uin, an AppId and up to two root API keys)."""


@account.command("create")
@click.argument("name")
@config_options
@json_flag
def account_create(name: str, data_dir: Path | None, as_json: bool) -> None:
    """Create account NAME and its first API key."""
    services = _services(data_dir)
    acct, key = _run(lambda: services.accounts.create(name))
    value = {
        "Name": acct.name,
        "Uin": acct.uin,
        "AppId": acct.app_id,
        "SecretId": key.secret_id,
        "SecretKey": key.secret_key,
    }
    emit(value, as_json, lambda: _lines(value))


@account.command("list")
@config_options
@json_flag
def account_list(data_dir: Path | None, as_json: bool) -> None:
    """List accounts."""
    rows = [
        {"Name": a.name, "Uin": a.uin, "AppId": a.app_id}
        for a in _services(data_dir).accounts.all()
    ]
    emit(rows, as_json, lambda: _table(rows))


@admin.group()
def key() -> None:
    """API keys of an account (at most two)."""


@key.command("create")
@account_flag
@click.option("--user", help="A sub-user of the account (default: the root account).")
@config_options
@json_flag
def key_create(account: str, user: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Create another key for the account or one of its sub-users (at most two each: delete
    one first with ``key delete`` to replace it)."""
    services = _services(data_dir)
    if user is None:
        created = _run(lambda: services.accounts.create_key(account), _delete_hint(account))
    else:
        created = _run(
            lambda: UserStore(services.engine, services.accounts).create_key(account, user)
        )
    value = {"SecretId": created.secret_id, "SecretKey": created.secret_key}
    emit(value, as_json, lambda: _lines(value))


def _delete_hint(account: str) -> str:
    return (
        f"; to replace one: lightkeeper admin key delete SECRET_ID --account {account} "
        "(the SecretIds: lightkeeper admin key list)"
    )


@key.command("list")
@click.option("--account", help="Account name [every account].")
@click.option(
    "--show-secret",
    is_flag=True,
    help="Also print each SecretKey (the way back to keys whose start banner scrolled away).",
)
@config_options
@json_flag
def key_list(account: str | None, show_secret: bool, data_dir: Path | None, as_json: bool) -> None:
    """List API keys: SecretIds, and SecretKeys with --show-secret."""
    accounts = _services(data_dir).accounts
    names = [account] if account is not None else [a.name for a in accounts.all()]
    rows = []
    for name in names:
        for k in _run(lambda: accounts.list_keys(name)):  # noqa: B023
            row = {"Account": name, "SecretId": k.secret_id}
            if show_secret:
                row["SecretKey"] = k.secret_key
            row |= {
                "Status": "Enabled" if k.enabled else "Disabled",
                "User": k.user or "(root)",
                "CreatedTime": k.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            rows.append(row)
    emit(rows, as_json, lambda: _table(rows))


def _key_state_command(name: str, enabled: bool | None) -> None:
    @key.command(name)
    @click.argument("secret_id")
    @account_flag
    @config_options
    def command(secret_id: str, account: str, data_dir: Path | None) -> None:
        services = _services(data_dir)
        if enabled is None:
            _run(lambda: services.accounts.delete_key(account, secret_id))
        else:
            _run(lambda: services.accounts.set_key_enabled(account, secret_id, enabled))
        click.echo(f"{secret_id}: {name}d" if name != "delete" else f"{secret_id}: deleted")

    command.__doc__ = f"{name.capitalize()} key SECRET_ID of the account."


_key_state_command("disable", False)
_key_state_command("enable", True)
_key_state_command("delete", None)


@admin.group()
def node() -> None:
    """The servers (nodes) of this database."""


@node.command("list")
@config_options
@json_flag
def node_list(data_dir: Path | None, as_json: bool) -> None:
    """Every node: its address, state (UP, DOWN: heartbeat missed, STOPPED), last heartbeat,
    drivers, storage pool and the jobs it is running."""
    services = _services(data_dir)
    now = utcnow()
    rows = [
        {
            "Name": n.name,
            "Address": n.address,
            "State": str(n.state(now)),
            "LastHeartbeat": iso(n.heartbeat_at),
            "Host": n.host,
            "Pid": n.pid,
            "Storage": n.storage,
            "Pool": n.pool,
            "Compute": n.compute,
            "RunningJobs": n.running_jobs,
        }
        for n in nodes.list_nodes(services.engine)
    ]
    emit(rows, as_json, lambda: _table(rows))


for _group in (*access_commands.COMMANDS, *world_commands.COMMANDS):
    admin.add_command(_group)


def _lines(value: dict[str, Any]) -> None:
    for name, item in value.items():
        click.echo(f"{name}: {item}")


def _table(rows: list[dict[str, Any]]) -> None:
    """Aligned columns, never cut (a SecretId is copied from here, also through a pipe). Plain
    text rather than rich's boxes: importing rich cost every listing command ~20 ms."""
    if not rows:
        click.echo("(none)")
        return
    cells = [list(rows[0])] + [[str(v) for v in row.values()] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    for line in (cells[0], ["-" * w for w in widths], *cells[1:]):
        click.echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
