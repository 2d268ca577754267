"""Lock contention never loses an accepted operation (issue #11, defect 6): a job whose step
or final commit times out on the database lock runs again; it is not failed (which for a
create deletes the accepted snapshot), and it is never left RUNNING for good either."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from lightkeeper.store import jobs
from lightkeeper.store.database import migrate, open_engine, sqlite_url, write
from lightkeeper.store.jobs import Job
from lightkeeper.store.tables import jobs as jobs_table
from lightkeeper.worker import Worker


def _locked() -> OperationalError:
    return OperationalError("COMMIT", None, sqlite3.OperationalError("database is locked"))


def _run_until(worker: Worker, done: threading.Event) -> None:
    worker.start()
    try:
        assert done.wait(20), "the job never completed"
    finally:
        worker.stop()


def _state(engine: Engine, job_id: int) -> tuple[str, int]:
    with write(engine) as conn:
        row = conn.execute(
            select(jobs_table.c.state, jobs_table.c.attempts).where(jobs_table.c.id == job_id)
        ).one()
    return str(row.state), int(row.attempts)


def test_a_commit_that_times_out_on_the_lock_runs_the_job_again(tmp_path: Path) -> None:
    engine = open_engine(sqlite_url(tmp_path))
    migrate(engine)
    with write(engine) as conn:
        job_id = jobs.enqueue(
            conn, "create_snapshot", account_id=1, instance_id="i", request_id="r"
        )
    tries: list[int] = []
    gave_up: list[str] = []
    done = threading.Event()

    def executor(job: Job) -> None:
        tries.append(job.epoch)
        if len(tries) == 1:
            raise _locked()  # e.g. an admin command held the write lock for 10 s
        with write(engine) as conn:
            jobs.fence(conn, job)
            jobs.finish(conn, job, jobs.SUCCESS)
        done.set()

    def give_up(job: Job, reason: str) -> None:
        gave_up.append(reason)
        done.set()

    worker = Worker(engine, {"create_snapshot": executor}, give_up, threads=1, poll_seconds=0.05)
    _run_until(worker, done)
    assert gave_up == []
    assert tries == [1, 2]
    assert _state(engine, job_id) == ("SUCCESS", 1)  # a deferral is not an interrupted attempt
    engine.dispose()


def test_a_job_whose_outcome_could_not_be_recorded_is_taken_again(tmp_path: Path) -> None:
    engine = open_engine(sqlite_url(tmp_path))
    migrate(engine)
    with write(engine) as conn:
        job_id = jobs.enqueue(conn, "StartInstances", account_id=1, instance_id="i", request_id="r")
    tries: list[int] = []
    done = threading.Event()

    def executor(job: Job) -> None:
        tries.append(job.epoch)
        if len(tries) == 1:
            raise RuntimeError("boom")  # and recording the failure fails too, below
        with write(engine) as conn:
            jobs.finish(conn, job, jobs.SUCCESS)
        done.set()

    def give_up(job: Job, reason: str) -> None:
        raise _locked()

    worker = Worker(
        engine,
        {"StartInstances": executor},
        give_up,
        threads=1,
        poll_seconds=0.05,
        lease_seconds=0.5,
    )
    _run_until(worker, done)
    assert tries == [1, 2]
    assert _state(engine, job_id)[0] == "SUCCESS"
    engine.dispose()
