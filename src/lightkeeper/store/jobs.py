"""The durable job queue: every asynchronous step is a row, claimed with a lease.

A worker that dies (kill -9) stops renewing its lease; the job is then claimed again and
resumed, so nothing an API call accepted is ever lost or left OPERATING.

A worker that only *stalled* (SIGSTOP, a long GC or I/O pause) past its lease is fenced: every
claim bumps the job's ``epoch``, and every commit of a job's effects (``fence``, ``finish``,
``defer``, ``hold``) is conditional on the owner and epoch it was claimed with, checked in the
same transaction. A worker that lost its lease gets ``LeaseLost`` and commits nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    Select,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from lightkeeper.store.database import write
from lightkeeper.store.processes import may_be_running
from lightkeeper.store.resources import utcnow
from lightkeeper.store.tables import jobs, nodes

PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCESS = "SUCCESS"
FAILED = "FAILED"


class LeaseLost(Exception):
    """This worker no longer holds the job's lease (another claimed it): commit nothing."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} (epoch {job.epoch}) is no longer held by {job.owner}")
        self.job = job


class Deferred(Exception):
    """The job cannot make progress now (its disk is held elsewhere): run it again later,
    keeping every lock it holds, instead of failing it."""


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    account_id: int
    instance_id: str | None
    """None for a job on a disk no instance holds (e.g. a detached disk's backup)."""
    disk_id: str | None
    snapshot_id: str | None
    request_id: str
    params: dict[str, Any]
    attempts: int
    created_at: dt.datetime
    owner: str = ""
    epoch: int = 0
    """The fencing token this worker claimed the job with."""
    taken_over_from: str | None = None
    """The owner whose expired lease this claim took over (None: a PENDING job's first)."""

    def need_instance(self) -> str:
        """The instance of a kind that always works on one (power, rollback, snapshot)."""
        if self.instance_id is None:
            raise ValueError(f"job {self.id} ({self.kind}) names no instance")
        return self.instance_id


def owner_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"


