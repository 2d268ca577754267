"""Reading every snapshot back now and then (issue #14): what Apply itself no longer reads.

Apply trusts a snapshot's sealed block table (storage/blocks.py) instead of reading its data;
what a seal cannot see — a medium decaying under an unchanged file, a write that bypassed the
filesystem — is found here. Each NORMAL snapshot of a pool this node reaches is read back
whole once per ``--scrub-interval``, at most ``--scrub-bandwidth`` MiB/s, and compared with
its checksum; the check is recorded (``store/checks.py``). A mismatch is confirmed under the
snapshot's lock, with its record re-read, before the snapshot is marked corrupt: a snapshot
deleted or replaced while it was read is never reported, and a good one never looks corrupt.
A corrupt snapshot is refused by Apply before the disk is touched. Disk backups are read
back the same way (their data is a snapshot of their disk; ApplyDiskBackup refuses a
corrupt one).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from lightkeeper import storage
from lightkeeper.domain import ids
from lightkeeper.domain.model import SnapshotState
from lightkeeper.lighthouse.world import World
from lightkeeper.store import checks
from lightkeeper.store import resources as db

if TYPE_CHECKING:  # imported by the scrubber itself: ``admin`` imports this module, unused
    from prometheus_client import CollectorRegistry

logger = logging.getLogger("lightkeeper.scrub")

MiB = 1024 * 1024
BATCH = 8
"""Snapshots verified per call of ``step`` (the periodic task runs it every few seconds)."""

GOOD, CORRUPT, GONE, MISSING, BUSY = "GOOD", "CORRUPT", "GONE", "MISSING", "BUSY"


def _ignore(_: int) -> None:
    pass


@dataclass(frozen=True)
class Copy:
    """What the scrubber reads back: a snapshot, or a disk backup (a snapshot of its disk)."""

    copy_id: str
    disk_id: str
    checksum: str | None
    state: str


def find_copy(conn: Connection, copy_id: str) -> Copy | None:
    if copy_id.startswith(f"{ids.DISK_BACKUP}-"):
        backup = db.get_disk_backup(conn, copy_id)
        if backup is None:
            return None
        return Copy(backup.disk_backup_id, backup.disk_id, backup.checksum, backup.state)
    snapshot = db.get_snapshot(conn, copy_id)
    if snapshot is None:
        return None
    return Copy(snapshot.snapshot_id, snapshot.disk_id, snapshot.checksum, snapshot.state)


def mark_corrupt(conn: Connection, copy_id: str) -> None:
    if copy_id.startswith(f"{ids.DISK_BACKUP}-"):
        db.update_disk_backup(conn, copy_id, corrupt=1)
    else:
        db.update_snapshot(conn, copy_id, corrupt=1)


class Pacer:
    """Sleeps so that the bytes reported to it average at most ``rate`` per second."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self._rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._bytes = 0

    def __call__(self, nbytes: int) -> None:
        self._bytes += nbytes
        ahead = self._bytes / self._rate - (self._clock() - self._start)
        if ahead > 0:
            self._sleep(ahead)


@dataclass(frozen=True, slots=True)
class Verdict:
    snapshot_id: str
    result: str
    """GOOD, CORRUPT (now marked), GONE (deleted meanwhile), MISSING (its data is not
    stored: Apply answers that itself), BUSY (a mismatch could not be confirmed yet)."""
    bytes_read: int


