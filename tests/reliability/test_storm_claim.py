"""Regression (found by the storm): a job claimed while another connection held the database
write lock got a lease that had partly run out during the wait (``claim`` read the clock before
``BEGIN IMMEDIATE``), so another worker thread could claim the same running job again. The two
runs then released each other's instance locks, and the storm's job history showed a reboot
overlapping a snapshot on one instance. The same happened when the lease heartbeat itself
waited longer than the lease for the write lock: a worker now never re-claims its own job."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from lightkeeper.store import jobs
from lightkeeper.store.database import migrate, open_engine, sqlite_url, write


def test_a_lease_counts_from_the_claim_not_from_the_wait_for_the_lock(tmp_path: Path) -> None:
    engine = open_engine(sqlite_url(tmp_path))
    migrate(engine)
    with write(engine) as conn:
        jobs.enqueue(conn, "StartInstances", account_id=1, instance_id="lhins-x", request_id="r")
    now = [time.time()]  # the clock ``claim`` reads: a lease expires when the test says so

    def clock() -> float:
        return now[0]

    held = threading.Event()

    def hold_the_write_lock() -> None:
        with write(engine):
            held.set()
            time.sleep(0.2)  # lets the claim below queue on the lock (not needed to pass)
            now[0] += 10.0  # the wait for the lock "took" 10 s, longer than the lease

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    held.wait(5)
    first = jobs.claim(engine, "worker-a", lease_seconds=5, clock=clock)  # waits for the lock
    holder.join()
    assert first is not None and first.attempts == 1
    # The lease was granted just now: nobody may claim the job again for 5 s.
    assert jobs.claim(engine, "worker-b", lease_seconds=5, clock=clock) is None
    now[0] += 6.0
    # Expired, but worker-a is alive (it is asking): its own running job is not taken again.
    assert jobs.claim(engine, "worker-a", lease_seconds=5, clock=clock) is None
    again = jobs.claim(engine, "worker-b", lease_seconds=5, clock=clock)  # really expired
    assert again is not None and again.id == first.id and again.attempts == 2
    engine.dispose()