def _owner_is_dead(owner: str | None, me: str) -> bool:
    """True only when we can tell for sure: same host, and that process is gone (or is us,
    restarted under a recycled pid)."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if not pid.isdigit():
        return False
    if host == socket.gethostname() and int(pid) == os.getpid():
        return owner != me
    return not may_be_running(host, int(pid))


_INSERT_JOB = insert(jobs)


def enqueue(
    conn: Connection,
    kind: str,
    *,
    account_id: int,
    instance_id: str | None,
    request_id: str,
    disk_id: str | None = None,
    snapshot_id: str | None = None,
    params: dict[str, Any] | None = None,
    need_node: str | None = None,
    need_pool: str | None = None,
) -> int:
    """``need_node`` / ``need_pool``: only a node of that name / reaching that storage pool
    may claim the job (None: any)."""
    row = {
        "kind": kind,
        "account_id": account_id,
        "instance_id": instance_id,
        "disk_id": disk_id,
        "snapshot_id": snapshot_id,
        "request_id": request_id,
        "state": PENDING,
        "params": json.dumps(params or {}),
        "attempts": 0,
        "created_at": utcnow(),
        "need_node": need_node,
        "need_pool": need_pool,
    }
    result = conn.execute(_INSERT_JOB, row)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def kind_of(conn: Connection, job_id: int) -> str | None:
    """The kind of the job (None: there is none)."""
    found = conn.scalar(select(jobs.c.kind).where(jobs.c.id == job_id))
    return None if found is None else str(found)


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


def _neighbours(
    pool: str | None | BindParameter[str], host: str | BindParameter[str]
) -> Select[tuple[str]]:
    """The nodes on ``host`` that reach ``pool``. For a pool that is a data dir (raw, qcow2)
    they share that data dir, so each reaches the machines of the others (the compute drivers
    keep them there: power records, QMP sockets) and may take over a job that needs one of
    their machines. A shared pool (Ceph) says nothing of data dirs: then ``host`` is "",
    which names no node."""
    return select(nodes.c.name).where(nodes.c.pool.is_not_distinct_from(pool), nodes.c.host == host)


def here(machines_follow_pool: bool) -> str:
    """The ``host`` of ``_neighbours``: this host, or "" (no neighbours) for a pool whose
    nodes do not share a data dir (``Capabilities.shared_pool``)."""
    return socket.gethostname() if machines_follow_pool else ""


def neighbours(conn: Connection, pool: str | None, host: str) -> set[str]:
    """``_neighbours`` as names: whose machines this node reaches besides its own."""
    return set(conn.scalars(_neighbours(pool, host)))


def _claimable(not_ours: ColumnElement[bool]) -> Select[Any]:
    """The oldest job ``claim`` may take (its parameters: now, node, pool)."""
    pool: BindParameter[str] = bindparam("pool")
    return (
        select(jobs)
        .where(
            or_(
                jobs.c.state == PENDING,
                and_(jobs.c.state == RUNNING, jobs.c.lease_until < bindparam("now"), not_ours),
            ),
            or_(
                jobs.c.need_node.is_(None),
                jobs.c.need_node == bindparam("node"),
                jobs.c.need_node.in_(_neighbours(pool, bindparam("host"))),
            ),
            or_(jobs.c.need_pool.is_(None), jobs.c.need_pool.is_not_distinct_from(pool)),
        )
        .order_by(jobs.c.id)
        .limit(1)
    )


# Built once: claims run every poll of every worker. Not another owner's (no ``running``: the
# owner's own are not taken either), or not one of the jobs this worker runs.
_CLAIMABLE_NOT_OWNERS = _claimable(or_(jobs.c.owner.is_(None), jobs.c.owner != bindparam("owner")))
_CLAIMABLE_NOT_RUNNING = _claimable(jobs.c.id.notin_(bindparam("running", expanding=True)))


def claim(
    engine: Engine,
    owner: str,
    lease_seconds: float,
    running: Collection[int] | None = None,
    *,
    clock: Callable[[], float] = time.time,
    node: str | None = None,
    pool: str | None = None,
    host: str | None = None,
) -> Job | None:
    """Take the oldest runnable job: PENDING, or RUNNING with an expired lease.

    Never one we are still running, only late renewing its lease (a heartbeat can wait
    seconds for the write lock under load): ``running`` names them; without it, no job of
    ``owner`` is taken. A job of ours that is no longer running (its outcome could not be
    recorded) is taken again once its lease has expired, so it is never stuck. ``clock``
    (seconds since the epoch, as ``lease_until``) lets a test expire a lease without waiting.
    ``node``: the claiming server's node name, recorded in ``jobs.node``; with ``pool``
    (the storage pool it reaches) what decides which jobs it may take (``need_node``: that
    node or one of its ``neighbours``, on ``host``: ``here()``, the default; ``need_pool``): a
    job another node must run waits for that node (or a neighbour), never lost.
    """
    with write(engine) as conn:
        # Read the clock once the write lock is held: taken before, a long wait for the lock
        # would shorten the lease granted below (and can let a running job be claimed twice).
        now = clock()
        where = {
            "now": now,
            "node": node,
            "pool": pool,
            "host": here(True) if host is None else host,
        }
        if running is None:
            row = conn.execute(_CLAIMABLE_NOT_OWNERS, {**where, "owner": owner}).first()
        else:
            row = conn.execute(_CLAIMABLE_NOT_RUNNING, {**where, "running": list(running)}).first()
        if row is None:
            return None
        conn.execute(
            update(jobs)
            .where(jobs.c.id == row.id)
            .values(
                state=RUNNING,
                owner=owner,
                node=node,
                lease_until=now + lease_seconds,
                attempts=row.attempts + 1,
                epoch=row.epoch + 1,
                started_at=row.started_at or utcnow(),
            )
        )
    return Job(
        id=row.id,
        kind=row.kind,
        account_id=row.account_id,
        instance_id=row.instance_id,
        disk_id=row.disk_id,
        snapshot_id=row.snapshot_id,
        request_id=row.request_id,
        params=json.loads(row.params),
        attempts=row.attempts + 1,
        created_at=row.created_at,
        owner=owner,
        epoch=row.epoch + 1,
        taken_over_from=row.owner if row.state == RUNNING and row.owner != owner else None,
    )


_HELD: ColumnElement[bool] = and_(
    jobs.c.id == bindparam("held_id"),
    jobs.c.owner == bindparam("held_owner"),
    jobs.c.epoch == bindparam("held_epoch"),
    jobs.c.state == RUNNING,
)
"""The job is still RUNNING under the lease this worker claimed it with (``_held``)."""
# Built once (the fence runs in every job transaction); the SET values get names of their own.
_FENCE = select(jobs.c.id).where(_HELD).with_for_update()
_RENEW = update(jobs).where(_HELD).values(lease_until=bindparam("new_lease_until"))
_FINISH = (
    update(jobs)
    .where(_HELD)
    .values(
        state=bindparam("new_state"),
        message=bindparam("new_message"),
        finished_at=bindparam("new_finished_at"),
        lease_until=None,
    )
)


def _held(job: Job) -> dict[str, Any]:
    return {"held_id": job.id, "held_owner": job.owner, "held_epoch": job.epoch}


def fence(conn: Connection, job: Job) -> None:
    """Call first in every transaction that commits a job's effects: raises ``LeaseLost``
    (so the transaction rolls back) unless this worker still holds the job's lease. Inside
    the write transaction a claim by another worker cannot interleave (SQLite's write lock;
    the row lock on other databases)."""
    if conn.scalar(_FENCE, _held(job)) is None:
        raise LeaseLost(job)


def renew(engine: Engine, held: list[Job], lease_seconds: float) -> list[Job]:
    """Extend the leases still held; returns the jobs whose lease was lost."""
    if not held:
        return []
    lost: list[Job] = []
    with write(engine) as conn:
        until = time.time() + lease_seconds
        for job in held:
            if conn.execute(_RENEW, {**_held(job), "new_lease_until": until}).rowcount:
                continue
            lost.append(job)
    return lost


def hold(engine: Engine, job: Job, lease_seconds: float) -> None:
    """Renew the lease now or raise ``LeaseLost``: called right before an effect outside the
    database is published (a finished copy renamed into place), so the full lease is left
    for it and no other worker can have started the job meanwhile."""
    if renew(engine, [job], lease_seconds):
        raise LeaseLost(job)


def finish(conn: Connection, job: Job, state: str, message: str | None = None) -> None:
    """End the job, if this worker still holds it (``LeaseLost`` otherwise)."""
    values = {"new_state": state, "new_message": message, "new_finished_at": utcnow()}
    result = conn.execute(_FINISH, {**_held(job), **values})
    if not result.rowcount:
        raise LeaseLost(job)


def defer(engine: Engine, job: Job, seconds: float, reason: str) -> None:
    """Hand the job back to the queue to be run again from the start in ``seconds``, by any
    worker, keeping its locks; a deferral is not an interrupted attempt."""
    with write(engine) as conn:
        result = conn.execute(
            update(jobs)
            .where(_HELD)
            .values(
                owner=None,
                lease_until=time.time() + seconds,
                attempts=jobs.c.attempts - 1,
                message=reason[:1000],
            ),
            _held(job),
        )
        if not result.rowcount:
            raise LeaseLost(job)


def history(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    rows = conn.execute(select(jobs).order_by(jobs.c.id.desc()).limit(limit))
    return [dict(r._mapping) for r in rows]
