"""Which nodes may run a job: the rule of issue #13, in one place.

A job that drives the instance's machine runs on the instance's node (when it is placed),
and every job runs on a node that reaches the pool of the instance's disk. A snapshot or a
rollback of a STOPPED instance needs no machine: any node of the pool may run it. (Nodes
sharing a data dir on one host reach each other's machines: ``store.jobs.claim`` lets them
take a ``need_node`` of one another's.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from lightkeeper.domain.model import Instance, InstanceState


class Uses(Enum):
    """What a job kind needs of its instance."""

    MACHINE = "machine"  # power operations: always the machine
    MACHINE_UNLESS_STOPPED = "machine unless stopped"  # snapshots, rollbacks
    DISK = "disk"  # storage only


@dataclass(frozen=True)
class Needs:
    """What a claiming node must be (``jobs.need_node``, ``jobs.need_pool``); None: any."""

    node: str | None = None
    pool: str | None = None


def job_needs(uses: Uses, instance: Instance) -> Needs:
    """Decided at enqueue, from the instance as the accepting transaction sees it: while the
    job holds the disk, no power operation can change whether the machine runs."""
    machine = uses is Uses.MACHINE or (
        uses is Uses.MACHINE_UNLESS_STOPPED and instance.state != InstanceState.STOPPED
    )
    return Needs(node=instance.node if machine else None, pool=instance.system_disk.pool)
