"""The durable job queue: every asynchronous step is a row, claimed with a lease.

A worker that dies (kill -9) stops renewing its lease; the job is then claimed again and
resumed, so nothing an API call accepted is ever lost or left OPERATING.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, or_, select, update

from lightkeeper.store.database import write
from lightkeeper.store.resources import utcnow
from lightkeeper.store.tables import jobs

PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCESS = "SUCCESS"
FAILED = "FAILED"


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    account_id: int
    instance_id: str
    snapshot_id: str | None
    request_id: str
    params: dict[str, Any]
    attempts: int
    created_at: dt.datetime


def owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"


def _owner_is_dead(owner: str | None, me: str) -> bool:
    """True only when we can tell for sure: same host, and that process is gone (or is us,
    restarted under a recycled pid)."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return owner != me
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def enqueue(
    conn: Connection,
    kind: str,
    *,
    account_id: int,
    instance_id: str,
    request_id: str,
    snapshot_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> int:
    result = conn.execute(
        insert(jobs).values(
            kind=kind,
            account_id=account_id,
            instance_id=instance_id,
            snapshot_id=snapshot_id,
            request_id=request_id,
            state=PENDING,
            params=json.dumps(params or {}),
            attempts=0,
            created_at=utcnow(),
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def queued(conn: Connection) -> int:
    query = select(func.count()).select_from(jobs).where(jobs.c.state.in_([PENDING, RUNNING]))
    return conn.scalar(query) or 0


def release_dead_owners(engine: Engine, me: str) -> int:
    """Expire the leases of jobs whose worker process is known to be gone (server restart)."""
    with write(engine) as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.owner).where(jobs.c.state == RUNNING)).all()
        dead = [r.id for r in rows if _owner_is_dead(r.owner, me)]
        if dead:
            conn.execute(update(jobs).where(jobs.c.id.in_(dead)).values(lease_until=0.0))
    return len(dead)


def claim(engine: Engine, owner: str, lease_seconds: float) -> Job | None:
    """Take the oldest runnable job: PENDING, or RUNNING with an expired lease."""
    with write(engine) as conn:
        # Read the clock once the write lock is held: taken before, a long wait for the lock
        # would shorten the lease granted below (and can let a running job be claimed twice).
        now = time.time()
        row = conn.execute(
            select(jobs)
            .where(
                or_(
                    jobs.c.state == PENDING,
                    # Never our own: we are alive and still running it, only late renewing
                    # its lease (a heartbeat can wait seconds for the write lock under load).
                    and_(
                        jobs.c.state == RUNNING,
                        jobs.c.lease_until < now,
                        or_(jobs.c.owner.is_(None), jobs.c.owner != owner),
                    ),
                )
            )
            .order_by(jobs.c.id)
            .limit(1)
        ).first()
        if row is None:
            return None
        conn.execute(
            update(jobs)
            .where(jobs.c.id == row.id)
            .values(
                state=RUNNING,
                owner=owner,
                lease_until=now + lease_seconds,
                attempts=row.attempts + 1,
                started_at=row.started_at or utcnow(),
            )
        )
    return Job(
        id=row.id,
        kind=row.kind,
        account_id=row.account_id,
        instance_id=row.instance_id,
        snapshot_id=row.snapshot_id,
        request_id=row.request_id,
        params=json.loads(row.params),
        attempts=row.attempts + 1,
        created_at=row.created_at,
    )


def renew(engine: Engine, job_ids: list[int], owner: str, lease_seconds: float) -> None:
    if not job_ids:
        return
    with write(engine) as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(job_ids), jobs.c.owner == owner, jobs.c.state == RUNNING)
            .values(lease_until=time.time() + lease_seconds)
        )


def finish(conn: Connection, job_id: int, state: str, message: str | None = None) -> None:
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(state=state, message=message, finished_at=utcnow(), lease_until=None)
    )


def history(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(jobs).order_by(jobs.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
