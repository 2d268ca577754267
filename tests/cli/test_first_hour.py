"""A newcomer's first hour (issue #16): the README's first screen works as written, keys can
be found again, admin commands say when they look in the wrong place, disks are named as the
API names them, ``--help`` says what options take and the access log is JSON lines."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import LIGHTKEEPER, Account, Server, free_port, run_cli

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
GiB = 1024 * MiB


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither the caller's LIGHTKEEPER_* variables nor their home directory take part."""
    for name in ("LIGHTKEEPER_DATA_DIR", "LIGHTKEEPER_CONFIG", "LIGHTKEEPER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


def _readme_snippet(language: str) -> str:
    """The README's first fenced block in ``language``."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"```{language}\n(.*?)```", readme, re.S)
    assert found is not None
    return found.group(1)


def _first_keys(log: str) -> tuple[str, str]:
    """The first SecretId and SecretKey the start printed, as someone reading it takes them."""
    secret_id = re.search(r"SecretId\s+(AKID\w+)", log)
    secret_key = re.search(r"SecretKey\s+(\S+)", log)
    assert secret_id is not None and secret_key is not None, log
    return secret_id.group(1), secret_key.group(1)


def test_readme_first_screen_serve_demo_then_its_snippet_lists_the_demo_instances(
    tmp_path: Path,
) -> None:
    first_screen = _readme_snippet("bash")
    assert "./dev serve --demo" in first_screen  # what ./dev runs: lightkeeper serve --demo
    server = Server(tmp_path / "data", free_port(), ("--demo", "--transition-seconds", "0"))
    server.start()
    try:
        secret_id, secret_key = _first_keys(server.log())
        snippet = (
            _readme_snippet("python")
            .replace('"AKID..."', repr(secret_id))
            .replace('"..."', repr(secret_key))
            .replace("127.0.0.1:8080", server.endpoint)
        )
        assert secret_id in snippet and secret_key in snippet  # the placeholders were there
        ran = subprocess.run(
            [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60
        )
    finally:
        server.stop()
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["TotalCount"] == 2
    assert sorted(i["InstanceName"] for i in answer["InstanceSet"]) == ["db-1", "web-1"]


def test_serve_demo_seeds_once_and_a_restart_points_at_the_keys(
    make_server: Callable[..., Server],
) -> None:
    server = make_server("--demo", "--transition-seconds", "0")
    first_start = server.log()
    secret_id, secret_key = _first_keys(first_start)
    assert "Demo instances seeded in account 'default'" in first_start
    server.stop()
    server.start()
    again = server.log()[len(first_start) :]

    assert secret_key not in again  # never a secret after the first start
    hints = [line for line in again.splitlines() if "admin key list --show-secret" in line]
    assert len(hints) == 1, again
    assert "not seeding it again" in again
    command = shlex.split(hints[0].split(": ", 1)[1])
    assert command[0] == "lightkeeper"
    shown = subprocess.run(
        [*LIGHTKEEPER, *command[1:], "--json"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert {(k["Account"], k["SecretId"], k["SecretKey"]) for k in json.loads(shown.stdout)} == {
        ("default", secret_id, secret_key)
    }
    c = world.client(server, Account("default", "", 0, secret_id, secret_key))
    assert c.DescribeInstances(models.DescribeInstancesRequest()).TotalCount == 2


def test_key_list_hides_secrets_unless_asked_and_a_full_account_says_how_to_replace(
    server: Server,
) -> None:
    account = world.new_account(server)
    hidden = server.admin("key", "list", "--account", account.name, "--json")
    assert [k["SecretId"] for k in hidden] == [account.secret_id]
    assert "SecretKey" not in hidden[0]
    shown = server.admin("key", "list", "--account", account.name, "--show-secret", "--json")
    assert shown[0]["SecretKey"] == account.secret_key
    server.admin("key", "create", "--account", account.name, "--json")
    third = server.admin("key", "create", "--account", account.name, check=False)
    assert third.returncode == 1
    assert f"admin key delete SECRET_ID --account {account.name}" in third.stderr


@pytest.mark.parametrize("where", ["flag", "default"])
def test_admin_refuses_a_data_dir_that_does_not_exist(tmp_path: Path, where: str) -> None:
    missing = tmp_path / "nowhere" if where == "flag" else tmp_path / "xdg" / "lightkeeper"
    result = run_cli(
        "admin", "account", "list", data_dir=missing if where == "flag" else None, check=False
    )
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"lightkeeper: error: data dir {missing} does not exist: pass the --data-dir (or "
        f"LIGHTKEEPER_DATA_DIR) the server uses; `lightkeeper serve --data-dir {missing}` "
        "creates a new one"
    ]
    assert not missing.exists()


def _disk_id(server: Server, instance_id: str) -> str:
    shown = server.admin("instance", "show", instance_id, "--json")
    return str(shown["SystemDisk"]["DiskId"])


def test_disk_commands_take_the_disk_id_and_sha256_reads_only_the_data(server: Server) -> None:
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]  # a 1 GB disk
    disk_id = _disk_id(server, instance_id)
    assert disk_id.startswith("lhdisk-")
    data = b"first hour, " * (MiB // 12) + b"!" * (MiB % 12)  # 1 MiB, printable
    offset = 300 * MiB
    server.admin("disk", "write", disk_id, "--offset", str(offset), input_bytes=data)
    read = server.admin("disk", "read", instance_id, "--offset", str(offset), "--length", "16")
    assert read.stdout == data[:16].decode()

    expected = hashlib.sha256()  # every byte of the 1 GiB disk, zeros included
    zeros = bytes(64 * MiB)
    for _ in range(offset // len(zeros)):
        expected.update(zeros)
    expected.update(zeros[: offset % len(zeros)])
    expected.update(data)
    rest = GiB - offset - len(data)
    for _ in range(rest // len(zeros)):
        expected.update(zeros)
    expected.update(zeros[: rest % len(zeros)])

    before = _bytes_read()
    by_disk = server.admin("disk", "sha256", disk_id, "--json")
    read_for_it = _bytes_read() - before
    assert by_disk == {"DiskId": disk_id, "InstanceId": instance_id, "Sha256": expected.hexdigest()}
    assert server.admin("disk", "sha256", instance_id, "--json") == by_disk
    assert read_for_it < 32 * MiB  # the 1 MiB written (and the database), not the 1 GiB disk

    unknown = server.admin("disk", "sha256", "lhdisk-00000000", check=False)
    assert unknown.returncode == 1
    assert "disk 'lhdisk-00000000' does not exist" in unknown.stderr


def test_disk_checksum_is_the_snapshots_checksum_and_costs_the_data(server: Server) -> None:
    """``admin disk checksum``: the O(data) answer to "is this disk what my snapshot holds?"
    on a 10 GiB sparse disk, where an exact sha256 must digest 10 GiB of zeros."""
    account = world.new_account(server)
    created = world.create_instance(server, account, "ap-guangzhou", "--disk-size", "10")
    instance_id = created["InstanceId"]
    server.admin("disk", "write", instance_id, "--offset", str(7 * GiB), input_bytes=b"x" * MiB)
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    recorded = server.admin("snapshot", "sha256", snapshot_id, "--json")["Checksum"]
    assert recorded.startswith("b1m-sha256:")
    assert server.admin("disk", "checksum", instance_id, "--json")["Checksum"] == recorded
    server.admin("disk", "write", instance_id, "--offset", str(7 * GiB), input_bytes=b"y")
    changed = server.admin("disk", "checksum", _disk_id(server, instance_id))
    assert changed.stdout.strip() != recorded  # the disk id works too, and the digest moved


def _bytes_read() -> int:
    """This process's bytes read by read(2)-like calls so far (/proc's ``rchar``): the admin
    command runs here (``Server.admin``), so this is what it read."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


