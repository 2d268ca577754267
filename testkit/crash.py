"""Crash harness: a random workload through the official SDK against the real server, which is
killed with SIGKILL at random moments and restarted; after every restart the invariants of
docs/reliability.md are checked against a model of what each disk and snapshot may contain.

Used by tests/reliability/test_crash_harness.py (CI sizes) and tools/crash_harness.py (long
runs). Every kill point is one server lifetime: start, settle, check, drive, kill. A
``stalled-owner`` point instead runs a second server on the same data dir and SIGSTOPs the one
that owns a running job past the job's lease (testkit/stall.py), then checks the same.

``Config.database`` puts the records in PostgreSQL instead of the data dir's SQLite file;
``Config.nodes`` runs that many servers (nodes) on one database and one data dir, the
workload spread over them: each kill point kills one (the owner of a running job when there
is one), a survivor must take its jobs over once their lease ran out, and only then is the
killed one started again (issue #13).

The snapshots' integrity (issue #14): some server lifetimes scrub continuously, the
``in-scrub`` point kills one while its scrubber reads, the ``before-table`` point has it
kill itself just before it writes a block table (after a snapshot's data, before the table
that vouches for it: LIGHTKEEPER_FAULTS=storage.table:kill:1), and at a restart a byte only
one snapshot holds may be flipped behind the server's back (testkit/corruption.py). A good
snapshot must never be marked corrupt; a planted one must never be applied nor verify.

Disk backups (issue #18): ``Config.data_disks`` unattached data disks join the instances as
models of their own, whose copies are disk backups (CreateDiskBackup, ApplyDiskBackup,
DeleteDiskBackups, ModifyDiskBackupsAttribute) on the same engine and under the same kills;
their contents are followed by block checksum (``disk checksum``, ``snapshot checksum``),
hole-cheap on a 10 GB disk where a sha256 is not. Corruption is planted in backups as in
snapshots (the scrubber reads both; ApplyDiskBackup refuses a corrupt one).
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models

from lightkeeper.compute.qemu import QemuDriver
from testkit import corruption, world
from testkit.datadir import FinishedJobs, Store, corrupt_marks, job_rows, owner_pid, running_jobs
from testkit.datadir import stored_snapshots as stored_snapshot_ids
from testkit.server import Account, Server, free_port
from testkit.stall import LEASE_ENV, TAKEOVER_BOUND, Stall, extra_seconds, stall_owner

MiB = 1024 * 1024
SETTLE_SECONDS = 15.0
LOCK_REFUSALS = frozenset(
    {
        "UnsupportedOperation.LatestOperationUnfinished",
        "UnsupportedOperation.DiskLatestOperationUnfinished",
        "OperationDenied.InstanceOperationInProgress",
        "UnsupportedOperation.DiskBusy",
        "UnsupportedOperation.SnapshotBusy",
        "UnsupportedOperation.InvalidSnapshotState",
    }
)
KILL_STRATEGIES = (
    "timer",
    "after-accept",
    "in-copy",
    "at-finish",
    "idle-write",
    "before-table",
    "in-scrub",
)
BEFORE_TABLE, IN_SCRUB = "before-table", "in-scrub"
TABLE_KILL = {"LIGHTKEEPER_FAULTS": "storage.table:kill:1"}
"""A before-table lifetime's server kills itself at its first block-table write."""
CORRUPT_REFUSAL = "FailedOperation.SnapshotOperationFailed"
CORRUPT_BACKUP_REFUSAL = "UnsupportedOperation.InvalidDiskBackupState"  # (ApplyDiskBackup's)
STALLED_OWNER = "stalled-owner"
STRATEGIES = (*KILL_STRATEGIES, STALLED_OWNER)
SNAPSHOT_JOBS = ("create_snapshot", "apply_snapshot", "CreateDiskBackup", "ApplyDiskBackup")
BACKUP_QUOTA = 3
BACKUP_PREFIX = "lhbak-"


class ServerDied(Exception):
    """The server was killed while a request was in flight: its outcome is unknown."""


@dataclass
class Config:
    storage: str
    kills: int
    work_dir: Path
    compute: str = "null"
    seed: int = 0
    instances: int = 3
    big_data_mib: int = 128
    """Real data written to the first instance, so copies of it take measurable time."""
    guest: tuple[Path, Path] | None = None
    accel: str = "tcg"
    settle_seconds: float = SETTLE_SECONDS
    strategies: tuple[str, ...] = KILL_STRATEGIES
    """Each fault point picks one of these at random (STRATEGIES: every kind there is)."""
    cycle: bool = False
    """Take the strategies in turn instead of at random (a short run meets each)."""
    scrub_share: float = 0.5
    """Share of server lifetimes that scrub continuously (every snapshot due 1 s after its
    last check, 16-64 MiB/s); an in-scrub lifetime always does."""
    plant_rate: float = 0.1
    """Chance, at each restart of a single node, that one byte of a snapshot is corrupted
    (at most one corrupt snapshot per instance at a time)."""
    job_lease_seconds: float | None = None
    """Passed to the servers as LIGHTKEEPER_JOB_LEASE_SECONDS (a short lease: short stalls)."""
    database: str | None = None
    """A PostgreSQL URL (testkit/postgres.py) for the servers' records; None: SQLite."""
    nodes: int = 1
    """Servers on the one database and data dir (kill points kill one of them)."""
    data_disks: int = 1
    """Unattached data disks (10 GB, backup quota 3) whose backups the workload takes,
    applies and deletes next to the instances' snapshots."""
    rbd_namespace: str = ""
    """storage rbd: the RADOS namespace of the run (in $CEPH_CONF's cluster, pool rbd)."""
    log: Callable[[str], None] = lambda _: None
    on_kill: Callable[[Stats], None] = lambda _: None
    """Called after every kill point has been checked (long runs save progress with it)."""


@dataclass
class Pending:
    kind: str  # create | apply | delete | power
    snapshot_id: str | None = None
    before: str | None = None  # disk content when the operation was requested
    uncertain: bool = False  # the request was in flight when the server died
    action: str | None = None  # power: StartInstances or StopInstances


@dataclass
class InstanceModel:
    instance_id: str  # the target of the operations: an instance, or a data disk itself
    disk_id: str
    content: str | None  # sha256 of the disk; None = written by a running guest (unknown)
    running: bool
    pending: Pending | None = None
    touched: bool = True  # may have changed since its content was last measured
    stale: bool = False  # written since last measured: measured before a create or apply
    data_disk: bool = False  # an unattached data disk (instance_id is its disk id): backups


@dataclass(frozen=True)
class CopyView:
    """A snapshot or a disk backup as described now, in the terms the harness follows."""

    copy_id: str
    disk_id: str
    state: str  # SnapshotState / DiskBackupState
    percent: int
    operation: str
    operation_state: str

    @property
    def applied(self) -> bool:
        """Its latest operation rolled a disk back to it."""
        return self.operation in ("RollbackInstanceSnapshot", "ApplyDiskBackup")


def snapshot_view(s: Any) -> CopyView:
    return CopyView(s.SnapshotId, s.DiskId, s.SnapshotState, s.Percent, s.LatestOperation or "",
                    s.LatestOperationState or "")  # fmt: skip


def backup_view(b: Any) -> CopyView:
    return CopyView(b.DiskBackupId, b.DiskId, b.DiskBackupState, b.Percent,
                    b.LatestOperation or "", b.LatestOperationState or "")  # fmt: skip


@dataclass
class SnapshotModel:
    snapshot_id: str
    instance_id: str
    content: str | None  # None until first verified (live snapshot of a running guest)
    touched: bool = True
    corrupt: bool = False  # a byte of its data was flipped behind the server's back


