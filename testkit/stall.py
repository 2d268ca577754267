"""The *stalled owner* fault (issue #11, defect 1): two servers share one data dir; the
process that owns a RUNNING job is stopped (SIGSTOP) for longer than the job's lease, so the
other server takes the job over, and is then resumed (SIGCONT) — as a long GC pause, a frozen
VM or a swapped-out process would. A resumed owner must commit nothing of the job it lost and
leave no storage effect behind. Used by testkit/crash.py and testkit/storm.py."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from lightkeeper.store.database import is_lock_timeout, open_engine, sqlite_url, write
from testkit.datadir import Source, as_store, claim_of, job_row

LEASE_ENV = "LIGHTKEEPER_JOB_LEASE_SECONDS"
SHORT_EXTRA = (1.0, 3.0)
"""Seconds the owner stays stopped after its lease ran out (and the takeover was seen)."""
LONG_EXTRA = (5.5, 7.5)
"""Half the stalls: past the 5 s a takeover spends retrying a locked disk before it gives up
(lighthouse/operations._retry_busy, before the fix), so the dangerous sequence of the issue is
reached: the job failed, the instance released and started, while the stalled owner still
holds and writes its disk."""
TAKEOVER_BOUND = 10.0
"""At most this many seconds more are waited for another server to claim the job."""


@dataclass
class Stall:
    job_id: int
    kind: str
    instance_id: str
    pid: int
    outcome: str = ""  # taken over, not taken over, or why it was resumed at once
    lease_left: float = 0.0  # seconds of lease the job still had when its owner stopped
    seconds: float = 0.0  # how long the owner was stopped
    taken_over: bool = False  # another claim of the job was seen while it was stopped

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lease_left"], data["seconds"] = round(self.lease_left, 2), round(self.seconds, 2)
        return data


def extra_seconds(rng: random.Random) -> float:
    return rng.uniform(*(SHORT_EXTRA if rng.random() < 0.5 else LONG_EXTRA))


def freeze(pid: int, timeout: float = 5.0) -> None:
    """SIGSTOP ``pid`` and return once every thread of it has stopped: the signal is
    delivered asynchronously, so a check made right after ``kill`` (is the database lock
    free?) could be overtaken by the process still running a few instructions more and
    taking the lock."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while not _stopped(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {pid} did not stop within {timeout} s of SIGSTOP")
        time.sleep(0.001)


def _stopped(pid: int) -> bool:
    """Every thread of ``pid`` is in the stopped state (``T``) or gone."""
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        try:
            state = stat.read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue  # a thread that ended meanwhile
        if state not in ("T", "t", "X", "Z"):
            return False
    return True


def database_writable(source: Source, timeout: float) -> bool:
    """Whether the database write lock can be taken within ``timeout`` (taken and given back
    at once), the way the servers take it (store/database.write: SQLite's BEGIN IMMEDIATE,
    PostgreSQL's advisory lock). A process stopped inside a write transaction blocks every
    writer: no lease can fence that, so such a stall is not what this fault is about."""
    store = as_store(source)
    engine = open_engine(store.database or sqlite_url(store.data_dir), pool_size=1)
    try:
        with write(engine, lock_timeout=timeout):
            pass
    except DBAPIError as exc:
        if not is_lock_timeout(exc):
            raise
        return False
    finally:
        engine.dispose()
    return True


def stall_owner(
    source: Source,
    job: dict[str, Any],
    pid: int,
    extra: float,
    during: Callable[[], None] = lambda: None,
    poll: float = 0.05,
) -> Stall:
    """SIGSTOP ``pid`` (the owner of the RUNNING ``job``) until the job's lease has run out,
    another claim of it was seen (at most TAKEOVER_BOUND s more) and ``extra`` s more have
    passed, calling ``during`` meanwhile (the workload, through the other server); SIGCONT."""
    stall = Stall(job["id"], job["kind"], job["instance_id"], pid)
    freeze(pid)
    started = time.monotonic()
    try:
        # the other server's write transactions last milliseconds: longer is the frozen one's
        if not database_writable(source, timeout=0.5):
            stall.outcome = "resumed at once: it held the database write lock"
            return stall
        row = job_row(source, job["id"])
        if row is None or row["state"] != "RUNNING" or row["owner"] != job["owner"]:
            stall.outcome = "resumed at once: the job was no longer its"
            return stall
        stall.lease_left = max(float(row["lease_until"] or 0.0) - time.time(), 0.0)
        expired = started + stall.lease_left
        while True:
            during()
            now = time.monotonic()
            current = job_row(source, job["id"])
            if not stall.taken_over and (current is None or claim_of(current) != claim_of(row)):
                stall.taken_over = True
                expired = max(expired, now)
            if now >= expired + extra and (stall.taken_over or now >= expired + TAKEOVER_BOUND):
                break
            time.sleep(poll)
        stall.outcome = "taken over" if stall.taken_over else "not taken over"
        return stall
    finally:
        os.kill(pid, signal.SIGCONT)
        stall.seconds = time.monotonic() - started
