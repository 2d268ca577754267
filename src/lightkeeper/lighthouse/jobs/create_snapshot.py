"""CreateInstanceSnapshot's job: copy the disk into the snapshot, then show it NORMAL."""

from __future__ import annotations

from sqlalchemy import Connection

from lightkeeper import compute, storage
from lightkeeper.domain.model import OperationState, SnapshotState
from lightkeeper.lighthouse.jobs.base import JobKind, NoParams
from lightkeeper.lighthouse.operations import (
    fence,
    progress,
    retry_busy,
    snapshot_disk,
    subjects,
)
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.jobs import Job


class CreateSnapshot(JobKind[NoParams]):
    name = "create_snapshot"
    action = "CreateInstanceSnapshot"
    params_type = NoParams

    def run(self, job: Job) -> None:
        world = self.world
        snapshot_id = job.snapshot_id or ""
        instance, snapshot = subjects(world, job)
        if instance is None or snapshot is None:
            return self.compensate(job, "instance or snapshot no longer exists")
        # An interrupted try's data, removed only while this worker holds the job (fenced,
        # under the disk lock): a stalled worker must never delete its successor's copy.
        world.discard_snapshot_data(
            instance.disk_id, snapshot_id, instance.instance_id, fence=fence(world, job)
        )
        shown = progress(world, job, snapshot_id, snapshot.percent)

        def copy() -> str:
            try:
                return snapshot_disk(world, job, instance, shown)
            except storage.SnapshotExists as exc:
                # Published meanwhile by an earlier attempt whose owner stalled between its
                # fence and its publish (it commits nothing): the id is this job's alone, so
                # the job runs again, and its fenced discard above removes that data first.
                raise jobs.Deferred(f"data of an earlier attempt appeared: {exc}") from exc

        try:
            checksum = retry_busy(copy)
        except (storage.StorageError, compute.ComputeError) as exc:
            return self.compensate(job, f"snapshot copy failed: {exc}")
        shown.finish()
        with world.job_write(job) as conn:
            db.update_snapshot(
                conn,
                snapshot_id,
                state=SnapshotState.NORMAL,
                percent=100,
                latest_operation_state=OperationState.SUCCESS,
                checksum=checksum,
            )
            db.release_disks(conn, job.id)
            jobs.finish(conn, job, jobs.SUCCESS)

    def undo(self, conn: Connection, job: Job) -> None:
        if job.snapshot_id:
            db.delete_snapshots(conn, [job.snapshot_id])  # frees the quota it held

    def undone(self, job: Job) -> None:
        if job.snapshot_id and job.disk_id:  # else its tombstone lets the next start do it
            ref = storage.SnapshotRef(job.disk_id, job.snapshot_id)
            self.world.discard_deleted_snapshots({ref: job.instance_id})