HEAVY = ("tencentcloud", "starlette", "uvicorn", "uvloop", "httpx", "prometheus_client",
         "alembic", "orjson", "anyio", "rich")  # fmt: skip


def test_admin_commands_do_not_import_the_server_stack(tmp_path: Path) -> None:
    """What makes an admin command start slowly is what it imports; bench/admin_startup.py
    measures the time (a wall-clock threshold here would fail on a busy machine)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    run_cli("admin", "account", "create", "someone", data_dir=data, in_process=True)  # migrated
    probe = (
        "import sys\n"
        "from lightkeeper.cli.main import cli\n"
        f"cli.main(['admin', 'account', 'list', '--data-dir', {str(data)!r}],"
        " prog_name='lightkeeper', standalone_mode=False)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}))\n"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].split()[0] == "Name" and lines[2].split()[0] == "someone"  # it ran
    loaded = set(eval(lines[-1]))  # our own probe's printed list
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_serve_help_names_what_each_option_takes() -> None:
    shown = run_cli("serve", "--help").stdout
    for option, kind in [
        ("--port", "INTEGER"),
        ("--workers", "INTEGER"),
        ("--idle-timeout", "NUMBER"),
        ("--transition-seconds", "NUMBER"),
        ("--snapshot-quota-per-instance", "INTEGER"),
        ("--qemu-kernel", "PATH"),
        ("--storage", r"\[raw\|qcow2\|rbd\]"),
    ]:
        assert re.search(rf"{option} {kind}\s", shown), (option, shown)
    assert not re.search(r"--(port|workers|idle-timeout) TEXT", shown)
    quota_help = " ".join(shown.split("--snapshot-quota-per-instance INTEGER")[1].split())
    assert quota_help.startswith("Not a per-instance limit")
    assert "account's pool in its region" in quota_help


def test_a_typed_option_still_fails_in_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", "--port", "eighty", data_dir=tmp_path / "data", check=False)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "lightkeeper: error: invalid port: Input should be a valid integer, unable to parse "
        "string as an integer"
    ]


def test_the_access_log_is_json_lines(make_server: Callable[..., Server]) -> None:
    server = make_server("--transition-seconds", "0")
    account = world.new_account(server)
    world.client(server, account).DescribeInstances(models.DescribeInstancesRequest())
    server.stop()  # every line written
    access = [line for line in server.log().splitlines() if '"request_id"' in line]
    assert access, server.log()
    for line in access:
        record = json.loads(line)  # the whole line: no "INFO " in front
        assert isinstance(record, dict)
    assert any(json.loads(line).get("action") == "DescribeInstances" for line in access)
    others = [line for line in server.log().splitlines() if line.startswith("INFO")]
    assert others  # the other logs keep their readable LEVEL prefix
