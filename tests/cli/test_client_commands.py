"""``lightkeeper instances|snapshots|snapshot|wait``: the SDK-based CLI for humans, run as
the real console script against a real server, in a pipe and under a pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Account, Server

from tests.support.sabotage import RawSabotage

LIGHTKEEPER = str(Path(sys.executable).with_name("lightkeeper"))
TCCLI = str(Path(sys.executable).with_name("tccli"))
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
AMBIENT = ("LIGHTKEEPER_ENDPOINT", "TCCLI_PROFILE", "NO_COLOR", "FORCE_COLOR", "COLUMNS")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A HOME of the test's own: no ~/.tccli of the caller's takes part."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def slow(make_server: Callable[..., Server]) -> Server:
    """A server whose creates and rollbacks last 2 s: long enough to show progress."""
    return make_server("--operation-seconds", "2", "--transition-seconds", "0")


def base_env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in AMBIENT and not k.startswith("TENCENTCLOUD_")
    }
    return {**env, "HOME": str(home), "TERM": "xterm-256color"}


def env_for(server: Server, account: Account, home: Path) -> dict[str, str]:
    """Endpoint and keys through the environment, as the SDK's own variables."""
    return {
        **base_env(home),
        "LIGHTKEEPER_ENDPOINT": server.url,
        "TENCENTCLOUD_SECRET_ID": account.secret_id,
        "TENCENTCLOUD_SECRET_KEY": account.secret_key,
        "TENCENTCLOUD_REGION": "ap-guangzhou",
    }


def lk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The console script with stdin, stdout and stderr not terminals."""
    return subprocess.run(
        [LIGHTKEEPER, *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def in_pty(
    *args: str, env: dict[str, str], answer: bytes | None = None, prompt: bytes = b"Go on?"
) -> tuple[int, str]:
    """The console script on a pseudo-terminal (120 columns): its exit status and everything
    it drew. ``answer`` is typed once ``prompt`` has appeared."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(
        [LIGHTKEEPER, *args], stdin=slave, stdout=slave, stderr=slave, env=env
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal's last descriptor
                break
            if not chunk:
                break
            output += chunk
            if answer is not None and prompt in output:
                os.write(master, answer)
                answer = None
        status = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    return status, output.decode(errors="replace")


def snapshot_id_of(output: str) -> str:
    found = re.search(r"\b(lhsnap-[0-9a-z]{8})\b", output)
    assert found, output
    return found.group(1)


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``Error:`` line of a failed command, which printed no traceback."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def actions_of(server: Server, account: Account, action: str) -> list[dict[str, Any]]:
    """The access-log records of ``account``'s calls of ``action`` (the JSON lines of the
    server's log, with or without a level name before them)."""
    found = []
    for line in server.log().splitlines():
        start = line.find("{")
        try:
            record = json.loads(line[start:]) if start >= 0 else None
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("account") == account.name:
            found.append(record)
    assert any(r["action"] == "CreateInstanceSnapshot" for r in found)  # the log is read
    return [r for r in found if r["action"] == action]


def test_tables_and_json_list_the_instance_and_its_snapshot(server: Server, home: Path) -> None:
    account = world.new_account(server)
    created = world.create_instance(server, account, "ap-guangzhou", "--name", "web-1")
    instance_id, disk_id = created["InstanceId"], created["SystemDisk"]["DiskId"]
    other = world.create_instance(server, account)["InstanceId"]  # no snapshot: not listed
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, instance_id, "nightly")
    world.wait_normal(c, snapshot_id)
    env = env_for(server, account, home)

    table = lk("instances", env=env)
    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout  # a pipe: no colours, no cursor movement
    row = next(line for line in table.stdout.splitlines() if instance_id in line)
    assert re.search(rf"{instance_id}\W+web-1\W+RUNNING\W+{disk_id}\W+lhbp-\w+\W+\d{{4}}-", row)
    assert other in table.stdout

    for args in (("snapshots",), ("snapshots", "--instance", instance_id)):
        listed = lk(*args, env=env)
        assert listed.returncode == 0, listed.stderr
        (row,) = [line for line in listed.stdout.splitlines() if "lhsnap-" in line]
        assert re.search(
            rf"{snapshot_id}\W+nightly\W+{instance_id}\W+NORMAL\W+100%\W+"
            r"CreateInstanceSnapshot SUCCESS\W+\d{4}-",
            row,
        ), row
    assert "lhsnap-" not in lk("snapshots", "--instance", other, env=env).stdout

    as_json = json.loads(lk("snapshots", "--instance", instance_id, "--json", env=env).stdout)
    assert [(s["SnapshotId"], s["DiskId"], s["SnapshotState"]) for s in as_json] == [
        (snapshot_id, disk_id, "NORMAL")
    ]
    instances = json.loads(lk("instances", "--json", env=env).stdout)
    assert {i["InstanceId"] for i in instances} == {instance_id, other}


