"""The asynchronous halves of the actions: one executor per durable job kind.

Every executor is idempotent (a job interrupted by a crash runs again from the start) and
ends by committing the final states and releasing its locks in one transaction.

Every write of a job's effects is fenced by the job's lease (``World.job_write``), and so is
every effect outside the database (``World.hold`` before a machine is started or stopped, the
storage ``fence`` before a disk or snapshot is published): a worker that stalled past its
lease and resumed finds ``LeaseLost`` at its next step and changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from sqlalchemy.exc import OperationalError

from lightkeeper import compute, storage
from lightkeeper.compute.base import LiveSnapshotCompute
from lightkeeper.domain.model import FAILED, SUCCESS, Instance
from lightkeeper.lighthouse.world import World
from lightkeeper.storage.base import LiveSnapshotStorage
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.database import is_lock_timeout
from lightkeeper.store.jobs import Job

logger = logging.getLogger("lightkeeper.operations")

T = TypeVar("T")
PROGRESS_INTERVAL = 0.2  # seconds between Percent updates in the database


class Progress:
    """Publishes a snapshot's Percent, paced so the operation lasts at least ``minimum`` s.

    Each write is fenced, so a worker that lost its lease stops at its next update."""

    def __init__(
        self, world: World, job: Job, snapshot_id: str, minimum: float, shown: int = -1
    ) -> None:
        """``shown``: what pollers already saw (a resumed job never makes Percent go back)."""
        self.world = world
        self.job = job
        self.snapshot_id = snapshot_id
        self.minimum = minimum
        self.started = time.monotonic()
        self.real = 0
        self.shown = shown
        self.last_write = 0.0
        self.lock = threading.Lock()

    def _paced(self) -> int:
        if self.minimum <= 0:
            return self.real
        elapsed = time.monotonic() - self.started
        return min(self.real, int(100 * elapsed / self.minimum))

    def __call__(self, percent: int) -> None:
        self.real = max(self.real, percent)
        self._publish(force=False)

    def _publish(self, force: bool) -> None:
        value = min(self._paced(), 99)  # 100 is written with the final state
        now = time.monotonic()
        with self.lock:
            if value <= self.shown or (not force and now - self.last_write < PROGRESS_INTERVAL):
                return
            self.shown, self.last_write = value, now
        try:
            with self.world.job_write(self.job) as conn:
                db.update_snapshot(conn, self.snapshot_id, percent=value)
        except OperationalError as exc:
            if not is_lock_timeout(exc):
                raise
            logger.info("Percent of %s not shown this time: database locked", self.snapshot_id)

    def finish(self) -> None:
        """Keep advancing until the minimum duration has passed."""
        while self.minimum > 0 and time.monotonic() - self.started < self.minimum:
            self._publish(force=True)
            time.sleep(min(PROGRESS_INTERVAL, self.minimum / 100))


class Operations:
    def __init__(self, world: World) -> None:
        self.world = world

    def executors(self) -> Mapping[str, Callable[[Job], None]]:
        return {
            "create_snapshot": self.create_snapshot,
            "apply_snapshot": self.apply_snapshot,
            "StartInstances": self.power,
            "StopInstances": self.power,
            "RebootInstances": self.power,
        }

    # -- snapshots --------------------------------------------------------------------------

    def create_snapshot(self, job: Job) -> None:
        world = self.world
        snapshot_id = job.snapshot_id or ""
        with world.read() as conn:
            instance = db.get_instance(conn, job.instance_id)
            snapshot = db.get_snapshot(conn, snapshot_id)
        if instance is None or snapshot is None:
            return self.give_up(job, "instance or snapshot no longer exists")
        world.discard_snapshot_data(snapshot_id, instance.instance_id)  # an interrupted try's
        progress = self._progress(job, snapshot_id, snapshot.percent)
        try:
            checksum = _retry_busy(lambda: self._snapshot_disk(job, instance, progress))
        except (storage.StorageError, compute.ComputeError) as exc:
            return self.give_up(job, f"snapshot copy failed: {exc}")
        progress.finish()
        with world.job_write(job) as conn:
            db.update_snapshot(
                conn,
                snapshot_id,
                state="NORMAL",
                percent=100,
                latest_operation_state=SUCCESS,
                checksum=checksum,
            )
            db.update_instance(conn, job.instance_id, disk_job=None)
            jobs.finish(conn, job, jobs.SUCCESS)

    def _progress(self, job: Job, snapshot_id: str, shown: int) -> Progress:
        return Progress(self.world, job, snapshot_id, self.world.options.operation_seconds, shown)

    def _fence(self, job: Job) -> storage.Fence:
        return lambda: self.world.hold(job)

    def _snapshot_disk(self, job: Job, instance: Instance, progress: Progress) -> str:
        """Through the running machine when both drivers can (crash-consistent, the guest
        keeps running), else a copy of the disk at rest."""
        world = self.world
        snapshot_id = job.snapshot_id or ""
        fence = self._fence(job)
        if (
            isinstance(world.compute, LiveSnapshotCompute)
            and isinstance(world.storage, LiveSnapshotStorage)
            and world.compute.status(instance.instance_id) == "RUNNING"
        ):
            machine = world.compute

            def take(tag: str) -> None:
                world.hold(job)
                if not machine.internal_snapshot(instance.instance_id, tag):
                    raise storage.DiskBusy("the machine stopped while being snapshotted")

            return world.storage.create_snapshot_live(
                instance.disk_id, snapshot_id, take, progress, fence=fence
            )
        return world.storage.create_snapshot(instance.disk_id, snapshot_id, progress, fence=fence)

    def apply_snapshot(self, job: Job) -> None:
        world = self.world
        snapshot_id = job.snapshot_id or ""
        with world.read() as conn:
            instance = db.get_instance(conn, job.instance_id)
            snapshot = db.get_snapshot(conn, snapshot_id)
        if instance is None or snapshot is None or snapshot.checksum is None:
            return self.give_up(job, "instance or snapshot no longer exists")
        try:
            if world.compute.status(job.instance_id) == "RUNNING":
                world.hold(job)
                world.compute.stop(job.instance_id, force=True)  # "forcibly shut down" first
            with world.job_write(job) as conn:
                db.update_instance(conn, job.instance_id, state="STOPPED")
        except compute.ComputeError as exc:
            return self.give_up(job, f"could not stop the instance: {exc}")
        progress = self._progress(job, snapshot_id, snapshot.percent)
        try:
            _retry_busy(
                lambda: world.storage.restore_snapshot(
                    instance.disk_id,
                    snapshot_id,
                    snapshot.checksum or "",
                    progress,
                    fence=self._fence(job),
                )
            )
        except storage.ChecksumMismatch as exc:
            with world.job_write(job) as conn:
                db.update_snapshot(conn, snapshot_id, corrupt=1)
            return self.give_up(job, f"snapshot data failed verification: {exc}")
        except storage.StorageError as exc:
            return self.give_up(job, f"rollback failed: {exc}")
        progress.finish()
        restart = world.options.restart_after_rollback and job.params.get("was_running", False)
        with world.job_write(job) as conn:
            db.update_snapshot(
                conn, snapshot_id, state="NORMAL", percent=100, latest_operation_state=SUCCESS
            )
            db.update_instance(
                conn,
                job.instance_id,
                state="STARTING" if restart else "STOPPED",
                latest_operation_state=SUCCESS,
                op_job=None,
                disk_job=None,
            )
            jobs.finish(conn, job, jobs.SUCCESS)
        if restart:
            self._restart_after_rollback(job)

    def _restart_after_rollback(self, job: Job) -> None:
        try:
            self.world.compute.start(job.instance_id)
            state = "RUNNING"
        except compute.ComputeError as exc:
            logger.warning("restart after rollback of %s failed: %s", job.instance_id, exc)
            state = "STOPPED"
        with self.world.write() as conn:
            db.update_instance(conn, job.instance_id, state=state)

    # -- power --------------------------------------------------------------------------------

    def power(self, job: Job) -> None:
        driver = self.world.compute
        try:
            self.world.hold(job)
            if job.kind == "StartInstances":
                driver.start(job.instance_id)
            elif job.kind == "StopInstances":
                driver.stop(job.instance_id, force=job.params.get("stop_type") == "HARD")
            else:
                driver.reboot(job.instance_id)
            state = driver.status(job.instance_id)
        except compute.ComputeError as exc:
            return self.give_up(job, f"{job.kind} failed: {exc}")
        with self.world.job_write(job) as conn:
            db.update_instance(
                conn, job.instance_id, state=state, latest_operation_state=SUCCESS, op_job=None
            )
            jobs.finish(conn, job, jobs.SUCCESS)

    # -- supervision ----------------------------------------------------------------------------

    def reconcile(self) -> int:
        """Make idle instances show what their machines really do (a VM that died on its own
        is STOPPED; one still running after a server restart is RUNNING). Returns changes."""
        world = self.world
        with world.read() as conn:
            idle = db.idle_instances(conn)
        changed = 0
        for instance_id, shown in idle:
            try:
                actual = world.compute.status(instance_id)
            except compute.ComputeError:
                continue
            if actual != shown:
                with world.write() as conn:
                    current = db.get_instance(conn, instance_id)
                    if current is not None and current.op_job is None and current.state == shown:
                        db.update_instance(conn, instance_id, state=actual)
                        changed += 1
        return changed

    # -- failure ------------------------------------------------------------------------------

    def give_up(self, job: Job, reason: str) -> None:
        """Fail the job cleanly: release every lock and quota it held, record why (only if
        this worker still holds the job: ``LeaseLost`` otherwise)."""
        logger.warning(
            "job %s (%s, request %s) failed: %s", job.id, job.kind, job.request_id, reason
        )
        world = self.world
        with world.job_write(job) as conn:
            instance = db.get_instance(conn, job.instance_id)
            if job.kind == "create_snapshot" and job.snapshot_id:
                db.delete_snapshots(conn, [job.snapshot_id])  # frees the quota it held
            elif job.kind == "apply_snapshot" and job.snapshot_id:
                db.update_snapshot(
                    conn,
                    job.snapshot_id,
                    state="NORMAL",
                    percent=100,
                    latest_operation_state=FAILED,
                )
            if instance is not None:
                values: dict[str, object] = {}
                if instance.disk_job == job.id:
                    values["disk_job"] = None
                if instance.op_job == job.id:
                    values.update(op_job=None, latest_operation_state=FAILED)
                    values["state"] = _settled_state(world, job.instance_id, instance.state)
                if values:
                    db.update_instance(conn, job.instance_id, **values)
            jobs.finish(conn, job, jobs.FAILED, reason[:1000])
        if job.kind == "create_snapshot" and job.snapshot_id:
            world.discard_deleted_snapshots({job.snapshot_id: job.instance_id})


def _settled_state(world: World, instance_id: str, current: str) -> str:
    """After a failed operation the instance shows what its machine really is doing."""
    try:
        return world.compute.status(instance_id)
    except compute.ComputeError:
        return current


def _retry_busy(operation: Callable[[], T], attempts: int = 20, pause: float = 0.1) -> T:
    """A disk briefly held (an admin write, an API probe) is waited for; one held longer is
    never failed on either: the job is deferred, keeping its locks. The holder may be a
    worker that stalled past its lease, so releasing the instance now could let it be
    started while that worker still writes its disk."""
    for _ in range(attempts - 1):
        try:
            return operation()
        except (storage.DiskBusy, storage.SnapshotBusy):
            time.sleep(pause)
    try:
        return operation()
    except (storage.DiskBusy, storage.SnapshotBusy) as exc:
        raise jobs.Deferred(str(exc)) from exc
