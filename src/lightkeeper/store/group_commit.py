"""Group commit: the write transactions of one process that queue for the database's write
lock share one real transaction, and so one commit (one fsync), instead of each paying its
own.

A write lock admits one writer at a time (``database.write``), so writers queue; what each
holds the lock for is its statements plus a commit, and the commit (a WAL fsync, ~1–4 ms
here) is most of it. Here the writer that finds the lock free opens a *batch* (BEGIN, the
database's write lock); a writer that arrives while a batch is open runs its statements in
that same transaction, behind a ``SAVEPOINT`` of its own, so a writer whose work fails rolls
back only its own statements and its batch mates commit. The writer that ends its work
with nobody queued behind it (or when the batch is full or old enough) commits the batch for
everyone in it. Every writer's ``write`` returns only after the commit that made its work
durable, and a failed commit fails every writer of the batch: the rules see exactly the
serial order of one-writer-at-a-time transactions, and nothing is answered before it is on
disk.

The writers of one batch run one after the other (one holds the queue's lock at a time), so
a check-then-insert such as the snapshot quota sees every earlier batch mate's rows, as it
would once they had committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

MAX_MEMBERS = 32
"""Writers per batch at most: bounds how long the first one waits for its commit."""
MAX_AGE = 0.025
"""Seconds a batch stays open for more writers after its first writer's work is done, at
most, for the same reason."""
POLL = 0.05
"""Seconds a writer waiting for its batch's commit sleeps before checking that somebody is
still going to make it (a queued writer may have given up on its lock timeout)."""


class QueueTimeout(Exception):
    """The queue's lock was not free within the writer's lock timeout."""


class NestedWrite(RuntimeError):
    """A write transaction opened inside another of the same engine on the same thread: it
    would wait for the commit of the transaction it is part of."""


Begin = Callable[[float], Connection]
"""Opens a connection and begins its write transaction (taking the database's write lock,
waiting at most the given seconds)."""
Outcome = Callable[[BaseException | None], None]
"""Told how each write transaction ended: None when it committed."""
Check = Callable[[], None]
"""Raises if a batch must not be committed now (its database file was deleted meanwhile)."""


@dataclass(eq=False)
class _Batch:
    conn: Connection
    first_done: float | None = None  # when the first writer's work was done
    members: int = 1
    savepoints: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class WriterGroup:
    """The writers of one engine in this process."""

    def __init__(self, begin: Begin, outcome: Outcome, check: Check) -> None:
        self._begin = begin
        self._outcome = outcome
        self._check = check
        self._lock = threading.Lock()
        self._counting = threading.Lock()
        self._waiting = 0  # writers queued on ``_lock``
        self._batch: _Batch | None = None
        self._local = threading.local()
        self.commits = 0  # real commits made (the /metrics counters)
        self.committed_writes = 0  # writers whose work they held

    @property
    def queued(self) -> int:
        """Writers waiting for their turn now."""
        return self._waiting

    @contextmanager
    def write(self, lock_timeout: float) -> Iterator[Connection]:
        if getattr(self._local, "inside", False):
            raise NestedWrite("a write transaction inside another one of the same database")
        remaining = self._acquire(lock_timeout)
        self._local.inside = True
        try:
            batch, savepoint = self._join(remaining)  # releases the lock if it raises
            try:
                yield batch.conn
            except BaseException as exc:
                self._undo(batch, savepoint, exc)
                raise
            self._leave(batch)
        finally:
            self._local.inside = False

    def _acquire(self, timeout: float) -> float:
        """Take the queue's lock; the seconds of ``timeout`` left (all of it when free)."""
        if self._lock.acquire(blocking=False):
            return timeout
        started = time.monotonic()
        with self._counting:
            self._waiting += 1
        try:
            if not self._lock.acquire(timeout=timeout):
                raise QueueTimeout
        finally:
            with self._counting:
                self._waiting -= 1
        return max(timeout - (time.monotonic() - started), 0.001)

    def _join(self, lock_timeout: float) -> tuple[_Batch, str | None]:
        """The open batch behind a new savepoint, or a new batch (no savepoint needed: a
        batch's first writer is alone in it until it ends)."""
        batch = self._batch
        try:
            if batch is None:
                batch = self._batch = _Batch(self._begin(lock_timeout))
                return batch, None
            batch.savepoints += 1
            savepoint = f"lk_member_{batch.savepoints}"
            batch.conn.exec_driver_sql(f"SAVEPOINT {savepoint}")
            batch.members += 1
            return batch, savepoint
        except BaseException as exc:
            if batch is not None:
                self._abandon(batch, exc)
            self._lock.release()
            raise

    def _undo(self, batch: _Batch, savepoint: str | None, exc: BaseException) -> None:
        """A writer's work failed: only its own statements are undone."""
        self._outcome(exc)
        if savepoint is None:  # the first writer, alone in its batch
            self._abandon(batch, exc)
            self._lock.release()
            return
        try:
            batch.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {savepoint}")
        except BaseException as undo_error:
            # The batch mates get what broke the connection: the writer's own database error
            # (a lost connection, which a job resumes after), else the failed undo.
            self._abandon(batch, exc if isinstance(exc, DBAPIError) else undo_error)
            self._lock.release()
            return
        batch.members -= 1
        self._settle(batch)  # its mates' work still commits

    def _leave(self, batch: _Batch) -> None:
        """A writer's work is done: hand the batch on or commit it, then wait for the commit
        that makes it durable."""
        if not self._settle(batch):
            self._await(batch)
        if batch.error is not None:
            raise batch.error

    def _settle(self, batch: _Batch) -> bool:
        """Holding the lock: release it for a queued writer to join the batch, or commit the
        batch (True)."""
        now = time.monotonic()
        if batch.first_done is None:
            batch.first_done = now
        full = batch.members >= MAX_MEMBERS or now - batch.first_done >= MAX_AGE
        if self._waiting and not full:
            self._lock.release()
            return False
        try:
            self._commit(batch)
        finally:
            self._lock.release()
        return True

    def _await(self, batch: _Batch) -> None:
        while not batch.done.wait(POLL):
            # Nobody has come to commit it: a queued writer gave up on its lock timeout, or
            # works longer. Take the lock and, if the batch is still open, commit it.
            with self._lock:
                if self._batch is batch:
                    self._commit(batch)

    def _commit(self, batch: _Batch) -> None:
        """Holding the lock: the batch's one commit, its outcome told to every writer."""
        try:
            self._check()  # writers joined after the batch's BEGIN checked it
            batch.conn.commit()
        except BaseException as exc:
            self._abandon(batch, exc)
            self._outcome(exc)
            return
        self.commits += 1
        self.committed_writes += batch.members
        self._close(batch)
        self._outcome(None)

    def _abandon(self, batch: _Batch, exc: BaseException) -> None:
        """Holding the lock: roll the batch back; every writer waiting for it gets ``exc``."""
        batch.error = exc
        with suppress(Exception):  # a broken connection: closed (and discarded) below
            batch.conn.rollback()
        self._close(batch)

    def _close(self, batch: _Batch) -> None:
        if self._batch is batch:
            self._batch = None
        with suppress(Exception):  # a broken connection: the pool discards it
            batch.conn.close()
        batch.done.set()