def test_create_wait_in_a_pipe_prints_plain_lines_on_change(slow: Server, home: Path) -> None:
    account = world.new_account(slow)
    instance_id = world.create_instance(slow, account)["InstanceId"]
    result = lk(
        "snapshot",
        "create",
        instance_id,
        "--name",
        "before",
        "--wait",
        env=env_for(slow, account, home),
    )
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    snapshot_id = snapshot_id_of(result.stdout)
    progress = [line for line in result.stdout.splitlines() if "%" in line]
    assert len(progress) == len(set(progress)) >= 3  # a line per change, none repeated
    percents = [int(re.search(r" (\d+)%", line).group(1)) for line in progress]  # type: ignore[union-attr]
    assert percents == sorted(percents) and percents[-1] == 100 and percents[0] < 100
    assert progress[-1] == f"{snapshot_id}: NORMAL 100% (CreateInstanceSnapshot SUCCESS)"
    snap = world.snapshot(world.client(slow, account), snapshot_id)
    assert (snap.SnapshotState, snap.SnapshotName) == ("NORMAL", "before")


def test_create_wait_on_a_terminal_draws_a_progress_bar(slow: Server, home: Path) -> None:
    account = world.new_account(slow)
    instance_id = world.create_instance(slow, account)["InstanceId"]
    status, drawn = in_pty(
        "snapshot", "create", instance_id, "--wait", env=env_for(slow, account, home)
    )
    assert status == 0, drawn
    assert "\x1b[" in drawn  # rich redraws the bar in place on a terminal
    snapshot_id = snapshot_id_of(drawn)
    plain = ANSI.sub("", drawn)
    bars = re.findall(rf"{snapshot_id}\s+[━╸╺]+\s+(\d+)%", plain)
    percents = [int(p) for p in bars]
    assert len(bars) > 1, plain
    assert percents == sorted(percents), percents
    assert len(set(percents)) >= 3 and percents[-1] == 100, percents
    assert "CreateInstanceSnapshot SUCCESS" in plain


def test_apply_on_a_running_instance_without_a_terminal_is_refused(
    server: Server, home: Path
) -> None:
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)

    refused = lk(
        "snapshot",
        "apply",
        snapshot_id,
        "--instance",
        instance_id,
        env=env_for(server, account, home),
    )
    line = one_error(refused)
    assert "RUNNING" in line and "--yes" in line and "not a terminal" in line
    assert actions_of(server, account, "ApplyInstanceSnapshot") == []  # nothing was sent
    snap = world.snapshot(c, snapshot_id)
    assert (snap.SnapshotState, snap.LatestOperation) == ("NORMAL", "CreateInstanceSnapshot")
    assert world.instance(c, instance_id).InstanceState == "RUNNING"


def test_apply_asks_on_a_terminal_and_yes_skips_the_question(slow: Server, home: Path) -> None:
    account = world.new_account(slow)
    instance_id = world.create_instance(slow, account)["InstanceId"]
    c = world.client(slow, account)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    env = env_for(slow, account, home)
    apply = ("snapshot", "apply", snapshot_id, "--instance", instance_id)

    status, drawn = in_pty(*apply, env=env, answer=b"n\n")
    assert status == 1 and "force-stops it. Go on? [y/N]" in drawn and "Aborted" in drawn
    assert actions_of(slow, account, "ApplyInstanceSnapshot") == []
    assert world.instance(c, instance_id).InstanceState == "RUNNING"

    status, drawn = in_pty(*apply, "--wait", env=env, answer=b"y\n")
    assert status == 0, drawn
    assert "RollbackInstanceSnapshot SUCCESS" in ANSI.sub("", drawn)
    assert len(actions_of(slow, account, "ApplyInstanceSnapshot")) == 1
    snap = world.snapshot(c, snapshot_id)
    assert (snap.LatestOperation, snap.LatestOperationState) == (
        "RollbackInstanceSnapshot",
        "SUCCESS",
    )
    assert world.instance(c, instance_id).InstanceState == "STOPPED"  # force-stopped

    start = models.StartInstancesRequest()
    start.InstanceIds = [instance_id]
    world.patient(lambda: c.StartInstances(start))  # RUNNING again
    world.wait_for(lambda: world.instance(c, instance_id), lambda i: i.InstanceState == "RUNNING")
    confirmed = lk(*apply, "--yes", "--wait", env=env)  # not a terminal, but --yes
    assert confirmed.returncode == 0, confirmed.stderr
    assert confirmed.stdout.splitlines()[-1] == (
        f"{snapshot_id}: NORMAL 100% (RollbackInstanceSnapshot SUCCESS)"
    )
    assert len(actions_of(slow, account, "ApplyInstanceSnapshot")) == 2


