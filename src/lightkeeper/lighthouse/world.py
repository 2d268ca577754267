"""What the Lighthouse use cases run against: the database, the drivers and the options.

Also the one place where driver failures become API errors, so every action reports a storage
or compute problem the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from lightkeeper import compute, storage
from lightkeeper.api.chaos import Faults
from lightkeeper.compute.base import LiveSnapshotCompute, PowerState
from lightkeeper.domain.model import Instance, InstanceState
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse.pacing import Pacing
from lightkeeper.storage import Fence, SnapshotRef
from lightkeeper.store import jobs, nodes, resources
from lightkeeper.store.database import is_lock_timeout, write
from lightkeeper.store.jobs import Job

logger = logging.getLogger("lightkeeper.world")

T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    snapshot_quota_per_instance: int = 2
    snapshot_quota_max: int = 10
    operation_seconds: float = 0.0
    quota_lock_timeout: float = 5.0
    max_queued_jobs: int = 1000
    restart_after_rollback: bool = False
    job_lease_seconds: float = 6.0


@dataclass
class World:
    engine: Engine
    storage: storage.StorageDriver
    compute: compute.ComputeDriver
    options: Options = field(default_factory=Options)
    notify: Callable[[], None] = lambda: None
    """Called after a job is committed (the worker's wake-up, given at construction)."""
    node: str | None = None
    """This server's node name (``--node``): which placed instances its compute runs."""
    faults: Faults = field(default_factory=Faults)
    """Faults a test armed (control API): the job faults are taken here, the call faults by
    the API front end, which is given the same registry."""
    pacing: Pacing = field(init=False)
    """How long operations last now (``options.operation_seconds`` at start; control API)."""

    def __post_init__(self) -> None:
        self.pacing = Pacing(self.options.operation_seconds)

    # -- what is this node's (issue #13): the one test every probe and job asks ---------------

    def runs(self, instance: Instance) -> bool:
        """This node's compute driver reaches the instance's machine: an unplaced one, one
        placed here, or on a node sharing this node's data dir on this host (the rule
        ``jobs.claim`` applies too, so a job this node runs always finds its machine; with a
        shared pool such as Ceph, nodes share no data dir)."""
        if instance.node is None or instance.node == self.node:
            return True
        with self.read() as conn:
            return instance.node in jobs.neighbours(conn, self.storage.pool, self.host)

    @property
    def host(self) -> str:
        """Where this node's neighbours are (``jobs.here``): none for a shared pool."""
        return jobs.here(not self.storage.capabilities.shared_pool)

    def reaches(self, pool: str | None) -> bool:
        """This node's storage is the pool a disk is in (a disk of no recorded pool: yes)."""
        return pool is None or pool == self.storage.pool

    def read(self) -> Connection:
        return self.engine.connect()

    @contextmanager
    def write(
        self, lock_timeout: float | None = None, lock_error: str | None = None
    ) -> Iterator[Connection]:
        """A write transaction; if ``lock_error`` is given, a lock timeout becomes that code."""
        try:
            with write(self.engine, lock_timeout) as conn:
                yield conn
        except OperationalError as exc:
            if lock_error is not None and is_lock_timeout(exc):
                raise ApiError(lock_error) from None
            raise

    @contextmanager
    def job_write(self, job: Job) -> Iterator[Connection]:
        """A write transaction that commits a job's effects only while this worker still
        holds the job's lease: ``LeaseLost`` (and a rollback) otherwise."""
        with self.write() as conn:
            jobs.fence(conn, job)
            yield conn

    def hold(self, job: Job) -> None:
        """Renew ``job``'s lease now or raise ``LeaseLost``: the fence in front of every
        effect outside the database (a disk published, a machine started or stopped)."""
        jobs.hold(self.engine, job, self.options.job_lease_seconds)

    def discard_snapshot_data(
        self,
        disk_id: str,
        snapshot_id: str,
        instance_id: str | None = None,
        *,
        fence: Fence | None = None,
    ) -> bool:
        """Best effort; True once the data is gone. A running machine that holds the image
        deletes the snapshot itself (nobody else may write the image). ``fence``: see
        ``StorageDriver.delete_snapshot`` (a job's discard; ``LeaseLost`` passes through)."""
        try:
            held = self.storage.capabilities.vm_holds_snapshots
            if held and instance_id is not None and isinstance(self.compute, LiveSnapshotCompute):
                self.compute.internal_snapshot_delete(instance_id, snapshot_id, disk_id)
            self.storage.delete_snapshot(disk_id, snapshot_id, fence=fence)
        except (storage.StorageError, compute.ComputeError) as exc:
            logger.warning("snapshot %s data kept for now: %s", snapshot_id, exc)
            return False
        return True

    def discard_deleted_snapshots(self, deleted: Mapping[SnapshotRef, str | None]) -> None:
        """Remove the data of snapshots whose records (snapshot -> instance id) were just
        deleted, and their tombstones with it. What cannot be removed now keeps its
        tombstone, which lets the next start delete it (server.py)."""
        gone = [
            ref.snapshot_id
            for ref, instance_id in deleted.items()
            if self.discard_snapshot_data(ref.disk_id, ref.snapshot_id, instance_id)
        ]
        if not gone:
            return
        try:
            with self.write() as conn:
                resources.forget_deleted_snapshots(conn, gone)
        except OperationalError as exc:  # harmless: the next start clears them
            logger.warning("tombstones of %s kept for now: %s", gone, exc)

    def machine_state(self, instance: Instance) -> PowerState:
        """What the instance's machine is doing, asked of this node's compute driver when it
        runs the instance; for one another node runs, the state the database records (that
        node's own jobs ask its machine again), except that the machine of an instance
        ``orphaned`` by a dead node is taken as gone. ComputeError passes."""
        if self.orphaned(instance):
            return "STOPPED"
        if not self.runs(instance):
            return "RUNNING" if instance.state == InstanceState.RUNNING else "STOPPED"
        return self.compute.status(instance.instance_id)

    def orphaned(self, instance: Instance) -> bool:
        """Placed on a node that is DOWN (its heartbeat stopped), with its disk in a shared
        pool this node reaches: this node may start it instead (StartInstances adopts it).
        Its old machine, if it still runs somewhere, is fenced off the disk first
        (``storage.fence_disk``), so two machines never write one disk."""
        if instance.node in (None, self.node) or not self.storage.capabilities.shared_pool:
            return False
        if not self.reaches(instance.system_disk.pool):
            return False
        found = nodes.get_node(self.engine, instance.node)
        return found is None or found.state(resources.utcnow()) == nodes.NodeState.DOWN

    def adopt(self, conn: Connection, instance: Instance) -> Instance:
        """Place an ``orphaned`` instance on this node, STOPPED (its machine died with its
        node), in the caller's transaction; the start job fences the disk before booting."""
        logger.warning(
            "%s: its node %s is down; placed on %s", instance.instance_id, instance.node, self.node
        )
        resources.update_instance(
            conn, instance.instance_id, node=self.node, state=InstanceState.STOPPED
        )
        adopted = resources.get_instance(conn, instance.instance_id, instance.account_id)
        assert adopted is not None
        return adopted

    def power_state(self, instance: Instance) -> PowerState:
        try:
            return self.machine_state(instance)
        except compute.StatusUnavailable:
            raise ApiError("FailedOperation.DescribeInstanceStatus") from None
        except compute.ComputeError:
            raise ApiError("InternalError.DescribeInstanceStatus") from None

    def check_disk_usable(
        self, disk_id: str, pool: str | None = None, *, machine_stopped: bool = True
    ) -> None:
        """The disk image exists and nobody else holds it: no operation of ours, and, while
        the instance's machine is stopped (so no machine of ours has it open), no other
        client either (a shared pool's). Unknown outside the disk's pool: the job, on a node
        of that pool, checks again (and fails cleanly)."""
        if not self.reaches(pool):
            return
        if not self.storage.disk_exists(disk_id):
            raise ApiError("ResourceNotFound.DiskNotFound")
        try:
            with self.storage.lock_disk(disk_id):
                pass
            if machine_stopped and self.storage.held_elsewhere(disk_id):
                raise storage.DiskBusy(disk_id)
        except storage.DiskBusy:
            raise ApiError("UnsupportedOperation.DiskBusy") from None

    def check_snapshot_usable(
        self, disk_id: str, snapshot_id: str, pool: str | None = None
    ) -> None:
        if not self.reaches(pool):  # as for check_disk_usable
            return
        missing = ApiError("FailedOperation.SnapshotOperationFailed")
        if not self.storage.snapshot_exists(disk_id, snapshot_id):
            raise missing
        try:
            with self.storage.lock_snapshot(disk_id, snapshot_id):
                pass
        except storage.SnapshotBusy:
            raise ApiError("UnsupportedOperation.SnapshotBusy") from None
        except storage.SnapshotNotFound:  # deleted since it was seen (a racing delete)
            raise missing from None


def probe(check: Callable[[], T]) -> Callable[[], T]:
    """Run a driver check now, before the write transaction (it may wait on a machine or a
    lock); the returned callable answers its result, or raises its refusal, later: at the
    check's place in the order of refusals, inside the transaction."""
    try:
        value = check()
    except ApiError as exc:
        refusal = exc

        def refuse() -> T:
            raise refusal

        return refuse
    return lambda: value
