"""A machine that does not answer delays only the call about it: no API write asks a driver
while it holds the database write lock (issue #12).

The hang is real: the null compute driver's power record of one instance is replaced by a
FIFO, so the server's status read blocks until the test writes the record into it.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.lighthouse.v20200324 import models
from testkit import world
from testkit.server import Server

READER_DEADLINE = 60.0  # only so a broken test cannot hang the suite; never asserted on


@contextmanager
def hung_status(record: Path) -> Iterator[Callable[[], None]]:
    """Make ``record`` (a power record) a FIFO. Yields ``wait``: returns once the server is
    blocked reading it. On exit the record is put back and the reader released."""
    content = record.read_bytes()
    fifo = record.with_name(record.name + ".fifo")
    os.mkfifo(fifo, 0o600)
    os.replace(fifo, record)
    writer: list[int] = []

    def wait() -> None:
        deadline = time.monotonic() + READER_DEADLINE
        while not writer:
            try:  # succeeds only once a reader has the FIFO open
                writer.append(os.open(record, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as exc:
                if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    try:
        yield wait
    finally:
        regular = record.with_name(record.name + ".tmp")
        regular.write_bytes(content)
        os.replace(regular, record)  # later reads find the record again
        if writer:  # the blocked read returns the real record
            os.write(writer[0], content)
            os.close(writer[0])


def stop(c: Any, instance_id: str) -> Any:
    request = models.StopInstancesRequest()
    request.InstanceIds = [instance_id]
    return c.StopInstances(request)


@pytest.mark.parametrize("action", ["CreateInstanceSnapshot", "ApplyInstanceSnapshot", "Stop"])
def test_a_hung_machine_does_not_hold_the_write_lock(server: Server, action: str) -> None:
    account = world.new_account(server, "hung")
    c = world.client(server, account)
    hung = world.create_instance(server, account)["InstanceId"]
    other = world.create_instance(server, account)["InstanceId"]
    calls: dict[str, Callable[[], Any]] = {
        "CreateInstanceSnapshot": lambda: world.create_snapshot(c, hung),
        "Stop": lambda: stop(c, hung),
    }
    if action == "ApplyInstanceSnapshot":
        snapshot_id = world.create_snapshot(c, hung)
        world.wait_normal(c, snapshot_id)
        calls[action] = lambda: world.apply_snapshot(c, hung, snapshot_id)
    record = server.data_dir / "compute" / f"{hung}.json"
    with ThreadPoolExecutor(1) as pool:
        with hung_status(record) as wait:
            pending = pool.submit(calls[action])
            wait()
            # The call about `hung` waits for its machine; writes about others go on (they
            # used to wait behind it for the write lock: GetSnapshotAllocQuotaLockError).
            accepted = world.create_snapshot(c, other)
        pending.result()  # and the hung call itself completes once its machine answers
    world.wait_normal(c, accepted)
