"""Runs durable jobs on a few threads, renewing their leases while they run.

Executors are plain functions per job kind (``lighthouse.jobs`` supplies them); they must be
idempotent, because a job whose worker died is run again from the start (see ``store.jobs``).
An executor that finds it lost its lease raises ``LeaseLost`` (it has committed nothing); one
that cannot proceed now raises ``Deferred`` and the job is run again later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from sqlalchemy import Engine

from lightkeeper.store import jobs
from lightkeeper.store.database import is_disconnect, is_lock_timeout
from lightkeeper.store.jobs import Job

logger = logging.getLogger("lightkeeper.worker")

Executor = Callable[[Job], None]
LEASE_SECONDS = 6.0
MAX_ATTEMPTS = 5
DEFER_SECONDS = 1.0


class Worker:
    def __init__(
        self,
        engine: Engine,
        executors: Mapping[str, Executor],
        on_give_up: Callable[[Job, str], None],
        threads: int = 4,
        poll_seconds: float = 0.2,
        lease_seconds: float = LEASE_SECONDS,
        wake: threading.Event | None = None,
        node: str | None = None,
        pool: str | None = None,
        host: str | None = None,
    ) -> None:
        """``wake``: set by whoever commits a job (``World.notify``), created before both.
        ``node``, ``pool``, ``host``: this server's node name, storage pool and where its
        neighbours are, which decide the jobs it may claim (``jobs.claim``)."""
        self.engine = engine
        self.executors = executors
        self.on_give_up = on_give_up
        self.owner = jobs.owner_token()
        self.node = node
        self.pool = pool
        self.host = host
        self.take_overs = 0
        """Jobs this worker claimed from an owner whose lease had expired (a dead node's)."""
        self.lease_seconds = lease_seconds
        self._threads = threads
        self._poll = poll_seconds
        self._wake = wake if wake is not None else threading.Event()
        self._stop = threading.Event()
        self._running: dict[int, Job] = {}
        self._lock = threading.Lock()
        self._pool: list[threading.Thread] = []

    def start(self) -> None:
        released = jobs.release_dead_owners(self.engine, self.owner)
        if released:
            logger.info("resuming %d job(s) left running by a previous server", released)
        for n in range(self._threads):
            thread = threading.Thread(target=self._loop, name=f"job-worker-{n}", daemon=True)
            thread.start()
            self._pool.append(thread)
        heartbeat = threading.Thread(target=self._heartbeat, name="job-lease", daemon=True)
        heartbeat.start()
        self._pool.append(heartbeat)

    def every(self, seconds: float, task: Callable[[], object], name: str) -> None:
        """Run ``task`` now and then every ``seconds`` until ``stop`` (errors are logged)."""

        def loop() -> None:
            while True:
                try:
                    task()
                except Exception:
                    logger.exception("periodic task %s failed", name)
                if self._stop.wait(seconds):
                    return

        thread = threading.Thread(target=loop, name=name, daemon=True)
        thread.start()
        self._pool.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming; running jobs finish (or are resumed by the next server)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._pool:
            thread.join(max(0.0, deadline - time.monotonic()))

    def notify(self) -> None:
        """Called after a job is committed, so it starts without waiting for the next poll."""
        self._wake.set()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with self._lock:
                running = list(self._running.values())
            try:
                lost = jobs.renew(self.engine, running, self.lease_seconds)
            except Exception:
                logger.exception("could not renew job leases")
                continue
            for job in lost:  # its executor finds out at its next fenced step
                logger.warning("job %s (%s): lease lost to another worker", job.id, job.kind)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    running = set(self._running)
                job = jobs.claim(
                    self.engine,
                    self.owner,
                    self.lease_seconds,
                    running,
                    node=self.node,
                    pool=self.pool,
                    host=self.host,
                )
            except Exception:
                logger.exception("could not claim a job")
                job = None
            if job is None:
                self._wake.wait(self._poll)
                self._wake.clear()
                continue
            if job.taken_over_from is not None:
                self.take_overs += 1
                logger.info(
                    "job %s (%s): taken over from %s", job.id, job.kind, job.taken_over_from
                )
            self._run(job)

    def _run(self, job: Job) -> None:
        with self._lock:
            self._running[job.id] = job
        try:
            self._execute(job)
        except jobs.LeaseLost:
            logger.warning(
                "job %s (%s, epoch %s): lease lost to another worker; this attempt commits "
                "nothing and its unpublished storage effects were discarded",
                job.id,
                job.kind,
                job.epoch,
            )
        except Exception:
            logger.exception("could not record the outcome of job %s", job.id)
        finally:
            with self._lock:
                self._running.pop(job.id, None)

    def _execute(self, job: Job) -> None:
        """Run the job's executor; turn a deferral or a crash into its durable outcome."""
        if job.attempts > MAX_ATTEMPTS:
            self.on_give_up(job, f"gave up after {job.attempts - 1} interrupted attempts")
            return
        executor = self.executors.get(job.kind)
        if executor is None:
            self.on_give_up(job, f"no executor for job kind {job.kind!r}")
            return
        try:
            executor(job)
        except jobs.LeaseLost:
            raise  # committed nothing: no outcome to record
        except jobs.Deferred as exc:
            logger.info("job %s (%s) deferred: %s", job.id, job.kind, exc)
            jobs.defer(self.engine, job, DEFER_SECONDS, f"waiting: {exc}")
        except Exception as exc:
            if is_lock_timeout(exc):  # contention is no reason to lose an accepted operation
                logger.warning("job %s (%s): database locked; it runs again", job.id, job.kind)
                jobs.defer(self.engine, job, DEFER_SECONDS, "waiting: database locked")
                return
            if is_disconnect(exc):  # nor is a database restart: the job resumes, as after kill -9
                logger.warning(
                    "job %s (%s): database connection lost; it runs again once the "
                    "database answers",
                    job.id,
                    job.kind,
                )
                self._defer_when_possible(job, "waiting: database connection lost")
                return
            logger.exception("job %s (%s) crashed", job.id, job.kind)
            self.on_give_up(job, f"internal error: {exc}")

    def _defer_when_possible(self, job: Job, reason: str) -> None:
        """Defer ``job``; if the database cannot take even that, its lease runs out and the
        job is claimed again like a dead worker's (nothing is lost either way)."""
        try:
            jobs.defer(self.engine, job, DEFER_SECONDS, reason)
        except Exception as exc:
            logger.warning("job %s: could not defer (%s); its lease will expire", job.id, exc)
