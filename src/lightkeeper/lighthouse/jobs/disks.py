"""Data disks' jobs: CreateDisks (the storage disk made, PENDING -> UNATTACHED), AttachDisks
(ATTACHING -> ATTACHED) and DetachDisks (DETACHING -> UNATTACHED).

One job per disk, holding it (``disks.op_job``) from the accepting transaction to the one
that commits its final state. Each run is idempotent (a disk already made is kept, a disk
already attached to the machine is not attached twice), so a job taken over after a crash
simply runs again; a failure is compensated: a created disk's row goes (its quota with it),
an attach or detach leaves the disk as it was, LatestOperationState FAILED.
"""

from __future__ import annotations

import contextlib
import time

from sqlalchemy import Connection

from lightkeeper import compute, storage
from lightkeeper.compute.base import DataDiskCompute
from lightkeeper.domain.model import DiskState, GiB, OperationState
from lightkeeper.domain.placement import Uses
from lightkeeper.lighthouse.jobs.base import JobKind, NoParams
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.jobs import Job


def _disk_id(job: Job) -> str:
    if job.disk_id is None:
        raise ValueError(f"job {job.id} ({job.kind}) names no disk")
    return job.disk_id


class DiskJob(JobKind[NoParams]):
    """A job on one data disk; the stored kind is the API action's name, which is also the
    disk's LatestOperation."""

    params_type = NoParams
    uses = Uses.DISK
    settled: DiskState
    """The state the disk shows when the job succeeds."""
    restored: DiskState
    """The state it shows again when the job fails."""

    def act(self, job: Job, disk_id: str) -> None:
        """The work outside the database; the lease was renewed just before."""

    def finish(self, conn: Connection, job: Job, disk_id: str) -> None:
        db.update_disk(
            conn,
            disk_id,
            state=self.settled,
            latest_operation_state=OperationState.SUCCESS,
            op_job=None,
        )

    def run(self, job: Job) -> None:
        disk_id = _disk_id(job)
        started = time.monotonic()
        try:
            self.world.hold(job)
            self.act(job, disk_id)
        except (storage.StorageError, compute.ComputeError) as exc:
            return self.compensate(job, f"{job.kind} of {disk_id} failed: {exc}")
        # At least --operation-seconds, as a snapshot's operation: pollers (and tests of the
        # refusals a disk in PENDING / ATTACHING / DETACHING answers) see the state.
        time.sleep(max(0.0, self.world.pacing.operation_seconds - (time.monotonic() - started)))
        with self.world.job_write(job) as conn:
            self.finish(conn, job, disk_id)
            jobs.finish(conn, job, jobs.SUCCESS)

    def undo(self, conn: Connection, job: Job) -> None:
        db.update_disk(
            conn,
            _disk_id(job),
            state=self.restored,
            latest_operation_state=OperationState.FAILED,
            op_job=None,
        )


class CreateDisks(DiskJob):
    name = "CreateDisks"
    action = "CreateDisks"
    settled = DiskState.UNATTACHED
    restored = DiskState.PENDING  # (never shown: a failed creation removes the row)

    def act(self, job: Job, disk_id: str) -> None:
        with self.world.read() as conn:
            disk = db.get_disk(conn, disk_id)
        if disk is None:
            return
        with contextlib.suppress(storage.DiskExists):  # made by an earlier attempt
            self.world.storage.create_disk(disk_id, disk.size_gb * GiB)

    def undo(self, conn: Connection, job: Job) -> None:
        db.delete_disk(conn, _disk_id(job))

    def undone(self, job: Job) -> None:
        with contextlib.suppress(storage.StorageError):
            self.world.storage.delete_disk(_disk_id(job))


class AttachDisks(DiskJob):
    name = "AttachDisks"
    action = "AttachDisks"
    uses = Uses.MACHINE
    settled = DiskState.ATTACHED
    restored = DiskState.UNATTACHED

    def act(self, job: Job, disk_id: str) -> None:
        machine = self.world.compute
        if isinstance(machine, DataDiskCompute):
            attachment = self.world.storage.attachment(disk_id)
            machine.attach_disk(job.need_instance(), disk_id, attachment)

    def undo(self, conn: Connection, job: Job) -> None:
        super().undo(conn, job)
        db.update_disk(conn, _disk_id(job), instance_id=None)


class DetachDisks(DiskJob):
    name = "DetachDisks"
    action = "DetachDisks"
    uses = Uses.MACHINE
    settled = DiskState.UNATTACHED
    restored = DiskState.ATTACHED

    def act(self, job: Job, disk_id: str) -> None:
        machine = self.world.compute
        if isinstance(machine, DataDiskCompute):
            machine.detach_disk(job.need_instance(), disk_id)

    def finish(self, conn: Connection, job: Job, disk_id: str) -> None:
        super().finish(conn, job, disk_id)
        db.update_disk(conn, disk_id, instance_id=None)
