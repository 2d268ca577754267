"""Runs durable jobs on a few threads, renewing their leases while they run.

Executors are plain functions per job kind; they must be idempotent, because a job whose
worker died is run again from the start (see ``store.jobs``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from sqlalchemy import Engine

from lightkeeper.store import jobs
from lightkeeper.store.jobs import Job

logger = logging.getLogger("lightkeeper.worker")

Executor = Callable[[Job], None]
LEASE_SECONDS = 6.0
MAX_ATTEMPTS = 5


class Worker:
    def __init__(
        self,
        engine: Engine,
        executors: Mapping[str, Executor],
        on_give_up: Callable[[Job, str], None],
        threads: int = 4,
        poll_seconds: float = 0.2,
    ) -> None:
        self.engine = engine
        self.executors = executors
        self.on_give_up = on_give_up
        self.owner = jobs.owner_token()
        self._threads = threads
        self._poll = poll_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._running: set[int] = set()
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
        while not self._stop.wait(LEASE_SECONDS / 3):
            with self._lock:
                running = list(self._running)
            try:
                jobs.renew(self.engine, running, self.owner, LEASE_SECONDS)
            except Exception:
                logger.exception("could not renew job leases")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = jobs.claim(self.engine, self.owner, LEASE_SECONDS)
            except Exception:
                logger.exception("could not claim a job")
                job = None
            if job is None:
                self._wake.wait(self._poll)
                self._wake.clear()
                continue
            self._run(job)

    def _run(self, job: Job) -> None:
        with self._lock:
            self._running.add(job.id)
        try:
            if job.attempts > MAX_ATTEMPTS:
                self.on_give_up(job, f"gave up after {job.attempts - 1} interrupted attempts")
                return
            executor = self.executors.get(job.kind)
            if executor is None:
                self.on_give_up(job, f"no executor for job kind {job.kind!r}")
                return
            executor(job)
        except Exception as exc:
            logger.exception("job %s (%s) crashed", job.id, job.kind)
            try:
                self.on_give_up(job, f"internal error: {exc}")
            except Exception:
                logger.exception("could not record the failure of job %s", job.id)
        finally:
            with self._lock:
                self._running.discard(job.id)
