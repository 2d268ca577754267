"""A server's data dir read from outside (read-only), for the reliability tools
(testkit/crash.py, testkit/storm.py): the job rows, which process owns a running
job, a ledger proving that a finished job never changes, and the stored snapshot data."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

FINISHED = ("SUCCESS", "FAILED")


@contextmanager
def read_only(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """The server's SQLite database, opened read-only (it never takes the write lock)."""
    uri = f"file:{data_dir / 'lightkeeper.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        db.row_factory = sqlite3.Row
        yield db


def job_rows(data_dir: Path, where: str = "") -> list[dict[str, Any]]:
    """Every column of every job (``where``: an optional SQL condition, a constant)."""
    with read_only(data_dir) as db:
        rows = db.execute(f"SELECT * FROM jobs {f'WHERE {where}' if where else ''}").fetchall()
    return [dict(r) for r in rows]


def job_row(data_dir: Path, job_id: int) -> dict[str, Any] | None:
    with read_only(data_dir) as db:
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return dict(row) if row is not None else None


def owner_pid(owner: str | None) -> int | None:
    """The pid in a job's ``owner`` (``host:pid:time_ns``, store/jobs.owner_token), if the
    owner is a process of this host."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.partition(":")[0]
    return int(pid) if host == socket.gethostname() and pid.isdigit() else None


def running_jobs(data_dir: Path, pids: Iterable[int]) -> list[dict[str, Any]]:
    """The RUNNING jobs owned by one of the processes ``pids``."""
    wanted = set(pids)
    return [j for j in job_rows(data_dir, "state = 'RUNNING'") if owner_pid(j["owner"]) in wanted]


def claim_of(row: dict[str, Any]) -> tuple[Any, ...]:
    """What every claim of a job changes (the lease epoch, where the schema has one)."""
    return row["state"], row["owner"], row["attempts"], row.get("epoch")


class FinishedJobs:
    """Each finished job as last seen (state, finished_at, message). A finished job is final:
    any later change (a late commit by a worker that lost the job) is a violation."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, ...]] = {}

    def observe(self, rows: Iterable[dict[str, Any]]) -> list[str]:
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
    internal snapshot, kept per disk)."""
    pattern = "snapshots/*.img" if storage == "raw" else "disks/*.snapshots/*.size"
    return {p.stem for p in data_dir.glob(pattern)}


def snapshot_records(data_dir: Path) -> set[str]:
    with read_only(data_dir) as db:
        return {str(r[0]) for r in db.execute("SELECT snapshot_id FROM snapshots")}