@dataclass
class Stats:
    storage: str
    compute: str
    seed: int
    database: str = "sqlite"
    nodes: int = 1
    kills: int = 0
    restarts: int = 0
    takeovers: int = 0  # jobs of a killed node taken over by a survivor (nodes > 1)
    operations: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    strategies: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    stalls: list[Stall] = field(default_factory=list)
    max_settle_seconds: float = 0.0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "storage": self.storage,
            "compute": self.compute,
            "seed": self.seed,
            "database": self.database,
            "nodes": self.nodes,
            "kills": self.kills,
            "restarts": self.restarts,
            "takeovers": self.takeovers,
            "operations": dict(self.operations),
            "operations_total": sum(self.operations.values()),
            "refusals": dict(self.refusals),
            "kill_strategies": dict(self.strategies),
            "outcomes": dict(self.outcomes),
            "checks": dict(self.checks),
            "violations": self.violations,
            "stalls": [s.as_dict() for s in self.stalls],
            "max_settle_seconds": round(self.max_settle_seconds, 2),
            "seconds": round(self.seconds, 1),
        }


class CrashHarness:
    def __init__(self, config: Config) -> None:
        if config.nodes > 1 and STALLED_OWNER in config.strategies:
            raise ValueError("the stalled-owner fault runs with one node (it adds the second)")
        self.cfg = config
        self.rng = random.Random(config.seed)
        engine = "sqlite" if config.database is None else "postgresql"
        self.stats = Stats(config.storage, config.compute, config.seed, engine, config.nodes)
        lease = config.job_lease_seconds
        env = {} if lease is None else {LEASE_ENV: str(lease)}
        data_dir = config.work_dir / "data"
        self.store = Store(data_dir, config.database)
        self.nodes = [
            Server(data_dir, free_port(), self._args(0.0), env=env, database=config.database)
            for _ in range(config.nodes)
        ]
        self.server = self.nodes[0]  # admin commands (any node's would do) and logs
        self.victim = self.server  # the node the last kill point killed
        self.kill_lock = threading.Lock()
        self.peer: Server | None = None  # the second server of a stalled-owner point
        self.stopped: Server | None = None  # the one SIGSTOPped right now: never asked
        self.finished = FinishedJobs()
        self.started_after_takeover: set[str] = set()
        self.planted: set[str] = set()  # every snapshot ever corrupted, deleted ones too
        self.marked_planted: set[str] = set()  # those the server has been seen to mark
        self.upcoming = self._choose_strategy(0)  # the point the next lifetime is set up for
        self.big: InstanceModel | None = None  # the instance holding the real data
        self.observed_at = 0.0
        self.instances: dict[str, InstanceModel] = {}
        self.snapshots: dict[str, SnapshotModel] = {}
        self.killed = threading.Event()
        self.fault_met = False  # the point's own fault happened (not the fallback timer)
        self.account: Account | None = None
        # Disk writes and content checks run in the background (sha256 of a 1 GiB disk costs
        # seconds), while the workload goes on with the other instances; an instance with
        # background work is left alone until it is done.
        self.pool = ThreadPoolExecutor(max_workers=2)
        self.busy: dict[str, Future[None]] = {}
        self.lock = threading.Lock()

    # -- setup ----------------------------------------------------------------------------

    def _choose_strategy(self, point: int) -> str:
        strategies = self.cfg.strategies
        if self.cfg.cycle:
            return strategies[point % len(strategies)]
        return self.rng.choice(strategies)

    def _lifetime(self, server: Server, operation_seconds: float) -> None:
        """Set up the server's next lifetime for the upcoming point: its pacing, and whether
        it scrubs (always before an in-scrub point)."""
        server.args = self._args(operation_seconds)
        if self.upcoming == IN_SCRUB or self.rng.random() < self.cfg.scrub_share:
            bandwidth = self.rng.choice([16, 32, 64])
            server.args += ("--scrub-interval", "1", "--scrub-bandwidth", str(bandwidth))

    def _args(self, operation_seconds: float) -> tuple[str, ...]:
        cfg = self.cfg
        args = [
            "--no-rate-limit",
            "--storage",
            cfg.storage,
            "--compute",
            cfg.compute,
            "--transition-seconds",
            "0" if cfg.compute == "qemu" else "0.2",
            "--operation-seconds",
            str(operation_seconds),
            "--snapshot-quota-per-instance",
            "3",
        ]
        if cfg.storage == "rbd":
            args += ["--rbd-namespace", cfg.rbd_namespace]
        if cfg.compute == "qemu":
            assert cfg.guest is not None, "the qemu compute driver needs the test guest"
            kernel, initrd = cfg.guest
            args += ["--qemu-kernel", str(kernel), "--qemu-initrd", str(initrd)]
            args += ["--qemu-accel", cfg.accel, "--soft-stop-timeout", "10"]
        return tuple(args)

    def _setup(self) -> None:
        server = self.server
        server.data_dir.parent.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:  # one after the other: the first creates the schema
            self._lifetime(node, 0.0)
            self._start(node)
        self.account = world.new_account(server, "crash")
        big = self.cfg.big_data_mib * MiB
        for n in range(self.cfg.instances):
            # With real VMs the first instance runs its guest (live snapshots); the others
            # start stopped, so their disks can be written and checked.
            state = "RUNNING" if self.cfg.compute == "qemu" and n == 0 else "STOPPED"
            created = world.create_instance(server, self.account, "ap-guangzhou", "--state", state)
            model = InstanceModel(
                created["InstanceId"], created["SystemDisk"]["DiskId"], None, state == "RUNNING"
            )
            self.instances[model.instance_id] = model
            if not model.running:
                if big:
                    self.big = model
                size, big = max(big, MiB), 0  # one instance holds real data: copies take time
                self._write(model, self.rng.randrange(0, 64) * MiB, self.rng.randbytes(size))
                self._measure(model, {None})
        for _ in range(self.cfg.data_disks):
            self._add_data_disk()

    def _add_data_disk(self) -> None:
        """An unattached 10 GB data disk through the SDK, with some data written."""
        c = self.client()
        request = models.CreateDisksRequest()
        request.Zone, request.DiskSize, request.DiskType = "ap-guangzhou-3", 10, "CLOUD_PREMIUM"
        request.DiskChargePrepaid = models.DiskChargePrepaid()
        request.DiskChargePrepaid.Period = 1
        request.DiskBackupQuota = BACKUP_QUOTA
        (disk_id,) = c.CreateDisks(request).DiskIdSet
        world.wait_for(
            lambda: _data_disks(c, [disk_id]),
            lambda found: [d.DiskState for d in found] == ["UNATTACHED"],
        )
        model = InstanceModel(disk_id, disk_id, None, False, data_disk=True)
        self.instances[disk_id] = model
        self._write(model, self.rng.randrange(0, 64) * MiB, self.rng.randbytes(MiB))
        self._measure(model, {None})

    def servers(self) -> list[Server]:
        """Every node, and the peer of a stalled-owner point."""
        return [*self.nodes, *([self.peer] if self.peer is not None else [])]

    def client(self) -> lighthouse_client.LighthouseClient:
        """Through a random live node, or either of the two in a stalled-owner point (never
        the stopped one)."""
        assert self.account is not None
        live = [
            s
            for s in self.servers()
            if s is not self.stopped and s.process is not None and s.process.poll() is None
        ] or [self.server]
        return world.client(live[0] if len(live) == 1 else self.rng.choice(live), self.account)

    # -- the run ----------------------------------------------------------------------------

    def run(self) -> Stats:
        started = time.monotonic()
        try:
            cfg = self.cfg
            cfg.log(
                f"seed {cfg.seed}: {cfg.storage}/{cfg.compute}, {cfg.kills} points of "
                f"{', '.join(cfg.strategies)}, job lease {cfg.job_lease_seconds or 'default'}"
            )
            self._setup()
            cfg.log(f"set up in {time.monotonic() - started:.1f}s")
            while self.stats.kills < self.cfg.kills:
                t0 = time.monotonic()
                strategy = self.upcoming
                self.stats.strategies[strategy] += 1
                self.cfg.log(f"kill point {self.stats.kills + 1}: {strategy}")
                if strategy == STALLED_OWNER:
                    self._stalled_owner_point()
                    t1 = time.monotonic()
                    self.upcoming = self._choose_strategy(self.stats.kills + 1)
                    if self.upcoming == IN_SCRUB:
                        self._relaunch()  # (its lifetime was set up for the stall)
                else:
                    self._drive_until_killed(strategy)
                    t1 = time.monotonic()
                    orphaned = self._reap_victim()
                    self._await_takeover(orphaned)
                    self._restart()
                self.stats.kills += 1
                t2 = time.monotonic()
                self._settle_and_check(full=False)
                t3 = time.monotonic()
                self.cfg.log(
                    f"  drive {t1 - t0:.1f}s restart {t2 - t1:.1f}s settle {t3 - t2:.1f}s "
                    f"busy {len(self.busy)}"
                )
                self.stats.seconds = time.monotonic() - started
                self.cfg.on_kill(self.stats)
            self._drain()
            self._ensure_a_snapshot()
            self._settle_and_check(full=True)
            self._drain()
            self._verify_all()
            self._check_corrupt_marks()
            self._check_guests_thawed()
            self.cfg.log("final check done")
            self._check_job_history()
        finally:
            self.stats.seconds = time.monotonic() - started
            self.pool.shutdown(wait=True)
            for server in self.servers():
                server.stop()
            self._kill_leftover_vms()
        return self.stats

    def _restart(self) -> None:
        self.upcoming = self._choose_strategy(self.stats.kills + 1)
        self._lifetime(self.victim, self.rng.choice([0.0, 0.0, 0.0, 0.4, 1.0]))
        self._maybe_plant()
        self._start(self.victim)
        self.stats.restarts += 1

    def _maybe_plant(self) -> None:
        """While the one server is down: perhaps flip a byte of a snapshot (and of every
        snapshot sharing it) whose content is known and that no operation in flight was
        taking or applying, of an instance with no corrupt snapshot yet and no guest
        running. qcow2 keeps a byte to the snapshots alone only where the disk was written
        since: if there is none, the disk is written first (as the workload would)."""
        if len(self.nodes) > 1 or self.rng.random() >= self.cfg.plant_rate:
            return
        guests = self.cfg.compute == "qemu"
        spoilt = {s.instance_id for s in self.snapshots.values() if s.corrupt}
        in_flight = {m.pending.snapshot_id for m in self.instances.values() if m.pending}
        allowed = {
            s.snapshot_id
            for s in self.snapshots.values()
            if s.content is not None and s.snapshot_id not in in_flight
        }
        candidates = [
            s
            for s in self.snapshots.values()
            if s.snapshot_id in allowed
            and s.instance_id not in spoilt
            and not (guests and self.instances[s.instance_id].running)
        ]
        if not candidates:
            return
        # Each in a random order until one takes: a disk with a snapshot whose table a kill
        # left unwritten has no byte known to be its snapshots' alone (one pick could land
        # on such disks at every restart and plant nothing in a whole run).
        self.rng.shuffle(candidates)
        planted = None
        for snap in candidates:
            model = self.instances[snap.instance_id]
            planted = self._plant_into(model, snap.snapshot_id, allowed)
            if planted is not None:
                break
        if planted is None:
            self.stats.outcomes["no byte only snapshots hold: nothing planted"] += 1
            return
        for snapshot_id in planted.snapshot_ids:
            self.snapshots[snapshot_id].corrupt = self.snapshots[snapshot_id].touched = True
        self.planted |= planted.snapshot_ids
        self.stats.outcomes["corruption planted"] += 1
        self.stats.outcomes["snapshots corrupted"] += len(planted.snapshot_ids)
        held = ", ".join(sorted(planted.snapshot_ids))
        self.cfg.log(f"  planted a corrupt byte at {planted.offset} of {held}")

    def _plant_into(
        self, model: InstanceModel, snapshot_id: str, allowed: set[str]
    ) -> corruption.Planted | None:
        checks = self.busy.pop(model.instance_id, None)
        if checks is not None:  # its background checks may be reading the snapshot
            checks.result()
        data_dir, storage = self.server.data_dir, self.cfg.storage
        planted = corruption.plant(data_dir, storage, model.disk_id, snapshot_id, self.rng, allowed)
        offset = corruption.data_offset(data_dir, model.disk_id, snapshot_id)
        if planted is None and offset is not None and model.pending is None:
            self._write(model, offset, self.rng.randbytes(64 * 1024))
            planted = corruption.plant(
                data_dir, storage, model.disk_id, snapshot_id, self.rng, allowed
            )
        return planted

    def _relaunch(self) -> None:
        """A graceful restart into a lifetime set up for the upcoming point."""
        self.server.stop()
        self._lifetime(self.server, 0.0)
        self._start(self.server)

    def _arm_table_kill(self) -> None:
        """Before a before-table point, once the checks after the restart are done: one node
        is restarted gracefully (SIGTERM: its running jobs finish first) with the fault
        armed, so that it kills itself at its next block-table write, a table of the
        workload's own (a scrubber's reseal is not: that lifetime does not scrub)."""
        node = self.rng.choice(self.nodes)
        node.stop()
        node.args = self._args(self.rng.choice([0.0, 0.0, 0.4]))
        node.env = {**node.env, **TABLE_KILL}
        self._start(node)
        node.env = {k: v for k, v in node.env.items() if k not in TABLE_KILL}

    def _reap_victim(self) -> list[dict[str, Any]]:
        """Reap the killed node; with more nodes, the jobs it left RUNNING."""
        process = self.victim.process
        pid = process.pid if process is not None else None
        self.victim.stop(signal.SIGKILL)
        if len(self.nodes) == 1 or pid is None:
            return []
        return running_jobs(self.store, [pid])

    def _await_takeover(self, orphaned: list[dict[str, Any]]) -> None:
        """Before the killed node comes back: each job it left RUNNING is claimed by a
        survivor (another owner, a new epoch) or finished, within its lease and
        TAKEOVER_BOUND s more. A job nobody takes over is a violation."""
        if not orphaned:
            return
        deadline = max(float(j["lease_until"] or 0.0) for j in orphaned) - time.time()
        deadline = time.monotonic() + max(deadline, 0.0) + TAKEOVER_BOUND
        waiting = {j["id"]: j for j in orphaned}
        while waiting and time.monotonic() < deadline:
            for row in job_rows(self.store, f"id IN ({', '.join(map(str, waiting))})"):
                before = waiting[row["id"]]
                if row["owner"] != before["owner"] or row["state"] != "RUNNING":
                    del waiting[row["id"]]
                    self.stats.takeovers += 1
                    self.stats.outcomes[f"taken over by a survivor: {row['kind']}"] += 1
            time.sleep(0.1)
        self.stats.checks["jobs of a killed node taken over"] += len(orphaned)
        for job in waiting.values():
            self.stats.violations.append(
                f"job {job['id']} ({job['kind']} {job['instance_id']}) of the killed node "
                f"{self.victim.port} was not taken over by a survivor"
            )

    def _start(self, server: Server | None = None) -> None:
        """Start and wait for /healthz; on a loaded machine (a busy CI runner) a health check
        can take longer than the 0.5 s Server.start allows, so keep asking, more patiently."""
        server = server or self.server
        try:
            server.start(timeout=20)
            return
        except AssertionError:
            process = server.process
            if process is None or process.poll() is not None:
                raise
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200:
                    self.cfg.log("  (slow start)")
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server did not become healthy:\n{server.log()}")

    def _kill_leftover_vms(self) -> None:
        for pidfile in (self.server.data_dir / "vms").glob("*/qemu.pid"):
            try:
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
            except (ValueError, OSError):
                pass

    # -- killing ----------------------------------------------------------------------------

    def _kill_now(self, chosen: Server | None = None) -> None:
        with self.kill_lock:
            if self.killed.is_set():
                return
            victim = chosen or self._choose_victim()
            if victim.process is None:
                return
            self.victim = victim
            self.killed.set()
            victim.process.send_signal(signal.SIGKILL)

    def _choose_victim(self) -> Server:
        """The one node, or the owner of a running job (a snapshot job if any), or any."""
        if len(self.nodes) == 1:
            return self.server
        by_pid = {s.process.pid: s for s in self.nodes if s.process is not None}
        running = running_jobs(self.store, by_pid)
        copies = [j for j in running if j["kind"] in SNAPSHOT_JOBS]
        if running:
            self.stats.outcomes["killed the owner of a running job"] += 1
            job = self.rng.choice(copies or running)
            return by_pid[owner_pid(job["owner"]) or 0]
        self.stats.outcomes["killed a node running no job"] += 1
        return self.rng.choice(self.nodes)

    def _drive_until_killed(self, strategy: str) -> None:
        self.killed.clear()
        if strategy == BEFORE_TABLE:
            self._arm_table_kill()
        fallback = {"timer": self.rng.uniform(0.05, 2.0), BEFORE_TABLE: 5.0, IN_SCRUB: 8.0}
        timer = threading.Timer(fallback.get(strategy, 3.0), self._kill_now)
        timer.start()
        if strategy == IN_SCRUB:
            threading.Thread(target=self._kill_in_scrub, daemon=True).start()
        try:
            while not self.killed.is_set() and not self._died_by_itself(strategy):
                try:
                    self._step(strategy)
                except ServerDied:
                    # (a server that killed itself is reaped a moment after its sockets close)
                    deadline = time.monotonic() + 2
                    while not self._died_by_itself(strategy) and time.monotonic() < deadline:
                        time.sleep(0.02)
                    break
        finally:
            timer.cancel()
        self._kill_now()  # (a no-op unless the workload stopped on a live server)
        self.killed.wait(10)
        if strategy in fallback and strategy != "timer" and not self.fault_met:
            self.stats.outcomes[f"{strategy}: killed by the fallback timer"] += 1
        self.fault_met = False

    def _died_by_itself(self, strategy: str) -> bool:
        """A before-table lifetime's server SIGKILLs itself (storage/faults.py): that node
        is the victim of the point. Any other server that dies on its own is a violation."""
        with self.kill_lock:
            if self.killed.is_set():
                return True
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    self.victim = node
                    self.killed.set()
                    if strategy == BEFORE_TABLE:
                        self.fault_met = True
                        self.stats.outcomes["killed itself before a block table"] += 1
                    else:
                        self.stats.violations.append(
                            f"node {node.port} died on its own ({node.process.returncode})"
                        )
                    return True
        return False

    def _kill_in_scrub(self) -> None:
        """Kill a node 0-0.2 s after its scrubber is seen reading (its byte counter moved)."""
        seen = {id(node): _scrub_bytes(node) for node in self.nodes}
        while not self.killed.is_set():
            for node in self.nodes:
                now = _scrub_bytes(node)
                if now > seen[id(node)] >= 0:
                    time.sleep(self.rng.uniform(0, 0.2))
                    with self.kill_lock:
                        self.fault_met = not self.killed.is_set()
                    if self.fault_met:
                        self.stats.outcomes["killed while the scrubber read"] += 1
                    self._kill_now(node)
                    return
                seen[id(node)] = now
            time.sleep(0.02)

    # -- the stalled owner ------------------------------------------------------------------

    def _stalled_owner_point(self) -> None:
        """A second server on the data dir; the owner of a running job is stopped past its
        lease while the workload goes on through the other; once resumed, both serve a moment
        more. Then the stalled one stops gracefully (its late work done or abandoned before
        the checks) and the other carries on as the server: no restart, whose recovery would
        remove the very data a late publish leaves behind."""
        server = self.server
        peer = Server(server.data_dir, free_port(), server.args, env=server.env)
        self._start(peer)
        self.peer = peer
        stalled = self._drive_until_stalled()
        resumed = time.monotonic() + self.rng.uniform(1.0, 3.0)
        while time.monotonic() < resumed:
            self._step(STALLED_OWNER)
            self._observe_jobs()
        leaving = stalled or self.rng.choice([server, peer])
        leaving.stop()  # SIGTERM: it lets its running jobs finish (up to 5 s)
        self.server = peer if leaving is server else server
        self.nodes = [self.server]
        self.victim = self.server
        self.peer = None
        self._observe_jobs(every=0.0)

    def _drive_until_stalled(self) -> Server | None:
        """Drive the workload (a copy of the big disk first) through both servers; at a
        random moment while a job is RUNNING (a snapshot job if any), stall its owner."""
        assert self.peer is not None
        servers = {s.process.pid: s for s in (self.server, self.peer) if s.process is not None}
        self._directed_copy()
        deadline = time.monotonic() + 20
        at: float | None = None
        while time.monotonic() < deadline:
            self._step(STALLED_OWNER)
            self._observe_jobs()
            running = running_jobs(self.store, servers)
            now = time.monotonic()
            if not running:
                at = None
                continue
            at = at if at is not None else now + self.rng.uniform(0.0, 0.3)
            if now < at:
                continue
            copies = [j for j in running if j["kind"] in SNAPSHOT_JOBS]
            job = self.rng.choice(copies or running)
            pid = owner_pid(job["owner"])
            assert pid is not None
            self.stopped = servers[pid]
            try:
                stall = stall_owner(
                    self.store,
                    job,
                    pid,
                    extra_seconds(self.rng),
                    functools.partial(self._during_stall, job),
                )
            finally:
                self.stopped = None
            self.stats.stalls.append(stall)
            self.stats.outcomes[f"stall: {stall.outcome}"] += 1
            self.cfg.log(
                f"  stalled the owner of job {stall.job_id} ({stall.kind} {stall.instance_id}) "
                f"{stall.seconds:.1f}s, lease left {stall.lease_left:.1f}s: {stall.outcome}"
            )
            if not stall.outcome.startswith("resumed at once"):
                return servers[pid]
            at = None
        self.stats.outcomes["stall: no running job found"] += 1
        return None

    def _directed_copy(self) -> None:
        """Start a create or an apply on the instance holding the real data (the issue's
        case: a long copy runs when its owner is stopped). The checks still running in the
        background are waited for first, or the workload would find no idle instance."""
        model = self.big
        self._drain()
        if model is None or model.pending is not None or model.running:
            return
        if model.stale:
            self._measure(model, {None})  # its content must be known before it is copied
            self._drain()
        if self.rng.random() < 0.5:
            self._apply(model, STALLED_OWNER)  # (needs a snapshot with known content)
        if model.pending is None:
            self._create(model, STALLED_OWNER)

    def _during_stall(self, job: dict[str, Any]) -> None:
        """The workload through the other server, and the issue's dangerous move: once the
        stalled job's instance looks released, start it."""
        self._step(STALLED_OWNER)
        self._observe_jobs()
        model = self.instances.get(job["instance_id"])
        if model is None or model.pending is not None or model.running:
            return
        if model.instance_id in self.busy:
            return
        self._power(model, STALLED_OWNER)
        if model.pending is not None:
            self.started_after_takeover.add(model.instance_id)
            self.stats.outcomes["started while its old owner was stopped"] += 1

    def _background(self, model: InstanceModel, work: Callable[[], None]) -> None:
        """Runs after any background work already queued for the same instance."""
        before = self.busy.get(model.instance_id)

        def chained() -> None:
            if before is not None:
                before.result()
            work()

        self.busy[model.instance_id] = self.pool.submit(chained)

    def _drain(self) -> None:
        for future in list(self.busy.values()):
            future.result()
        self.busy.clear()

    def _idle(self) -> list[InstanceModel]:
        for instance_id, future in list(self.busy.items()):
            if future.done():
                future.result()  # re-raise what went wrong in the background
                del self.busy[instance_id]
        return [m for m in self.instances.values() if m.instance_id not in self.busy]

    def _step(self, strategy: str) -> None:
        idle = self._idle()
        if not idle:
            time.sleep(0.05)
            return
        model = self.rng.choice(idle)
        if model.pending is not None:
            self._poll(model, strategy)
            return
        choices = ["create", "create", "apply", "apply", "delete", "power", "rename", "write"]
        action = self.rng.choice(choices)
        if action == "write":
            if model.running:
                return
            self._write_idle(model, strategy)
        elif action in ("create", "apply") and model.stale:
            self._measure(model, {None})  # its content must be known before it is copied
        elif action == "create":
            self._create(model, strategy)
        elif action == "apply":
            self._apply(model, strategy)
        elif action == "delete":
            self._delete(model)
        elif action == "power":
            if not model.data_disk:
                self._power(model, strategy)
        else:
            self._rename()
        time.sleep(self.rng.uniform(0, 0.05))

    def _ensure_a_snapshot(self) -> None:
        """The final check verifies every snapshot and backup: a run whose random workload
        deleted all it took (seen in a short stalled-owner run), or took no backup, gets one
        more of each kind, so that every run checks a snapshot's data and, with data disks,
        a backup's at least once."""
        for data_disk in (False, True):
            kind = [m for m in self.instances.values() if m.data_disk == data_disk]
            ids = {m.instance_id for m in kind}
            taken = [s for s in self.snapshots.values() if s.instance_id in ids]
            if taken or (not data_disk and self.stats.checks["snapshot verified"]):
                continue
            for model in kind:
                self._create(model, "final")
                if model.pending is not None:
                    break

    def _after_accept(self, strategy: str) -> None:
        if strategy == "after-accept":
            time.sleep(self.rng.uniform(0, 0.03))
            self._kill_now()
            raise ServerDied()

    # -- API calls ----------------------------------------------------------------------------

    def _call(self, name: str, request: Any) -> Any:
        """One SDK call; refusals (API errors) are returned as their code string."""
        try:
            return getattr(self.client(), name)(request)
        except TencentCloudSDKException as exc:
            network = str(exc.code).startswith(("ClientNetworkError", "ServerNetworkError"))
            if self.killed.is_set() or self._a_node_died(0.5 if network else 0.0):
                raise ServerDied() from exc
            if network:
                self.stats.violations.append(f"{name}: network error from a live server: {exc}")
                raise ServerDied() from exc
            self.stats.refusals[str(exc.code)] += 1
            if exc.code in LOCK_REFUSALS:  # the model only asks idle instances
                self.stats.violations.append(f"{name} refused, still locked: {exc.code}")
            return str(exc.code)

    def _a_node_died(self, within: float) -> bool:
        """A process that kills itself resets its connections a moment before it can be
        reaped (the kernel closes its sockets first): a network error is a death if one
        follows within a short wait."""
        deadline = time.monotonic() + within
        while True:
            if any(s.process is not None and s.process.poll() is not None for s in self.nodes):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _create(self, model: InstanceModel, strategy: str) -> None:
        live = [s for s in self.snapshots.values()]
        if len(live) >= 3 * len(self.instances):
            return
        request: Any
        if model.data_disk:
            if sum(s.instance_id == model.instance_id for s in live) >= BACKUP_QUOTA:
                return
            action, request = "CreateDiskBackup", models.CreateDiskBackupRequest()
            request.DiskId = model.disk_id
        else:
            action, request = "CreateInstanceSnapshot", models.CreateInstanceSnapshotRequest()
            request.InstanceId = model.instance_id
        model.pending = Pending("create", None, model.content, uncertain=True)
        model.touched |= self.cfg.storage == "qcow2"  # qcow2 snapshots live in the image
        self.stats.operations[action] += 1
        reply = self._call(action, request)
        if isinstance(reply, str):
            model.pending = None
            return
        snapshot_id = str(reply.DiskBackupId if model.data_disk else reply.SnapshotId)
        model.pending = Pending("create", snapshot_id, model.content)
        self.snapshots[snapshot_id] = SnapshotModel(snapshot_id, model.instance_id, model.content)
        self._after_accept(strategy)

    def _apply(self, model: InstanceModel, strategy: str) -> None:
        mine = [
            s
            for s in self.snapshots.values()
            if s.instance_id == model.instance_id and s.content is not None
        ]
        if not mine:
            return
        snap = self.rng.choice(mine)
        request: Any
        if model.data_disk:
            action, request = "ApplyDiskBackup", models.ApplyDiskBackupRequest()
            request.DiskId, request.DiskBackupId = model.disk_id, snap.snapshot_id
        else:
            action, request = "ApplyInstanceSnapshot", models.ApplyInstanceSnapshotRequest()
            request.InstanceId, request.SnapshotId = model.instance_id, snap.snapshot_id
        model.pending = Pending("apply", snap.snapshot_id, model.content, uncertain=True)
        model.touched = True
        self.stats.operations[action] += 1
        reply = self._call(action, request)
        if isinstance(reply, str):
            model.pending = None
            if reply == (CORRUPT_BACKUP_REFUSAL if model.data_disk else CORRUPT_REFUSAL):
                self._corrupt_refused(snap)
            return
        model.pending.uncertain = False
        self._after_accept(strategy)

    def _corrupt_refused(self, snap: SnapshotModel) -> None:
        """Apply refused the snapshot as corrupt: right only for a planted one."""
        with self.lock:
            if snap.corrupt:
                self.stats.checks["planted corruption found: Apply refused"] += 1
            else:
                self.stats.violations.append(f"a good snapshot, {snap.snapshot_id}, refused")

    def _delete(self, model: InstanceModel) -> None:
        mine = [s for s in self.snapshots.values() if s.instance_id == model.instance_id]
        if not mine:
            return
        snap = self.rng.choice(mine)
        request: Any
        if model.data_disk:
            action, request = "DeleteDiskBackups", models.DeleteDiskBackupsRequest()
            request.DiskBackupIds = [snap.snapshot_id]
        else:
            action, request = "DeleteSnapshots", models.DeleteSnapshotsRequest()
            request.SnapshotIds = [snap.snapshot_id]
        model.pending = Pending("delete", snap.snapshot_id, model.content, uncertain=True)
        self.stats.operations[action] += 1
        reply = self._call(action, request)
        model.pending = None
        if not isinstance(reply, str):
            del self.snapshots[snap.snapshot_id]

    def _power(self, model: InstanceModel, strategy: str) -> None:
        if self.cfg.compute == "qemu" and model.running and self.rng.random() < 0.7:
            return  # keep guests running most of the time: live snapshots are the point
        action = "StopInstances" if model.running else "StartInstances"
        request = getattr(models, f"{action}Request")()
        request.InstanceIds = [model.instance_id]
        model.pending = Pending("power", None, model.content, uncertain=True, action=action)
        self.stats.operations[action] += 1
        reply = self._call(action, request)
        if isinstance(reply, str):
            model.pending = None
            return
        model.pending.uncertain = False
        self._after_accept(strategy)

    def _rename(self) -> None:
        if not self.snapshots:
            return
        snap = self.rng.choice(list(self.snapshots.values()))
        name = f"crash-{self.rng.randrange(10**6)}"
        request: Any
        if snap.snapshot_id.startswith(BACKUP_PREFIX):
            action = "ModifyDiskBackupsAttribute"
            request = models.ModifyDiskBackupsAttributeRequest()
            request.DiskBackupIds, request.DiskBackupName = [snap.snapshot_id], name
        else:
            action, request = "ModifySnapshotAttribute", models.ModifySnapshotAttributeRequest()
            request.SnapshotId, request.SnapshotName = snap.snapshot_id, name
        self.stats.operations[action] += 1
        self._call(action, request)

    def _poll(self, model: InstanceModel, strategy: str) -> None:
        """Follow the pending operation; kill in the middle of it or near its end if asked."""
        pending = model.pending
        assert pending is not None
        c = self.client()
        try:
            if pending.kind == "power":
                inst = world.instance(c, model.instance_id)
                if inst.LatestOperationState != "OPERATING":
                    self._resolve_power(model, inst)
                return
            snap = self._copy(c, model, pending.snapshot_id or "")
        except TencentCloudSDKException as exc:
            raise ServerDied() from exc
        if snap is not None and snap.operation_state == "OPERATING":
            busy = snap.state in ("CREATING", "ROLLBACKING")
            if strategy == "in-copy" and busy and 0 < snap.percent < 90:
                self._kill_now()
                raise ServerDied()
            if strategy == "at-finish" and busy and snap.percent >= 90:
                time.sleep(self.rng.uniform(0, 0.05))
                self._kill_now()
                raise ServerDied()
            time.sleep(0.02)
            return
        self._resolve_snapshot_op(model, snap)

    @staticmethod
    def _copy(c: Any, model: InstanceModel, copy_id: str) -> CopyView | None:
        """The model's snapshot or (a data disk's) backup as described now."""
        if model.data_disk:
            request = models.DescribeDiskBackupsRequest()
            request.DiskBackupIds = [copy_id]
            found = world.patient(lambda: c.DescribeDiskBackups(request)).DiskBackupSet
            return backup_view(found[0]) if found else None
        snapshot = world.snapshot(c, copy_id)
        return None if snapshot is None else snapshot_view(snapshot)

    # -- disk writes --------------------------------------------------------------------------

    def _write(self, model: InstanceModel, offset: int, data: bytes) -> None:
        """Measured lazily (sha256 of a whole disk costs seconds): writes in a row cost one."""
        world.disk_write(self.server, model.instance_id, offset, data)
        model.content, model.stale = None, True
        with self.lock:
            self.stats.operations["disk write"] += 1

    def _write_idle(self, model: InstanceModel, strategy: str) -> None:
        size = self.rng.choice([4096, 65536, MiB, 4 * MiB])
        offset = self.rng.randrange(0, 512 * MiB // 4096) * 4096
        if strategy == "idle-write":  # the server dies while an admin write is in flight
            threading.Timer(self.rng.uniform(0.1, 0.4), self._kill_now).start()
        data = self.rng.randbytes(size)
        self._background(model, lambda: self._write(model, offset, data))

    # -- resolving outcomes ---------------------------------------------------------------------

    def _resolve_power(self, model: InstanceModel, inst: Any) -> None:
        pending = model.pending
        model.pending = None
        model.running = inst.InstanceState == "RUNNING"
        done = inst.LatestOperationState == "SUCCESS"
        if pending is not None and pending.action and not pending.uncertain and done:
            self.stats.checks["power outcome"] += 1
            if model.running != (pending.action != "StopInstances"):
                self.stats.violations.append(
                    f"{pending.action} of {model.instance_id} succeeded, but it is "
                    f"{inst.InstanceState}"
                )
        if model.running and self.cfg.compute == "qemu":
            self._guest_owns_disk(model)
        self.stats.outcomes[f"power {inst.LatestOperationState}"] += 1

    @staticmethod
    def _guest_owns_disk(model: InstanceModel) -> None:
        """A running guest writes (and qemu locks) its disk: its content is unknown and not
        measurable, and nothing written before the start needs measuring any more."""
        model.content, model.stale = None, False

    def _resolve_snapshot_op(self, model: InstanceModel, snap: CopyView | None) -> None:
        """The snapshot (or backup) operation is over (snap: it as described now, or None)."""
        pending = model.pending
        assert pending is not None and pending.snapshot_id is not None
        model.pending = None
        if pending.kind == "create":
            if snap is None:
                self.stats.outcomes["create failed cleanly"] += 1
                self.snapshots.pop(pending.snapshot_id, None)
            else:
                self.stats.outcomes[f"create {snap.operation_state}"] += 1
                self.snapshots[pending.snapshot_id].touched = True
            self._image_changed(model)
            return
        target = self.snapshots[pending.snapshot_id]
        self._image_changed(model)
        if snap is None:
            self.stats.violations.append(f"snapshot {pending.snapshot_id} vanished during apply")
            return
        self.stats.outcomes[f"apply {snap.operation_state}"] += 1
        model.running = False
        if snap.operation_state == "SUCCESS" and snap.applied:
            if target.corrupt:
                self.stats.violations.append(f"corrupt snapshot {target.snapshot_id} applied")
            model.content = target.content
            model.touched = True
        elif target.corrupt:  # refused after it was read: the disk must be untouched
            self.stats.checks["planted corruption found: Apply failed"] += 1
            self._measure(model, {pending.before})
        else:  # failed: the disk keeps its old content (or the complete new one)
            self._measure(model, {pending.before, target.content})

    def _image_changed(self, model: InstanceModel) -> None:
        """qcow2 keeps every snapshot of a disk inside its image: the disk is re-measured
        now, and all its snapshots are verified again at the end of the run."""
        if self.cfg.storage == "qcow2":
            model.touched = True

    def _measure(self, model: InstanceModel, allowed: set[str | None]) -> None:
        """In the background: the disk must hold one of the allowed contents, never a mix."""
        model.touched = False

        def work() -> None:
            actual = self._disk_content(model)
            with self.lock:
                self.stats.checks["disk sha256 (one of two states)"] += 1
                if None not in allowed and actual not in allowed:  # None: unknown (a guest)
                    self.stats.violations.append(
                        f"disk of {model.instance_id} is {actual[:12]}, not an allowed state"
                    )
            model.content, model.stale = actual, False

        self._background(model, work)

    def _disk_content(self, model: InstanceModel) -> str:
        """An instance's disk: its sha256; a data disk's (10 GB, mostly holes): its block
        checksum, which costs the data only."""
        if model.data_disk:
            found = self.server.admin("disk", "checksum", model.disk_id, "--json")
            return str(found["Checksum"])
        return world.disk_sha256(self.server, model.instance_id)

    # -- after a restart ---------------------------------------------------------------------

    def _settle_and_check(self, full: bool) -> None:
        c = self.client()
        started = time.monotonic()
        deadline = started + self.cfg.settle_seconds
        slow_logged = False
        while True:
            copies = [snapshot_view(s) for s in c.DescribeSnapshots(_all_snapshots()).SnapshotSet]
            backups = _all_backups(c)
            copies += [backup_view(b) for b in backups]
            insts = c.DescribeInstances(models.DescribeInstancesRequest()).InstanceSet
            disks = _data_disks(c, [m.disk_id for m in self.instances.values() if m.data_disk])
            busy = [s.copy_id for s in copies if s.state != "NORMAL"]
            busy += [i.InstanceId for i in insts if i.LatestOperationState == "OPERATING"]
            busy += [d.DiskId for d in disks if d.LatestOperationState == "OPERATING"]
            if not busy:
                break
            if time.monotonic() - started > 5 and not slow_logged:
                self.cfg.log(f"  slow to settle: {busy}")
                slow_logged = True
            if time.monotonic() > deadline:
                self.stats.violations.append(f"not settled within the bound: {busy}")
                return self._fail_fast()
            time.sleep(0.1)
        settle = time.monotonic() - started
        self.stats.max_settle_seconds = max(self.stats.max_settle_seconds, settle)
        self.stats.checks["settled"] += 1
        by_id = {s.copy_id: s for s in copies}
        inst_by_id = {i.InstanceId: i for i in insts}
        self._reconcile(by_id, inst_by_id)
        self._check_power(inst_by_id)
        self._check_finished_jobs()
        self._check_quota(len(copies) - len(backups))
        self._check_backup_quota(disks, backups)
        self._check_no_orphans(set(by_id))
        self._check_corrupt_marks()
        self._check_contents(full, inst_by_id)
        self._check_unlocked(inst_by_id)

    def _fail_fast(self) -> None:
        logs = "\n".join(f"-- node {s.port}:\n{s.log()}" for s in self.servers())
        raise AssertionError(f"crash harness: {self.stats.violations[-1]}\n{logs}")

    def _reconcile(self, snaps: dict[str, CopyView], insts: dict[str, Any]) -> None:
        for model in self.instances.values():
            pending = model.pending
            inst = insts.get(model.instance_id)  # (None: a data disk)
            if pending is None:
                continue
            if pending.kind == "power":
                self._resolve_power(model, inst)
            elif pending.kind == "delete":
                model.pending = None
                self._image_changed(model)
                if pending.snapshot_id not in snaps:
                    self.snapshots.pop(pending.snapshot_id or "", None)
            elif pending.kind == "create" and pending.snapshot_id is None:
                model.pending = None  # the answer was lost: adopt what the server created
                for s in snaps.values():
                    if s.disk_id == model.disk_id and s.copy_id not in self.snapshots:
                        self.snapshots[s.copy_id] = SnapshotModel(
                            s.copy_id, model.instance_id, pending.before
                        )
                        self.stats.outcomes["create (answer lost) adopted"] += 1
            elif pending.kind == "apply" and pending.uncertain:
                model.pending = None
                target = self.snapshots.get(pending.snapshot_id or "")
                model.running = inst is not None and inst.InstanceState == "RUNNING"
                if model.running and self.cfg.compute == "qemu":
                    self._guest_owns_disk(model)  # the apply never got to stop the guest
                    self.stats.outcomes["apply (answer lost, never started)"] += 1
                else:
                    new = target.content if target and not target.corrupt else pending.before
                    self._measure(model, {pending.before, new})
                    self.stats.outcomes["apply (answer lost)"] += 1
            else:
                self._resolve_snapshot_op(model, snaps.get(pending.snapshot_id or ""))
        known = set(self.snapshots)
        for snapshot_id in set(snaps) - known:
            self.stats.violations.append(f"unexpected snapshot {snapshot_id} on the server")
        for snapshot_id in known - set(snaps):
            self.stats.violations.append(f"snapshot {snapshot_id} disappeared")
            del self.snapshots[snapshot_id]

    def _check_no_orphans(self, live: set[str]) -> None:
        """Snapshot data on disk is exactly that of the live snapshots (nothing leaked by a
        create that failed or a delete that was cut short)."""
        stored = stored_snapshot_ids(self.server.data_dir, self.cfg.storage)
        self.stats.checks["no orphan data"] += 1
        if stored != live:
            self.stats.violations.append(
                f"snapshot data {sorted(stored - live)} without a record, "
                f"records {sorted(live - stored)} without data"
            )

    def _check_corrupt_marks(self) -> None:
        """Only a planted snapshot may be marked corrupt (by a failed Apply, the scrubber or
        admin verify): a kill during a scrub or before a table never spoils a good one."""
        marked = corrupt_marks(self.store)
        self.stats.checks["no good snapshot marked corrupt"] += 1
        for snapshot_id in sorted(marked - self.planted):
            self.stats.violations.append(f"good snapshot {snapshot_id} marked corrupt")
        self.marked_planted |= marked & self.planted
        self.stats.outcomes["planted snapshots marked corrupt"] = len(self.marked_planted)

    def _check_guests_thawed(self) -> None:
        """No guest is left frozen by a server killed inside a live snapshot's freeze
        window: the server pays the owed thaw when it next looks at the machine."""
        if self.cfg.compute != "qemu":
            return
        driver = QemuDriver(self.server.data_dir)
        for instance_id in sorted(self.instances):
            self.stats.checks["guest not left frozen"] += 1
            deadline = time.monotonic() + 30
            while driver.frozen(instance_id):
                if time.monotonic() > deadline:
                    self.stats.violations.append(f"the guest of {instance_id} is left frozen")
                    break
                time.sleep(0.5)

    def _verify_all(self) -> None:
        """At the end, ``admin snapshot verify`` of every snapshot (what the scrubber does):
        the planted ones CORRUPT, every other GOOD. BUSY (the server's own scrubber is
        reading the snapshot: its lock is held) is asked again, for up to 30 s."""
        ids = sorted(self.snapshots)  # (disk backups too: the scrubber reads them)
        results: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while ids:
            done = self.server.admin("snapshot", "verify", *ids, "--json", check=False)
            try:  # (the parsed answer when all are good; the process when it exits 1)
                rows = done if isinstance(done, list) else json.loads(done.stdout)
                results |= {r["SnapshotId"]: r["Result"] for r in rows}
            except (ValueError, KeyError, TypeError):
                self.stats.violations.append(f"admin snapshot verify failed: {done.stderr[-500:]}")
                return
            ids = [i for i in ids if results.get(i) == "BUSY"]
            if ids and time.monotonic() > deadline:
                break
            if ids:
                self.stats.outcomes["admin snapshot verify: BUSY, asked again"] += len(ids)
                time.sleep(0.5)
        for snapshot_id in sorted(results):
            want = "CORRUPT" if self.snapshots[snapshot_id].corrupt else "GOOD"
            self.stats.checks["admin snapshot verify"] += 1
            if results.get(snapshot_id) != want:
                self.stats.violations.append(
                    f"admin snapshot verify {snapshot_id}: {results.get(snapshot_id)}, not {want}"
                )
            elif want == "CORRUPT":
                self.stats.checks["planted corruption found: admin verify"] += 1

    def _check_power(self, insts: dict[str, Any]) -> None:
        """With the null driver only the API moves an instance: each shows the power state
        the model followed (not, say, STOPPED by a stalled owner's late commit after it was
        started again)."""
        if self.cfg.compute != "null":
            return
        for model in self.instances.values():
            if model.data_disk:
                continue
            shown = insts[model.instance_id].InstanceState
            self.stats.checks["power state"] += 1
            if model.pending is None and shown != ("RUNNING" if model.running else "STOPPED"):
                after = model.instance_id in self.started_after_takeover
                self.stats.violations.append(
                    f"{model.instance_id} is {shown}, the model says running={model.running}"
                    + (" (it was started after a takeover)" if after else "")
                )

    def _observe_jobs(self, every: float = 0.1) -> None:
        """Record newly finished jobs; a finished job that changed is a violation."""
        if time.monotonic() - self.observed_at < every:
            return
        self.observed_at = time.monotonic()
        self.stats.violations.extend(self.finished.observe(job_rows(self.store)))

    def _check_finished_jobs(self) -> None:
        self._observe_jobs(every=0.0)
        self.stats.checks["finished jobs unchanged"] += 1

    def _check_quota(self, live: int) -> None:
        request = models.DescribeGeneralResourceQuotasRequest()
        request.ResourceNames = ["SNAPSHOT"]
        (quota,) = self.client().DescribeGeneralResourceQuotas(request).GeneralResourceQuotaSet
        used = quota.ResourceQuotaTotal - quota.ResourceQuotaAvailable
        self.stats.checks["quota"] += 1
        if used != live:
            self.stats.violations.append(f"quota says {used} snapshots used, {live} exist")

    def _check_backup_quota(self, disks: list[Any], backups: list[Any]) -> None:
        """Each data disk counts exactly the backups that exist of it, within its quota."""
        for disk in disks:
            held = sum(b.DiskId == disk.DiskId for b in backups)
            self.stats.checks["backup quota"] += 1
            if disk.DiskBackupCount != held or held > disk.DiskBackupQuota:
                self.stats.violations.append(
                    f"{disk.DiskId} counts {disk.DiskBackupCount} backups of "
                    f"{disk.DiskBackupQuota}, {held} exist"
                )

    def _check_contents(self, full: bool, insts: dict[str, Any]) -> None:
        """Queue, per instance, the sha256 of its disk (if it may have changed) and the
        verification of its snapshots that were created or applied since the last check."""
        for model in self.instances.values():
            stopped = model.data_disk or insts[model.instance_id].InstanceState == "STOPPED"
            disk = (full or model.touched) and (self.cfg.compute != "qemu" or stopped)
            snaps = [  # each is verified once taken, and all again at the end
                s
                for s in self.snapshots.values()
                if s.instance_id == model.instance_id and (full or s.touched)
            ]
            if disk or snaps:
                self._background(model, functools.partial(self._check_one, model, disk, snaps))

    def _check_one(self, model: InstanceModel, disk: bool, snaps: list[SnapshotModel]) -> None:
        if disk:
            actual = self._disk_content(model)
            with self.lock:
                self.stats.checks["disk sha256"] += 1
                if model.content is not None and actual != model.content:
                    self.stats.violations.append(
                        f"disk of {model.instance_id} is {actual[:12]}, "
                        f"expected {model.content[:12]}"
                    )
            model.content = actual  # (a guest wrote it: from now on it must stay so)
            model.touched = model.stale = False
        for snap in snaps:
            result = self._snapshot_sha256(snap.snapshot_id)
            with self.lock:
                if snap.corrupt:
                    if result.get("Verified") is not False:
                        self.stats.violations.append(f"corrupt {snap.snapshot_id} verifies")
                    self.stats.checks["planted corruption found: sha256 differs"] += 1
                    snap.touched = False
                    continue
                self.stats.checks["snapshot verified"] += 1
                if result.get("Verified") is not True:
                    self.stats.violations.append(f"snapshot {snap.snapshot_id} fails: {result}")
                if snap.content is not None and result.get("Sha256") != snap.content:
                    self.stats.violations.append(
                        f"snapshot {snap.snapshot_id} holds {result.get('Sha256')}, "
                        f"expected {snap.content}"
                    )
            snap.content = result.get("Sha256")
            snap.touched = False

    def _snapshot_sha256(self, snapshot_id: str) -> dict[str, Any]:
        """Verified and content ("Sha256"): a backup's content is its block checksum, as its
        data disk's is (see _disk_content)."""
        if snapshot_id.startswith(BACKUP_PREFIX):
            found = self.server.admin("snapshot", "checksum", snapshot_id, "--json")
            return {"Verified": found["Verified"], "Sha256": found["Actual"]}
        result: dict[str, Any] = self.server.admin("snapshot", "sha256", snapshot_id, "--json")
        return result

    def _check_job_history(self) -> None:
        """No job may have failed because snapshot data did not verify (corruption)."""
        history = self.server.admin("job", "list", "--limit", "100000", "--json")
        failed = Counter(str(j["message"]).split(":")[0] for j in history if j["state"] == "FAILED")
        self.stats.outcomes.update({f"job failed: {k}": v for k, v in failed.items()})
        self.stats.checks["jobs"] += len(history)
        for job in history:
            if "verification" in str(job["message"]) and job["snapshot_id"] not in self.planted:
                self.stats.violations.append(f"job {job['id']}: {job['message']}")
            if job["state"] == "FAILED" and "locked by another operation" in str(job["message"]):
                # a takeover must wait for (defer on) a lock a stalled owner may still hold
                self.stats.violations.append(f"job {job['id']} failed on a lock: {job['message']}")

    def _check_unlocked(self, insts: dict[str, Any]) -> None:
        """Right after settling, a new operation (a power change) is accepted on one instance
        per kill point; every later workload operation is a check too, since a refusal for a
        lock (LOCK_REFUSALS) is a violation."""
        models_ = [m for m in self.instances.values() if not m.data_disk]
        if self.cfg.compute == "qemu":
            self._drain()  # a started guest would hold a disk being checked
            model = models_[self.stats.kills % len(models_)]  # round robin: guests keep running
        else:
            model = self.rng.choice(models_)  # the null driver never touches disks
        model.running = insts[model.instance_id].InstanceState == "RUNNING"
        action = "StopInstances" if model.running else "StartInstances"
        request = getattr(models, f"{action}Request")()
        request.InstanceIds = [model.instance_id]
        try:
            getattr(self.client(), action)(request)
        except TencentCloudSDKException as exc:
            self.stats.violations.append(f"{model.instance_id} still locked: {exc.code}")
            return
        self.stats.checks["unlocked"] += 1
        self.stats.operations[action] += 1
        model.pending = Pending("power", None, model.content, action=action)


def _scrub_bytes(node: Server) -> float:
    """The node's lightkeeper_scrub_bytes_total (-1 when /metrics does not answer)."""
    try:
        text = httpx.get(f"{node.url}/metrics", timeout=2).text
    except httpx.HTTPError:
        return -1.0
    for line in text.splitlines():
        if line.startswith("lightkeeper_scrub_bytes_total "):
            return float(line.split()[1])
    return -1.0


def _all_backups(c: Any) -> list[Any]:
    request = models.DescribeDiskBackupsRequest()
    request.Limit = 100
    return list(c.DescribeDiskBackups(request).DiskBackupSet)


def _data_disks(c: Any, disk_ids: list[str]) -> list[Any]:
    if not disk_ids:
        return []
    request = models.DescribeDisksRequest()
    request.DiskIds = disk_ids
    return list(c.DescribeDisks(request).DiskSet)


def _all_snapshots() -> models.DescribeSnapshotsRequest:
    request = models.DescribeSnapshotsRequest()
    request.Limit = 100
    return request


def run(config: Config) -> Stats:
    return CrashHarness(config).run()


def summary(stats: Iterable[Stats]) -> str:
    return json.dumps([s.as_dict() for s in stats], indent=2)
