"""A server's store read from outside (read-only), for the reliability tools
(testkit/crash.py, testkit/storm.py): the job rows, which process owns a running
job, a ledger proving that a finished job never changes, and the stored snapshot data.

One reader for both engines: SQLite in the data dir (opened read-only, so it never takes the
write lock) or the PostgreSQL database the servers share (``Store.database``), queried with
SQLAlchemy ``text()`` and named parameters, which both dialects accept."""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

FINISHED = ("SUCCESS", "FAILED")


@dataclass(frozen=True)
class Store:
    """Where a server keeps its records: ``database`` (a PostgreSQL URL) or, when None, the
    SQLite file of ``data_dir``. Snapshot data is always in ``data_dir``."""

    data_dir: Path
    database: str | None = None

    @property
    def url(self) -> str:
        if self.database is not None:
            return self.database
        return f"sqlite:///file:{self.data_dir / 'lightkeeper.db'}?mode=ro&uri=true"


Source = Store | Path
"""A Store, or a data dir whose SQLite database is the store."""


def as_store(source: Source) -> Store:
    return source if isinstance(source, Store) else Store(source)


@functools.cache
def _engine(url: str) -> Engine:
    """One engine per store, with no pool: every read opens a fresh connection, so a
    PostgreSQL restart (testkit/storm.py) leaves no broken connection behind."""
    return create_engine(url, poolclass=NullPool)


class Reader:
    """A read-only connection: ``rows`` of a query as dicts."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in self.conn.execute(text(sql), params)]

    def tuples(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(text(sql), params)]


@contextmanager
def read_only(source: Source) -> Iterator[Reader]:
    """The store, read in one transaction (nothing is ever written through it)."""
    with _engine(as_store(source).url).connect() as conn:
        yield Reader(conn)
        conn.rollback()


def job_rows(source: Source, where: str = "") -> list[dict[str, Any]]:
    """Every column of every job (``where``: an optional SQL condition, a constant)."""
    with read_only(source) as db:
        return db.rows(f"SELECT * FROM jobs {f'WHERE {where}' if where else ''}")


def job_row(source: Source, job_id: int) -> dict[str, Any] | None:
    with read_only(source) as db:
        found = db.rows("SELECT * FROM jobs WHERE id = :id", id=job_id)
    return found[0] if found else None


def owner_pid(owner: str | None) -> int | None:
    """The pid in a job's ``owner`` (``host:pid:time_ns``, store/jobs.owner_token), if the
    owner is a process of this host."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def running_jobs(source: Source, pids: Iterable[int]) -> list[dict[str, Any]]:
    """The RUNNING jobs owned by one of the processes ``pids``."""
    wanted = set(pids)
    return [j for j in job_rows(source, "state = 'RUNNING'") if owner_pid(j["owner"]) in wanted]


def claim_of(row: dict[str, Any]) -> tuple[Any, ...]:
    """What every claim of a job changes (the lease epoch, where the schema has one)."""
    return row["state"], row["owner"], row["attempts"], row.get("epoch")


class FinishedJobs:
    """Each finished job as last seen (state, finished_at, message). A finished job is final:
    any later change (a late commit by a worker that lost the job) is a violation."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, ...]] = {}

    def observe(self, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """The violations in ``rows`` (each change is reported once)."""
        problems = []
        for row in rows:
            now = (row["state"], row["finished_at"], row["message"])
            before = self._seen.get(row["id"])
            if before is None:
                if row["state"] in FINISHED:
                    self._seen[row["id"]] = now
            elif now != before:
                problems.append(
                    f"job {row['id']} ({row['kind']}, {row['instance_id']}) changed after it "
                    f"finished: {before} -> {now}"
                )
                self._seen[row["id"]] = now
        return problems

    def __len__(self) -> int:
        return len(self._seen)


def stored_snapshots(data_dir: Path, storage: str) -> set[str]:
    """The ids of the snapshots whose data is stored (raw: an image; qcow2: the record of an
    internal snapshot, kept per disk; rbd: an RBD snapshot of a disk image, asked of the
    driver with the settings the server remembered in the data dir)."""
    if storage == "rbd":
        from lightkeeper.config import remembered_drivers
        from lightkeeper.storage import RbdDriver

        remembered = remembered_drivers(data_dir)
        pool, namespace = remembered["rbd_pool"], remembered["rbd_namespace"]
        driver = RbdDriver(data_dir, pool=pool, namespace=namespace)
        try:
            return {ref.snapshot_id for ref in driver.snapshots()}
        finally:
            driver.close()
    pattern = "snapshots/*.img" if storage == "raw" else "disks/*.snapshots/*.size"
    return {p.stem for p in data_dir.glob(pattern)}


def snapshot_records(source: Source) -> set[str]:
    """The ids of the snapshot records, and of the disk backups' (whose data is a snapshot
    of their disk, stored the same way)."""
    with read_only(source) as db:
        found = db.tuples(
            "SELECT snapshot_id FROM snapshots UNION ALL SELECT disk_backup_id FROM disk_backups"
        )
    return {str(r[0]) for r in found}


def corrupt_marks(source: Source) -> set[str]:
    """Snapshots and disk backups the server marked corrupt, or whose last check
    (store/checks.py) found them so."""
    with read_only(source) as db:
        marked = db.tuples(
            "SELECT snapshot_id FROM snapshots WHERE corrupt != 0"
            " UNION ALL SELECT disk_backup_id FROM disk_backups WHERE corrupt != 0"
        )
        checked = db.tuples("SELECT snapshot_id FROM snapshot_checks WHERE result = 'CORRUPT'")
    return {str(r[0]) for r in (*marked, *checked)}
