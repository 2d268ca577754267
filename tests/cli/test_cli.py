"""The ``lightkeeper`` command line, run as a subprocess exactly as an operator runs it."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import clients
from testkit.server import Account, Server, run_cli

ACCOUNT_KEYS = {"Name", "Uin", "AppId", "SecretId", "SecretKey"}


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the caller's LIGHTKEEPER_* variables nor their home directory take part."""
    for name in ("LIGHTKEEPER_DATA_DIR", "LIGHTKEEPER_CONFIG", "LIGHTKEEPER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def admin_json(*args: str, data_dir: Path) -> Any:
    """A world-building command's JSON, run in this process (a new interpreter costs 1.5 s of
    CPU here); what the ``lightkeeper`` process itself does is checked with ``run_cli``."""
    result = run_cli("admin", *args, "--json", data_dir=data_dir, in_process=True)
    return json.loads(result.stdout)  # the whole of stdout is one JSON document


def made(path: Path) -> Path:
    """A data dir as ``serve`` leaves it: admin commands refuse one that does not exist."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def one_line_error(result: Any, status: int) -> str:
    assert result.returncode == status
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lightkeeper: error: ")
    assert "Traceback" not in result.stderr
    return str(lines[0])


def test_account_create_prints_exactly_one_json_object(tmp_path: Path) -> None:
    created = admin_json("account", "create", "carol", data_dir=made(tmp_path / "d"))
    assert isinstance(created, dict)
    assert set(created) == ACCOUNT_KEYS
    assert created["Name"] == "carol"
    assert created["Uin"].isdigit() and isinstance(created["AppId"], int)
    assert created["SecretId"].startswith("AKID") and len(created["SecretId"]) == 36
    assert len(created["SecretKey"]) == 32


def test_duplicate_account_name_fails_with_one_line(tmp_path: Path) -> None:
    admin_json("account", "create", "dave", data_dir=made(tmp_path / "d"))
    again = run_cli(
        "admin", "account", "create", "dave", "--json", data_dir=tmp_path / "d", check=False
    )
    assert one_line_error(again, 1) == "lightkeeper: error: account 'dave' already exists"


def test_keys_lifecycle(tmp_path: Path) -> None:
    data = made(tmp_path / "d")
    first = admin_json("account", "create", "erin", data_dir=data)
    second = admin_json("key", "create", "--account", "erin", data_dir=data)
    assert set(second) == {"SecretId", "SecretKey"}
    assert second["SecretId"] != first["SecretId"]
    third = run_cli(
        "admin", "key", "create", "--account", "erin", "--json", data_dir=data, check=False
    )
    assert "erin" in one_line_error(third, 1)

    admin_json("account", "create", "grace", data_dir=data)
    foreign = run_cli(
        "admin",
        "key",
        "disable",
        first["SecretId"],
        "--account",
        "grace",
        data_dir=data,
        check=False,
    )
    assert "does not belong to account 'grace'" in one_line_error(foreign, 1)

    listing = run_cli("admin", "key", "list", "--account", "erin", "--json", data_dir=data)
    rows = json.loads(listing.stdout)
    assert {row["SecretId"]: row["Status"] for row in rows} == {
        first["SecretId"]: "Enabled",
        second["SecretId"]: "Enabled",
    }
    for secret in (first["SecretKey"], second["SecretKey"]):
        assert secret not in listing.stdout
    plain = run_cli("admin", "key", "list", "--account", "erin", data_dir=data)
    assert first["SecretId"] in plain.stdout
    assert first["SecretKey"] not in plain.stdout and second["SecretKey"] not in plain.stdout

    def statuses() -> dict[str, str]:
        rows = admin_json("key", "list", "--account", "erin", data_dir=data)
        return {row["SecretId"]: row["Status"] for row in rows}

    disabled = run_cli(
        "admin", "key", "disable", first["SecretId"], "--account", "erin", data_dir=data
    )
    assert disabled.stdout.strip() == f"{first['SecretId']}: disabled"
    assert statuses()[first["SecretId"]] == "Disabled"
    run_cli("admin", "key", "enable", first["SecretId"], "--account", "erin", data_dir=data)
    deleted = run_cli(
        "admin", "key", "delete", second["SecretId"], "--account", "erin", data_dir=data
    )
    assert deleted.stdout.strip() == f"{second['SecretId']}: deleted"
    assert statuses() == {first["SecretId"]: "Enabled"}  # enabled again, the other one gone

    unknown = "AKID" + "9" * 32
    gone = run_cli(
        "admin", "key", "delete", unknown, "--account", "erin", data_dir=data, check=False
    )
    assert unknown in one_line_error(gone, 1)


def names_in(data_dir: Path) -> list[str]:
    if not (data_dir / "lightkeeper.db").exists():
        return []
    return [row["Name"] for row in admin_json("account", "list", data_dir=data_dir)]


def test_data_dir_precedence_flag_env_toml_default(tmp_path: Path) -> None:
    flag, env, toml, xdg = (
        tmp_path / "flag",
        tmp_path / "env",
        tmp_path / "toml",
        tmp_path / "xdg" / "lightkeeper",
    )
    for path in (flag, env, toml, xdg):
        made(path)
    config = tmp_path / "lightkeeper.toml"
    config.write_text(f'data_dir = "{toml}"\n')
    env_vars = {"LIGHTKEEPER_DATA_DIR": str(env)}

    def into_toml_dir() -> None:  # same new database: one after the other
        run_cli("admin", "account", "create", "by-toml", "--config", str(config))
        run_cli(
            "admin", "account", "create", "by-config-env", env={"LIGHTKEEPER_CONFIG": str(config)}
        )

    with ThreadPoolExecutor(4) as pool:  # separate databases: these may run side by side
        runs = [
            pool.submit(
                run_cli,
                "admin",
                "account",
                "create",
                "by-flag",
                "--config",
                str(config),
                "--data-dir",
                str(flag),
                env=env_vars,
            ),
            pool.submit(
                run_cli,
                "admin",
                "account",
                "create",
                "by-env",
                "--config",
                str(config),
                env=env_vars,
            ),
            pool.submit(into_toml_dir),
            pool.submit(run_cli, "admin", "account", "create", "by-default"),
        ]
        for run in runs:
            run.result()
        dirs = {"flag": flag, "env": env, "toml": toml, "xdg": xdg}
        found = {
            name: names for name, names in zip(dirs, pool.map(names_in, dirs.values()), strict=True)
        }

    assert found == {
        "flag": ["by-flag"],
        "env": ["by-env"],
        "toml": ["by-toml", "by-config-env"],
        "xdg": ["by-default"],
    }


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("port", "lightkeeper: error: invalid port"),
        ("file-as-data-dir", "lightkeeper: error: data dir "),
        ("invalid-toml", "lightkeeper: error: config file "),
        ("directory-as-config", "lightkeeper: error: cannot read config file "),
        ("unknown-toml-key", "lightkeeper: error: invalid colour"),
    ],
)
def test_serve_configuration_errors_are_one_line(tmp_path: Path, case: str, expected: str) -> None:
    data = tmp_path / "data"
    args = {
        "port": ["--port", "99999", "--data-dir", str(data)],
        "file-as-data-dir": ["--data-dir", str(tmp_path / "file")],
        "invalid-toml": ["--config", str(tmp_path / "bad.toml"), "--data-dir", str(data)],
        "directory-as-config": ["--config", str(tmp_path), "--data-dir", str(data)],
        "unknown-toml-key": ["--config", str(tmp_path / "extra.toml"), "--data-dir", str(data)],
    }[case]
    (tmp_path / "file").write_text("not a directory\n")
    (tmp_path / "bad.toml").write_text("port = [\nrate_limits = {\n")
    (tmp_path / "extra.toml").write_text('colour = "red"\n')
    result = run_cli("serve", *args, check=False)
    assert one_line_error(result, 2).startswith(expected)
    assert not (data / "lightkeeper.db").exists()


def test_admin_works_while_the_server_runs(server: Server) -> None:
    created = server.admin("account", "create", f"live-{uuid.uuid4().hex[:8]}", "--json")
    account = Account(
        created["Name"], created["Uin"], created["AppId"], created["SecretId"], created["SecretKey"]
    )
    client = clients.lighthouse(server.endpoint, account)
    assert client.DescribeRegions(models.DescribeRegionsRequest()).TotalCount == 15

    extra = server.admin("key", "create", "--account", account.name, "--json")
    second = Account(
        account.name, account.uin, account.app_id, extra["SecretId"], extra["SecretKey"]
    )
    zones = clients.lighthouse(server.endpoint, second).DescribeZones(models.DescribeZonesRequest())
    assert zones.TotalCount == 4
