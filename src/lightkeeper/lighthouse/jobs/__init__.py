"""The durable job kinds, one module each, and their registry: adding a kind is one module
and one line in ``KINDS``. The Worker runs ``executors()`` and fails jobs with ``give_up``."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from lightkeeper.lighthouse.jobs.apply_snapshot import ApplySnapshot
from lightkeeper.lighthouse.jobs.base import JobKind, UnknownKind
from lightkeeper.lighthouse.jobs.create_snapshot import CreateSnapshot
from lightkeeper.lighthouse.jobs.disk_backups import ApplyDiskBackup, CreateDiskBackup
from lightkeeper.lighthouse.jobs.disks import AttachDisks, CreateDisks, DetachDisks
from lightkeeper.lighthouse.jobs.power import RebootInstances, StartInstances, StopInstances
from lightkeeper.lighthouse.world import World
from lightkeeper.store.jobs import Job

KINDS: tuple[type[JobKind[Any]], ...] = (
    CreateSnapshot,
    ApplySnapshot,
    StartInstances,
    StopInstances,
    RebootInstances,
    CreateDisks,
    AttachDisks,
    DetachDisks,
    CreateDiskBackup,
    ApplyDiskBackup,
)


class JobKinds:
    """Kind name -> the kind, bound to the world it runs against."""

    def __init__(self, world: World, kinds: Iterable[type[JobKind[Any]]] = KINDS) -> None:
        self._kinds: dict[str, JobKind[Any]] = {}
        for kind in kinds:
            if kind.name in self._kinds:
                raise ValueError(f"job kind {kind.name!r} is registered twice")
            self._kinds[kind.name] = kind(world)
        self._unknown = UnknownKind(world)

    def executors(self) -> Mapping[str, Callable[[Job], None]]:
        return {name: functools.partial(self._run, kind) for name, kind in self._kinds.items()}

    @staticmethod
    def _run(kind: JobKind[Any], job: Job) -> None:
        """Run ``job``, unless a test armed a job fault for its action: then it fails as a
        job whose work failed does (``compensate``: locks and quota released, FAILED)."""
        fault = kind.world.faults.take("job", kind.action)
        if fault is None:
            kind.run(job)
            return
        if fault.delay:
            time.sleep(fault.delay)
        if fault.code is None:
            kind.run(job)
            return
        kind.compensate(job, f"injected fault: {fault.code}")

    def give_up(self, job: Job, reason: str) -> None:
        """Fail ``job`` with its kind's compensation (a kind unknown here: the generic one)."""
        self._kinds.get(job.kind, self._unknown).compensate(job, reason)
