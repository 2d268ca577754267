"""A durable job kind: its name in the jobs table, its typed params, how it runs and how a
failed job is undone.

A kind's ``run`` is idempotent (a job interrupted by a crash runs again from the start) and
ends by committing the final states and releasing its locks in one transaction. Every write
of a job's effects is fenced by the job's lease (``World.job_write``), and so is every effect
outside the database (``World.hold``, the storage ``fence``): a worker that stalled past its
lease and resumed finds ``LeaseLost`` at its next step and changes nothing.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection

from lightkeeper.domain.model import Instance, OperationState
from lightkeeper.domain.placement import Needs, Uses, job_needs
from lightkeeper.lighthouse.operations import settled_state
from lightkeeper.lighthouse.world import World
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.jobs import Job

logger = logging.getLogger("lightkeeper.operations")


class Params(BaseModel):
    """A kind's parameters, stored as the JSON of ``jobs.params``. Anything unexpected in a
    stored row fails the job (fail closed) rather than running it on a guess."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class NoParams(Params):
    pass


P = TypeVar("P", bound=Params)


class JobKind(ABC, Generic[P]):
    name: ClassVar[str]
    """The kind as stored in ``jobs.kind``: never renamed (existing databases hold it)."""
    action: ClassVar[str]
    """The API action that queues it (job faults are armed by action name)."""
    params_type: type[P]
    uses: ClassVar[Uses] = Uses.MACHINE_UNLESS_STOPPED
    """What the kind needs of its instance: which nodes may run it (``needs``)."""

    def __init__(self, world: World) -> None:
        self.world = world

    @classmethod
    def enqueue(
        cls,
        conn: Connection,
        params: P,
        *,
        account_id: int,
        instance_id: str | None,
        request_id: str,
        disk_id: str | None = None,
        snapshot_id: str | None = None,
        needs: Needs | None = None,
    ) -> int:
        """Queue a job of this kind in the caller's transaction; returns its id. ``needs``:
        the nodes that may run it (``needs(instance)``; default any)."""
        needs = needs or Needs()
        return jobs.enqueue(
            conn,
            cls.name,
            account_id=account_id,
            instance_id=instance_id,
            disk_id=disk_id,
            request_id=request_id,
            snapshot_id=snapshot_id,
            params=params.model_dump(),
            need_node=needs.node,
            need_pool=needs.pool,
        )

    @classmethod
    def needs(cls, instance: Instance) -> Needs:
        """Which nodes may run this kind's job on ``instance`` as it is now."""
        return job_needs(cls.uses, instance)

    def params(self, job: Job) -> P:
        return self.params_type.model_validate(job.params)

    @abstractmethod
    def run(self, job: Job) -> None:
        """Do the job; on a failure call ``compensate``. ``LeaseLost``/``Deferred`` pass."""

    def undo(self, conn: Connection, job: Job) -> None:
        """What this kind undoes in the database, inside the transaction that fails it."""

    def undone(self, job: Job) -> None:
        """What this kind cleans up outside the database once the failure is committed."""

    def compensate(self, job: Job, reason: str) -> None:
        """Fail the job cleanly: release every lock and quota it held, record why (only if
        this worker still holds the job: ``LeaseLost`` otherwise). The machine is asked
        what it is doing before the transaction, not inside it."""
        logger.warning(
            "job %s (%s, request %s) failed: %s", job.id, job.kind, job.request_id, reason
        )
        world = self.world
        instance_id = job.instance_id
        before = None
        if instance_id is not None:
            with world.read() as conn:
                before = db.get_instance(conn, instance_id, tags=False)
        settled = None
        if before is not None and before.op_job == job.id:
            settled = settled_state(world, before)
        with world.job_write(job) as conn:
            instance = (
                None if instance_id is None else db.get_instance(conn, instance_id, tags=False)
            )
            self.undo(conn, job)
            db.release_disks(conn, job.id)
            if instance is not None:
                values: db.InstanceChanges = {}
                if instance.op_job == job.id:
                    values["op_job"] = None
                    values["latest_operation_state"] = OperationState.FAILED
                    values["state"] = settled if settled is not None else instance.state
                if values:
                    db.update_instance(conn, instance.instance_id, **values)
            jobs.finish(conn, job, jobs.FAILED, reason[:1000])
        self.undone(job)


class UnknownKind(JobKind[NoParams]):
    """A kind this server does not run (a newer server's, or a corrupt row): it is failed
    cleanly, releasing the locks it holds."""

    name = "(unknown)"
    action = "(none)"
    params_type = NoParams

    def run(self, job: Job) -> None:
        self.compensate(job, f"no executor for job kind {job.kind!r}")