def test_wait_fails_when_the_operation_failed(server: Server, home: Path) -> None:
    """A rollback that finds the snapshot's data damaged FAILs: ``--wait`` and ``wait`` say
    so with a non-zero status, whereas the snapshot itself stays NORMAL."""
    account = world.new_account(server)
    created = world.create_instance(server, account, "ap-guangzhou", "--state", "STOPPED")
    instance_id = created["InstanceId"]
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    env = env_for(server, account, home)
    assert (
        lk("wait", snapshot_id, env=env).returncode == 0
    )  # NORMAL, CreateInstanceSnapshot SUCCESS

    RawSabotage(server).corrupt_snapshot(created["SystemDisk"]["DiskId"], snapshot_id)
    applied = lk("snapshot", "apply", snapshot_id, "--instance", instance_id, "--wait", env=env)
    assert one_error(applied) == f"Error: snapshot {snapshot_id}: RollbackInstanceSnapshot FAILED"
    assert f"{snapshot_id}: rolling back {instance_id}" in applied.stdout

    waited = lk("wait", snapshot_id, "--timeout", "5", env=env)
    assert one_error(waited) == f"Error: snapshot {snapshot_id}: RollbackInstanceSnapshot FAILED"
    assert waited.stdout == f"{snapshot_id}: NORMAL 100% (RollbackInstanceSnapshot FAILED)\n"

    gone = lk("wait", "lhsnap-00000000", env=env)
    assert one_error(gone) == "Error: snapshot lhsnap-00000000 not found"


def test_wait_times_out_while_the_operation_runs(slow: Server, home: Path) -> None:
    account = world.new_account(slow)
    instance_id = world.create_instance(slow, account)["InstanceId"]
    snapshot_id = world.create_snapshot(world.client(slow, account), instance_id)
    waited = lk("wait", snapshot_id, "--timeout", "0.3", env=env_for(slow, account, home))
    line = one_error(waited)
    assert (
        line.startswith(f"Error: snapshot {snapshot_id}: still CREATING") and "after 0.3 s" in line
    )


def test_tccli_profile_files_supply_endpoint_keys_and_region(server: Server, home: Path) -> None:
    """Files written by the real ``tccli configure set``; flags still win over them."""
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    env = base_env(home)
    for args in (
        ("secretId", account.secret_id, "secretKey", account.secret_key, "region", "ap-guangzhou"),
        ("lighthouse.endpoint", server.url),
    ):
        subprocess.run([TCCLI, "configure", "set", *args, "--profile", "work"], env=env, check=True)
    assert (
        json.loads((home / ".tccli" / "work.configure").read_text())["lighthouse"]["endpoint"]
        == server.url
    )

    listed = lk("instances", "--profile", "work", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [i["InstanceId"] for i in json.loads(listed.stdout)] == [instance_id]
    by_variable = lk("instances", "--json", env={**env, "TCCLI_PROFILE": "work"})
    assert [i["InstanceId"] for i in json.loads(by_variable.stdout)] == [instance_id]

    wrong_key = lk("instances", "--profile", "work", "--secret-key", "x" * 32, env=env)
    assert one_error(wrong_key).startswith("Error: AuthFailure.SignatureFailure: ")
    wrong_region = lk("instances", "--profile", "work", env={**env, "TENCENTCLOUD_REGION": "xx"})
    assert one_error(wrong_region).startswith("Error: UnsupportedRegion: ")  # env over file

    nowhere = lk("instances", "--profile", "nope", env=env)
    assert nowhere.returncode == 2 and "no tccli profile 'nope'" in nowhere.stderr
    no_keys = lk("instances", "--region", "ap-guangzhou", env=env)  # no default profile
    assert no_keys.returncode == 2 and "TENCENTCLOUD_SECRET_ID" in no_keys.stderr


def test_sdk_errors_are_one_line_with_code_and_request_id(server: Server, home: Path) -> None:
    account = world.new_account(server)
    instance_id = world.create_instance(server, account, "ap-guangzhou", "--state", "STOPPED")[
        "InstanceId"
    ]
    env = env_for(server, account, home)
    missing = lk("snapshot", "apply", "lhsnap-00000000", "--instance", instance_id, env=env)
    line = one_error(missing)
    assert re.fullmatch(
        r"Error: ResourceNotFound\.SnapshotIdNotFound: The snapshot ID does not exist\. "
        r"\(RequestId [0-9a-f-]{36}\)",
        line,
    ), line
    chinese = lk("snapshot", "delete", "lhsnap-00000000", "--yes", "--language", "zh-CN", env=env)
    assert one_error(chinese).startswith("Error: ResourceNotFound.SnapshotIdNotFound: 快照")
    unreachable = lk("instances", "--endpoint", "http://127.0.0.1:1", env=env)
    assert one_error(unreachable) == (
        "Error: cannot reach http://127.0.0.1:1: [Errno 111] Connection refused"
    )


def test_delete_asks_unless_yes(server: Server, home: Path) -> None:
    account = world.new_account(server)
    instance_id = world.create_instance(server, account)["InstanceId"]
    c = world.client(server, account)
    snapshot_id = world.create_snapshot(c, instance_id)
    world.wait_normal(c, snapshot_id)
    env = env_for(server, account, home)
    refused = lk("snapshot", "delete", snapshot_id, env=env)
    assert "--yes" in one_error(refused)
    assert world.snapshot(c, snapshot_id) is not None
    deleted = lk("snapshot", "delete", snapshot_id, "--yes", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.startswith(f"{snapshot_id}: deleted (RequestId ")
    assert world.snapshot(c, snapshot_id) is None
