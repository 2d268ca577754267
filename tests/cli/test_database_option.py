"""``--database`` / ``LIGHTKEEPER_DATABASE_URL`` / TOML ``database_url``, for ``serve`` and
every ``admin`` command, in that order of precedence; a URL Lightkeeper cannot use is one
line, and a password in it is never shown (issue #13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testkit.postgres import Postgres
from testkit.server import run_cli

from tests.cli.test_cli import made, one_line_error


def _names(database: str, tmp_path: Path) -> list[str]:
    listed = run_cli("admin", "account", "list", "--json", "--database", database,
                     data_dir=made(tmp_path / "any"))  # fmt: skip
    return sorted(a["Name"] for a in json.loads(listed.stdout))


def test_flag_env_and_toml_choose_the_database(postgres_server: Postgres, tmp_path: Path) -> None:
    flag, env, toml = (postgres_server.create_database(f"cli_{n}") for n in ("f", "e", "t"))
    config = tmp_path / "lightkeeper.toml"
    config.write_text(f'database_url = "{toml}"\n')
    data = made(tmp_path / "data")
    run_cli("admin", "account", "create", "by-toml", "--config", str(config), data_dir=data)
    run_cli("admin", "account", "create", "by-env", "--config", str(config), data_dir=data,
            env={"LIGHTKEEPER_DATABASE_URL": env})  # fmt: skip
    run_cli("admin", "account", "create", "by-flag", "--config", str(config), data_dir=data,
            env={"LIGHTKEEPER_DATABASE_URL": env}, database=flag)  # fmt: skip
    assert _names(toml, tmp_path) == ["by-toml"]
    assert _names(env, tmp_path) == ["by-env"]
    assert _names(flag, tmp_path) == ["by-flag"]
    assert not (data / "lightkeeper.db").exists()  # no SQLite file was made on the side


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root:hunter2@db/lk", "unsupported database 'mysql'"),
        ("not a url", "not a database URL"),
    ],
)
def test_a_database_url_it_cannot_use_is_one_line(tmp_path: Path, url: str, expected: str) -> None:
    for command in (["serve", "--port", "1"], ["admin", "account", "list"]):
        result = run_cli(*command, data_dir=tmp_path / "data", database=url, check=False)
        line = one_line_error(result, 2)
        assert "invalid database_url" in line and expected in line, line
        assert "hunter2" not in result.stderr


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql://lk:hunter2@/lk?host={tmp_path}/nowhere"
    result = run_cli("admin", "account", "list", data_dir=made(tmp_path / "data"), database=url,
                     check=False)  # fmt: skip
    line = one_line_error(result, 2)
    assert "cannot open the database" in line, line
    assert "hunter2" not in result.stderr
