"""A private PostgreSQL server for tests, tools and benchmarks: ``initdb`` in a fresh
directory, listening on a unix socket in that directory only (no TCP), removed on stop.

Debian's ``postgresql`` package provides the binaries (``/usr/lib/postgresql/<v>/bin``).
PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user
and its directory is made in ``/tmp`` (which that user can reach; pytest's temp dirs are
private to root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binaries, or None when it is not installed."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


class Postgres:
    """One server; ``url()`` names a database on it for SQLAlchemy (psycopg 3)."""

    def __init__(self, *, durable: bool = False) -> None:
        binaries = bin_dir()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="lk-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.durable = durable  # fsync on: for benchmarks; tests trade it for speed
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres", "postgres")

    # -- lifecycle ------------------------------------------------------------------------

    def _run(self, args: Sequence[str]) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, cwd=self.root)

    def init(self) -> None:
        self._run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
             "--no-sync", "-E", "UTF8", "--locale=C"]
        )  # fmt: skip
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "200",
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            "shared_buffers": "128MB",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def start(self) -> None:
        self._ctl("start", "-w", "-l", str(self.log))

    def stop(self, mode: str = "fast") -> None:
        self._ctl("stop", "-w", "-m", mode)

    def restart(self) -> None:
        """What an operator's ``pg_ctl restart`` does: every connection is cut."""
        self._ctl("restart", "-w", "-m", "fast", "-l", str(self.log))

    def _ctl(self, *args: str) -> None:
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), *args])

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ------------------------------------------------------------------------

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.root} user=postgres dbname={database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its SQLAlchemy URL."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}"


@contextmanager
def running(*, durable: bool = False) -> Iterator[Postgres]:
    """A started server, stopped and removed afterwards."""
    server = Postgres(durable=durable)
    try:
        server.init()
        server.start()
        yield server
    finally:
        try:
            server.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        server.remove()