class Scrubber:
    def __init__(
        self,
        world: World,
        interval: float,
        bandwidth: float,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """``interval``: seconds between two verifications of one snapshot; ``bandwidth``:
        MiB/s at most that a scrub reads (``verify`` on demand is not limited)."""
        from prometheus_client import Counter, Gauge

        self.world = world
        self.interval = interval
        self.rate = bandwidth * MiB
        self._lock = threading.Lock()
        self._bytes = Counter(
            "lightkeeper_scrub_bytes",
            "Snapshot data read back by the scrubber and admin verify.",
            registry=registry,
        )
        self._verified = Counter(
            "lightkeeper_scrub_snapshots",
            "Snapshots read back whole and compared with their checksum, by result.",
            ["result"],
            registry=registry,
        )
        self._corrupt = Counter(
            "lightkeeper_scrub_corruptions_found",
            "Snapshots found corrupt (and marked so) by the scrubber or admin verify.",
            registry=registry,
        )
        self._coverage = Gauge(
            "lightkeeper_scrub_pass_progress",
            "Share of this node's verifiable snapshots verified within the scrub interval.",
            registry=registry,
        )

    def verify(
        self,
        snapshot_id: str,
        progress: storage.ProgressCallback = _ignore,
        pace: storage.Pace | None = None,
    ) -> Verdict:
        """Read the snapshot back whole now; mark it corrupt if it does not match."""
        with self.world.read() as conn:
            snapshot = find_copy(conn, snapshot_id)
        if snapshot is None or snapshot.checksum is None:
            return Verdict(snapshot_id, GONE, 0)
        read = [0]

        def counted(nbytes: int) -> None:
            read[0] += nbytes
            self._bytes.inc(nbytes)
            if pace is not None:
                pace(nbytes)

        result = self._check(snapshot, progress, counted)
        if result == CORRUPT:
            self._corrupt.inc()
        if result in (GOOD, CORRUPT, MISSING):  # not due again before the next interval
            self._verified.labels(result.lower()).inc()
            with self.world.write() as conn:
                checks.record(conn, snapshot_id, db.utcnow(), result, self.world.node)
        return Verdict(snapshot_id, result, read[0])

    def _check(self, snapshot: Copy, progress: storage.ProgressCallback, pace: storage.Pace) -> str:
        driver = self.world.storage
        try:
            driver.verify_snapshot(
                snapshot.disk_id, snapshot.copy_id, snapshot.checksum or "", progress, pace=pace
            )
        except storage.ChecksumMismatch:
            return self._confirm(snapshot)
        except (storage.SnapshotNotFound, storage.DiskNotFound):
            return GONE if self._gone(snapshot) else MISSING
        return GOOD

    def _confirm(self, snapshot: Copy) -> str:
        """Read it again holding the snapshot's lock (no delete or rollback meanwhile) and
        with its record as it is now; only a second mismatch marks it corrupt."""
        driver = self.world.storage
        try:
            with driver.lock_snapshot(snapshot.disk_id, snapshot.copy_id):
                with self.world.read() as conn:
                    now = find_copy(conn, snapshot.copy_id)
                if now is None or now.checksum != snapshot.checksum:
                    return GONE
                try:
                    driver.verify_snapshot(
                        snapshot.disk_id, snapshot.copy_id, now.checksum or "", _ignore
                    )
                except storage.ChecksumMismatch as exc:
                    with self.world.write() as conn:
                        mark_corrupt(conn, snapshot.copy_id)
                    logger.error("snapshot %s is corrupt: %s", snapshot.copy_id, exc)
                    return CORRUPT
                return GOOD
        except storage.SnapshotBusy:
            return BUSY
        except (storage.SnapshotNotFound, storage.DiskNotFound):
            return GONE

    def _gone(self, snapshot: Copy) -> bool:
        with self.world.read() as conn:
            now = find_copy(conn, snapshot.copy_id)
        return now is None or now.state != SnapshotState.NORMAL

    def step(self) -> None:
        """Verify the next few snapshots that are due (the periodic task's body)."""
        with self._lock:  # one pass at a time, however the task is scheduled
            since = db.utcnow() - dt.timedelta(seconds=self.interval)
            with self.world.read() as conn:
                batch = checks.due(conn, self.world.storage.pool, since, BATCH)
            pace = Pacer(self.rate)
            for item in batch:
                verdict = self.verify(item.snapshot_id, pace=pace)
                if verdict.result in (MISSING, BUSY):
                    logger.warning("scrub of %s: %s", item.snapshot_id, verdict.result)
            with self.world.read() as conn:
                total, verified = checks.coverage(conn, self.world.storage.pool, since)
            self._coverage.set(verified / total if total else 1.0)
