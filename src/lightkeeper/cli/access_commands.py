"""``lightkeeper admin user|sts``: sub-users, their CAM policies and temporary credentials."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from lightkeeper.cli.options import config_options, emit, fail, open_or_fail, settings_from
from lightkeeper.domain.cam import PolicyError
from lightkeeper.store.accounts import AccountError
from lightkeeper.store.principals import UserStore

T = TypeVar("T")
json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON only.")


def _users(data_dir: Path | None) -> UserStore:
    services = open_or_fail(settings_from(click.get_current_context(), data_dir=data_dir))
    return UserStore(services.engine, services.accounts)


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except PolicyError as exc:
        fail(f"invalid policy: {exc}", status=1)
    except AccountError as exc:
        fail(str(exc), status=1)


def _read_policy(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", status=1)
    except ValueError as exc:
        fail(f"invalid policy: {path} is not JSON ({exc})", status=1)


def _show(value: dict[str, Any], as_json: bool) -> None:
    emit(value, as_json, lambda: click.echo(json.dumps(value, indent=2, ensure_ascii=False)))


@click.group("user")
def user() -> None:
    """Sub-users of an account and the CAM policies attached to them."""


@user.command("create")
@click.argument("account")
@click.argument("name")
@config_options
@json_flag
def user_create(account: str, name: str, data_dir: Path | None, as_json: bool) -> None:
    """Create sub-user NAME in ACCOUNT (no permissions until a policy is attached)."""
    created = _run(lambda: _users(data_dir).create(account, name))
    _show({"Account": account, "Name": created.name, "Uin": created.uin}, as_json)


@user.command("attach-policy")
@click.argument("account")
@click.argument("name")
@click.option("--file", "policy_file", type=click.Path(path_type=Path), required=True)
@click.option("--policy-name", default="default", show_default=True)
@config_options
@json_flag
def user_attach(
    account: str,
    name: str,
    policy_file: Path,
    policy_name: str,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Validate a CAM policy document and attach it (replacing one of the same name)."""
    document = _read_policy(policy_file)
    users = _users(data_dir)
    _run(lambda: users.attach_policy(account, name, document, policy_name))
    _show(_run(lambda: users.describe(account, name)), as_json)


@user.command("detach-policy")
@click.argument("account")
@click.argument("name")
@click.option("--policy-name", default="default", show_default=True)
@config_options
def user_detach(account: str, name: str, policy_name: str, data_dir: Path | None) -> None:
    """Detach a policy from the user."""
    _run(lambda: _users(data_dir).detach_policy(account, name, policy_name))
    click.echo(f"{name}: policy {policy_name} detached")


@user.command("show")
@click.argument("account")
@click.argument("name")
@config_options
@json_flag
def user_show(account: str, name: str, data_dir: Path | None, as_json: bool) -> None:
    """Show the user and its policies."""
    _show(_run(lambda: _users(data_dir).describe(account, name)), as_json)


@click.group("sts")
def sts() -> None:
    """Temporary credentials (TmpSecretId, TmpSecretKey, Token)."""


@sts.command("issue")
@click.option("--account", required=True)
@click.option("--user", help="Sub-user the credentials act as (default: the root account).")
@click.option("--duration", type=int, default=1800, show_default=True, help="Seconds.")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path),
    help="Session policy: the credentials may do only what it and the user allow.",
)
@config_options
@json_flag
def sts_issue(
    account: str,
    user: str | None,
    duration: int,
    policy_file: Path | None,
    data_dir: Path | None,
    as_json: bool,
) -> None:
    """Issue temporary credentials; requests must carry the Token (X-TC-Token / Token)."""
    policy = _read_policy(policy_file) if policy_file is not None else None
    session = _run(lambda: _users(data_dir).issue_session(account, user, duration, policy))
    _show(
        {
            "TmpSecretId": session.tmp_secret_id,
            "TmpSecretKey": session.tmp_secret_key,
            "Token": session.token,
            "ExpiredTime": session.expired_time,
            "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.expired_time)),
        },
        as_json,
    )


COMMANDS = (user, sts)
