"""What the job kinds share (``lighthouse.jobs``): paced progress, the storage fence, the
snapshot copy, waiting out a briefly held disk; and the supervisor of idle instances.

Every write of a job's effects is fenced by the job's lease (``World.job_write``), and so is
every effect outside the database (``World.hold`` before a machine is started or stopped, the
storage ``fence`` before a disk or snapshot is published): a worker that stalled past its
lease and resumed finds ``LeaseLost`` at its next step and changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from lightkeeper import compute, storage
from lightkeeper.compute.base import LiveSnapshotCompute
from lightkeeper.domain.model import Instance, InstanceState, Snapshot
from lightkeeper.lighthouse.world import World
from lightkeeper.store import jobs
from lightkeeper.store import resources as db
from lightkeeper.store.database import is_lock_timeout
from lightkeeper.store.jobs import Job

logger = logging.getLogger("lightkeeper.operations")

T = TypeVar("T")
PROGRESS_INTERVAL = 0.2  # seconds between Percent updates in the database


PercentRecord = Callable[[Connection, str, int], None]


def _snapshot_percent(conn: Connection, snapshot_id: str, percent: int) -> None:
    db.update_snapshot(conn, snapshot_id, percent=percent)


class Progress:
    """Publishes a snapshot's Percent, paced so the operation lasts at least the pacing's
    ``operation_seconds``, or, in manual mode, no further than a test has allowed.

    Each write is fenced, so a worker that lost its lease stops at its next update."""

    def __init__(
        self,
        world: World,
        job: Job,
        snapshot_id: str,
        shown: int = -1,
        record: PercentRecord | None = None,
    ) -> None:
        """``shown``: what pollers already saw (a resumed job never makes Percent go back);
        ``record``: where Percent is written (a snapshot's row; a disk backup's)."""
        self.record = record or _snapshot_percent
        self.world = world
        self.job = job
        self.snapshot_id = snapshot_id
        self.minimum = world.pacing.operation_seconds
        self.manual = world.pacing.manual  # an operation keeps the mode it started in
        self.started = time.monotonic()
        self.real = 0
        self.shown = shown
        # The first Percent a PROGRESS_INTERVAL in too: an operation done by then commits only
        # its final state (a Percent of 99 committed just before the 100 was one commit in five
        # of a create).
        self.last_write = self.started
        self.lock = threading.Lock()

    def _paced(self) -> int:
        if self.manual:
            return min(self.real, self.world.pacing.allowed(self.snapshot_id))
        if self.minimum <= 0:
            return self.real
        elapsed = time.monotonic() - self.started
        return min(self.real, int(100 * elapsed / self.minimum))

    def __call__(self, percent: int) -> None:
        self.real = max(self.real, percent)
        self._publish()

    def _publish(self, force: bool = False) -> None:
        value = min(self._paced(), 99)  # 100 is written with the final state
        now = time.monotonic()
        with self.lock:
            if value <= self.shown or (now - self.last_write < PROGRESS_INTERVAL and not force):
                return
            self.shown, self.last_write = value, now
        try:
            with self.world.job_write(self.job) as conn:
                self.record(conn, self.snapshot_id, value)
        except OperationalError as exc:
            if not is_lock_timeout(exc):
                raise
            logger.info("Percent of %s not shown this time: database locked", self.snapshot_id)

    def finish(self) -> None:
        """Keep advancing until the minimum duration has passed, one commit per
        ``PROGRESS_INTERVAL`` at most (each is a fenced write transaction: one per 1 % of a
        paced operation kept the database's write lock busy a third of the time). A manual
        operation waits until a test allows 100, renewing its lease meanwhile (a reset that
        removed the job makes it stop here: ``LeaseLost``)."""
        if self.manual:
            pacing, allowed = self.world.pacing, -1
            while allowed < 100:
                allowed = pacing.wait(self.snapshot_id, allowed, PROGRESS_INTERVAL * 5)
                self.world.hold(self.job)
                self._publish(force=True)
            pacing.forget(self.snapshot_id)
            return
        while self.minimum > 0 and time.monotonic() - self.started < self.minimum:
            self._publish()
            time.sleep(min(PROGRESS_INTERVAL, self.minimum / 100))


def subjects(world: World, job: Job) -> tuple[Instance | None, Snapshot | None]:
    """The instance and snapshot a snapshot job works on, as they are now (None: gone)."""
    with world.read() as conn:
        return db.get_instance(conn, job.need_instance(), tags=False), db.get_snapshot(
            conn, job.snapshot_id or ""
        )


def progress(world: World, job: Job, snapshot_id: str, shown: int) -> Progress:
    """The Percent of ``snapshot_id`` while ``job`` copies it, paced by the options."""
    return Progress(world, job, snapshot_id, shown)


def fence(world: World, job: Job) -> storage.Fence:
    """The storage ``fence``: renew the lease right before a disk or snapshot is published."""
    return lambda: world.hold(job)


def snapshot_disk(world: World, job: Job, instance: Instance, progress: Progress) -> str:
    """Through the running machine when both drivers can (crash-consistent, the guest
    keeps running), else a copy of the disk at rest."""
    snapshot_id = job.snapshot_id or ""
    fence_ = fence(world, job)
    if (
        isinstance(world.compute, LiveSnapshotCompute)
        and world.storage.capabilities.live_snapshot
        and world.machine_state(instance) == "RUNNING"
    ):
        machine = world.compute

        def take(tag: str) -> None:
            world.hold(job)
            if not machine.internal_snapshot(instance.instance_id, tag):
                raise storage.DiskBusy("the machine stopped while being snapshotted")

        return world.storage.create_snapshot_live(
            instance.disk_id, snapshot_id, take, progress, fence=fence_
        )
    return world.storage.create_snapshot(instance.disk_id, snapshot_id, progress, fence=fence_)


def settled_state(world: World, instance: Instance) -> InstanceState | None:
    """What the machine really is doing, for an instance whose operation ended (failed or
    not); None when the driver cannot tell (``World.machine_state``: the recorded state
    when another node runs the machine)."""
    try:
        return InstanceState(world.machine_state(instance))
    except compute.ComputeError:
        return None


class Operations:
    """Supervision of the instances no operation is driving."""

    def __init__(self, world: World) -> None:
        self.world = world

    def reconcile(self) -> int:
        """Make idle instances show what their machines really do (a VM that died on its own
        is STOPPED; one still running after a server restart is RUNNING). Returns changes."""
        world = self.world
        with world.read() as conn:
            idle = db.idle_instances(conn, world.node)  # another node supervises its own
        changed = 0
        for instance in idle:
            instance_id, shown = instance.instance_id, instance.state
            actual = settled_state(world, instance)
            if actual is not None and actual != shown:
                with world.write() as conn:
                    current = db.get_instance(conn, instance_id, tags=False)
                    if current is not None and current.op_job is None and current.state == shown:
                        db.update_instance(conn, instance_id, state=actual)
                        changed += 1
        return changed


def retry_busy(operation: Callable[[], T], attempts: int = 20, pause: float = 0.1) -> T:
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
