"""ApplyInstanceSnapshot's job: stop the machine, restore the disk from the verified
snapshot, then show the instance STOPPED (or start it again if so configured)."""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from lightkeeper import compute, storage
from lightkeeper.domain.model import InstanceState, OperationState, SnapshotState
from lightkeeper.lighthouse.jobs.base import JobKind, Params
from lightkeeper.lighthouse.operations import fence, progress, retry_busy, subjects
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.jobs import Job

logger = logging.getLogger("lightkeeper.operations")


class ApplyParams(Params):
    was_running: bool = False
    """The machine ran when the rollback was accepted (``--restart-after-rollback``)."""


class ApplySnapshot(JobKind[ApplyParams]):
    name = "apply_snapshot"
    action = "ApplyInstanceSnapshot"
    params_type = ApplyParams

    def run(self, job: Job) -> None:
        world = self.world
        snapshot_id = job.snapshot_id or ""
        params = self.params(job)
        instance, snapshot = subjects(world, job)
        if instance is None or snapshot is None or snapshot.checksum is None:
            return self.compensate(job, "instance or snapshot no longer exists")
        try:
            if world.machine_state(instance) == "RUNNING":
                world.hold(job)
                world.compute.stop(instance.instance_id, force=True)  # "forcibly shut down" first
            with world.job_write(job) as conn:
                db.update_instance(conn, instance.instance_id, state=InstanceState.STOPPED)
        except compute.ComputeError as exc:
            return self.compensate(job, f"could not stop the instance: {exc}")
        shown = progress(world, job, snapshot_id, snapshot.percent)
        try:
            retry_busy(
                lambda: world.storage.restore_snapshot(
                    instance.disk_id,
                    snapshot_id,
                    snapshot.checksum or "",
                    shown,
                    fence=fence(world, job),
                )
            )
        except storage.ChecksumMismatch as exc:
            with world.job_write(job) as conn:
                db.update_snapshot(conn, snapshot_id, corrupt=1)
            return self.compensate(job, f"snapshot data failed verification: {exc}")
        except storage.StorageError as exc:
            return self.compensate(job, f"rollback failed: {exc}")
        shown.finish()
        restart = world.options.restart_after_rollback and params.was_running
        with world.job_write(job) as conn:
            db.update_snapshot(
                conn,
                snapshot_id,
                state=SnapshotState.NORMAL,
                percent=100,
                latest_operation_state=OperationState.SUCCESS,
            )
            db.update_instance(
                conn,
                instance.instance_id,
                state=InstanceState.STARTING if restart else InstanceState.STOPPED,
                latest_operation_state=OperationState.SUCCESS,
                op_job=None,
            )
            db.release_disks(conn, job.id)
            jobs.finish(conn, job, jobs.SUCCESS)
        if restart:
            self._restart(job)

    def _restart(self, job: Job) -> None:
        instance_id = job.need_instance()
        try:
            self.world.compute.start(instance_id)
            state = InstanceState.RUNNING
        except compute.ComputeError as exc:
            logger.warning("restart after rollback of %s failed: %s", instance_id, exc)
            state = InstanceState.STOPPED
        with self.world.write() as conn:
            db.update_instance(conn, instance_id, state=state)

    def undo(self, conn: Connection, job: Job) -> None:
        if job.snapshot_id:
            db.update_snapshot(
                conn,
                job.snapshot_id,
                state=SnapshotState.NORMAL,
                percent=100,
                latest_operation_state=OperationState.FAILED,
            )
