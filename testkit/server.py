"""Run the real ``lightkeeper serve`` as a subprocess and talk to it like a user would.

``lightkeeper admin`` commands that build or inspect a test's world run in this process
(``Server.admin``): a new interpreter per command costs about a second of CPU, most of many
tests' runtime. What is about the CLI process itself (exit codes, one-line errors, signals,
environment) runs in one of its own: ``run_cli``, and ``Server.admin(..., check=False)``.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lightkeeper.store.database import open_engine, sqlite_url, write

LIGHTKEEPER = [sys.executable, "-m", "lightkeeper"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(
    *args: str,
    data_dir: Path | None = None,
    check: bool = True,
    env: dict[str, str] | None = None,
    input_bytes: bytes | None = None,
    in_process: bool = False,
    database: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``lightkeeper ARGS [--data-dir D] [--database URL]`` in a new process (``in_process``:
    in this one, for commands that only build a world; not with ``env``, which would need a
    process of its own). Raises when it fails, unless ``check`` is false."""
    command = [*LIGHTKEEPER, *args]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    if database is not None:
        command += ["--database", database]
    if in_process and env is None:
        result = run_in_process(command[len(LIGHTKEEPER) :], input_bytes)
    else:
        done = subprocess.run(
            command,
            capture_output=True,
            timeout=120,
            env={**os.environ, **(env or {})},
            input=input_bytes,
        )
        result = subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode(errors="replace"),
            done.stderr.decode(errors="replace"),
        )
    if check and result.returncode != 0:
        raise AssertionError(f"{command} failed ({result.returncode}): {result.stderr}")
    return result


_IN_PROCESS = threading.Lock()  # click swaps sys.stdin/stdout/stderr: one command at a time


def run_in_process(
    args: Sequence[str], input_bytes: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """``lightkeeper ARGS`` run by click in this process, with ``run_cli``'s result: exit
    code, stdout and stderr (a traceback there, as Python would print it, on a crash).

    Hermetic: the process umask the CLI sets (077) is restored afterwards, and the command
    disposes of its database engine when it ends (``open_or_fail``)."""
    from click.testing import CliRunner

    from lightkeeper.cli.main import cli

    with _IN_PROCESS:
        umask = os.umask(0o077)
        try:
            result = CliRunner().invoke(cli, list(args), input=input_bytes, prog_name="lightkeeper")
        finally:
            os.umask(umask)
    stderr = result.stderr
    if result.exc_info is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return subprocess.CompletedProcess(
        [*LIGHTKEEPER, *args], result.exit_code, result.stdout, stderr
    )


def access_lines(log: str) -> list[dict[str, Any]]:
    """The access-log lines of a server's output: each is one JSON object, the line whole
    (cli/logs.py); every other line is ``LEVEL message`` or the banner's text."""
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@dataclass
class Account:
    name: str
    uin: str
    app_id: int
    secret_id: str
    secret_key: str


@dataclass
class Server:
    """A running server on a temporary data dir; stopped with SIGTERM by ``stop``."""

    data_dir: Path
    port: int
    args: tuple[str, ...] = ()
    nofile: int | None = None  # RLIMIT_NOFILE (soft and hard) of the server process
    env: dict[str, str] = field(default_factory=dict)  # added to the inherited environment
    database: str | None = None  # a PostgreSQL URL (testkit/postgres.py); None: SQLite
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait for /healthz; return the seconds it took. The wait is generous (a
        start on two loaded cores, migrations and recovery included, was seen past 15 s): it
        bounds a broken start, it is not a claim about start-up time (bench/ measures that)."""
        started = time.monotonic()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *LIGHTKEEPER,
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                *(("--database", self.database) if self.database else ()),
                # Servers of one data dir on this host need names of their own.
                *(() if "--node" in self.args else ("--node", f"test-{self.port}")),
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            preexec_fn=None if self.nofile is None else self._limit_descriptors,
        )
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server did not become healthy:\n{self.log()}")

    def _limit_descriptors(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self.process = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def access_log(self) -> list[dict[str, Any]]:
        """The access-log lines (one JSON object each) written so far, decoded."""
        return access_lines(self.log())

    def admin(
        self,
        *args: str,
        check: bool = True,
        input_bytes: bytes | None = None,
        in_process: bool | None = None,
    ) -> Any:
        """``lightkeeper admin ARGS`` on this server's data dir: the parsed JSON with
        ``--json`` (when it succeeded), else the ``CompletedProcess``.

        Run in this process by default, in a new one with ``check=False``: a caller that
        looks at a failure asserts what the ``lightkeeper`` process does (its exit status,
        its one-line stderr), which only a process of its own shows faithfully."""
        result = run_cli(
            "admin",
            *args,
            data_dir=self.data_dir,
            check=check,
            input_bytes=input_bytes,
            in_process=check if in_process is None else in_process,
            database=self.database,
        )
        return json.loads(result.stdout) if "--json" in args and result.returncode == 0 else result

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold the database's write lock from another connection, as another node would: the
        servers' own ``store.database.write`` (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's
        advisory write lock), on an engine of its own."""
        engine = open_engine(self.database or sqlite_url(self.data_dir), pool_size=1)
        try:
            with write(engine):
                yield
        finally:
            engine.dispose()

    def create_account(self, name: str) -> Account:
        data = self.admin("account", "create", name, "--json")
        return Account(
            data["Name"], data["Uin"], data["AppId"], data["SecretId"], data["SecretKey"]
        )
