"""Disk backups' jobs, on the snapshot engine: a backup is a storage snapshot of its data disk
(incremental block tables, checksums, fenced publish), its Percent paced like a snapshot's.

CreateDiskBackup copies the disk (through the running machine when the disk is attached to
one, as a live snapshot) and shows the backup NORMAL; ApplyDiskBackup force-stops the
instance the disk is attached to if it runs ("相关RUNNING 状态的实例会强制关机"), restores
the disk from the verified backup and shows the instance STOPPED. The job holds the disk
(``disks.op_job``) and, for an apply to an attached disk, the instance (``op_job``).
"""

from __future__ import annotations

from sqlalchemy import Connection

from lightkeeper import compute, storage
from lightkeeper.compute.base import LiveSnapshotCompute
from lightkeeper.domain.model import (
    Disk,
    DiskBackup,
    DiskBackupState,
    InstanceState,
    OperationState,
)
from lightkeeper.domain.placement import Uses
from lightkeeper.lighthouse.jobs.base import JobKind, NoParams
from lightkeeper.lighthouse.operations import Progress, fence, retry_busy
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.jobs import Job


def _backup_percent(conn: Connection, backup_id: str, percent: int) -> None:
    db.update_disk_backup(conn, backup_id, percent=percent)


class BackupJob(JobKind[NoParams]):
    params_type = NoParams
    uses = Uses.MACHINE_UNLESS_STOPPED

    def subjects(self, job: Job) -> tuple[Disk | None, DiskBackup | None]:
        with self.world.read() as conn:
            disk = db.get_disk(conn, job.disk_id or "")
            return disk, db.get_disk_backup(conn, job.snapshot_id or "")

    def progress(self, job: Job, backup: DiskBackup) -> Progress:
        return Progress(self.world, job, backup.disk_backup_id, backup.percent, _backup_percent)

    def succeed(self, job: Job, backup_id: str, checksum: str | None = None) -> None:
        """The final transaction: the backup NORMAL (with the checksum of a new one),
        everything held let go, the job done; fenced by its lease."""
        with self.world.job_write(job) as conn:
            db.update_disk_backup(
                conn,
                backup_id,
                state=DiskBackupState.NORMAL,
                percent=100,
                latest_operation_state=OperationState.SUCCESS,
            )
            if checksum is not None:
                db.update_disk_backup(conn, backup_id, checksum=checksum)
            self.release(conn, job)
            jobs.finish(conn, job, jobs.SUCCESS)

    def release(self, conn: Connection, job: Job) -> None:
        """The disk (and the instance an apply held) let go, in the final transaction; a
        failed job's are let go by ``compensate``."""
        db.release_disks(conn, job.id)
        if job.instance_id is not None:
            instance = db.get_instance(conn, job.instance_id, tags=False)
            if instance is not None and instance.op_job == job.id:
                db.update_instance(
                    conn,
                    job.instance_id,
                    op_job=None,
                    latest_operation_state=OperationState.SUCCESS,
                )


class CreateDiskBackup(BackupJob):
    name = "CreateDiskBackup"
    action = "CreateDiskBackup"

    def run(self, job: Job) -> None:
        world = self.world
        disk, backup = self.subjects(job)
        if disk is None or backup is None:
            return self.compensate(job, "disk or disk backup no longer exists")
        world.discard_snapshot_data(
            disk.disk_id, backup.disk_backup_id, disk.instance_id, fence=fence(world, job)
        )
        shown = self.progress(job, backup)

        def copy() -> str:
            try:
                return self._copy(job, disk, backup, shown)
            except storage.SnapshotExists as exc:  # an earlier attempt's (see create_snapshot)
                raise jobs.Deferred(f"data of an earlier attempt appeared: {exc}") from exc

        try:
            checksum = retry_busy(copy)
        except (storage.StorageError, compute.ComputeError) as exc:
            return self.compensate(job, f"disk backup copy failed: {exc}")
        shown.finish()
        self.succeed(job, backup.disk_backup_id, checksum)

    def _copy(self, job: Job, disk: Disk, backup: DiskBackup, shown: Progress) -> str:
        world, machine = self.world, self.world.compute
        instance = None
        if disk.instance_id is not None:
            with world.read() as conn:
                instance = db.get_instance(conn, disk.instance_id, tags=False)
        live = (
            instance is not None
            and isinstance(machine, LiveSnapshotCompute)
            and world.storage.capabilities.live_snapshot
            and world.machine_state(instance) == "RUNNING"
        )
        if live and instance is not None and isinstance(machine, LiveSnapshotCompute):
            running = instance.instance_id

            def take(tag: str) -> None:
                world.hold(job)
                if not machine.internal_snapshot(running, tag, disk.disk_id):
                    raise storage.DiskBusy("the machine stopped while being backed up")

            return world.storage.create_snapshot_live(
                disk.disk_id, backup.disk_backup_id, take, shown, fence=fence(world, job)
            )
        return world.storage.create_snapshot(
            disk.disk_id, backup.disk_backup_id, shown, fence=fence(world, job)
        )

    def undo(self, conn: Connection, job: Job) -> None:
        if job.snapshot_id:
            db.delete_disk_backups(conn, [job.snapshot_id])  # the disk's quota given back

    def undone(self, job: Job) -> None:
        if job.snapshot_id and job.disk_id:
            ref = storage.SnapshotRef(job.disk_id, job.snapshot_id)
            self.world.discard_deleted_snapshots({ref: job.instance_id})


class ApplyDiskBackup(BackupJob):
    name = "ApplyDiskBackup"
    action = "ApplyDiskBackup"

    def run(self, job: Job) -> None:
        world = self.world
        disk, backup = self.subjects(job)
        if disk is None or backup is None or backup.checksum is None:
            return self.compensate(job, "disk or disk backup no longer exists")
        if job.instance_id is not None:
            try:
                self._stop(job, job.instance_id)
            except compute.ComputeError as exc:
                return self.compensate(job, f"could not stop the instance: {exc}")
        shown = self.progress(job, backup)
        checksum = backup.checksum
        try:
            retry_busy(
                lambda: world.storage.restore_snapshot(
                    disk.disk_id, backup.disk_backup_id, checksum, shown, fence=fence(world, job)
                )
            )
        except storage.ChecksumMismatch as exc:  # (as ApplySnapshot: marked, never applied)
            with world.job_write(job) as conn:
                db.update_disk_backup(conn, backup.disk_backup_id, corrupt=1)
            return self.compensate(job, f"disk backup data failed verification: {exc}")
        except storage.StorageError as exc:
            return self.compensate(job, f"disk backup rollback failed: {exc}")
        shown.finish()
        self.succeed(job, backup.disk_backup_id)

    def _stop(self, job: Job, instance_id: str) -> None:
        """The instance the disk is attached to, forced off if it runs, then STOPPED."""
        world = self.world
        with world.read() as conn:
            instance = db.get_instance(conn, instance_id, tags=False)
        if instance is None:
            return
        if world.machine_state(instance) == "RUNNING":
            world.hold(job)
            world.compute.stop(instance_id, force=True)
        with world.job_write(job) as conn:
            db.update_instance(conn, instance_id, state=InstanceState.STOPPED)

    def undo(self, conn: Connection, job: Job) -> None:
        if job.snapshot_id:
            db.update_disk_backup(
                conn,
                job.snapshot_id,
                state=DiskBackupState.NORMAL,
                percent=100,
                latest_operation_state=OperationState.FAILED,
            )
