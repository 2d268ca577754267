"""The job kinds keep the stored form existing databases hold: kind names and params JSON,
written and read back through a real migrated database (issue #12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from lightkeeper.lighthouse.jobs import KINDS, JobKinds
from lightkeeper.lighthouse.jobs.apply_snapshot import ApplyParams, ApplySnapshot
from lightkeeper.lighthouse.jobs.base import JobKind, NoParams
from lightkeeper.lighthouse.jobs.create_snapshot import CreateSnapshot
from lightkeeper.lighthouse.jobs.power import StartInstances, StopInstances, StopParams
from lightkeeper.lighthouse.world import World
from lightkeeper.store import jobs
from lightkeeper.store.database import migrate, open_engine, sqlite_url, write
from lightkeeper.store.tables import jobs as jobs_table


def test_the_stored_kind_names_never_change() -> None:
    assert [k.name for k in KINDS] == [
        "create_snapshot",
        "apply_snapshot",
        "StartInstances",
        "StopInstances",
        "RebootInstances",
        "CreateDisks",  # (issue #18: new kinds are added, never renamed)
        "AttachDisks",
        "DetachDisks",
        "CreateDiskBackup",
        "ApplyDiskBackup",
    ]


@pytest.mark.parametrize(
    ("kind", "params", "stored"),
    [
        (CreateSnapshot, NoParams(), "{}"),
        (ApplySnapshot, ApplyParams(was_running=True), '{"was_running": true}'),
        (StartInstances, NoParams(), "{}"),
        (StopInstances, StopParams(stop_type="HARD"), '{"stop_type": "HARD"}'),
    ],
)
def test_params_are_stored_as_before(
    tmp_path: Path, kind: type[JobKind[Any]], params: Any, stored: str
) -> None:
    engine = open_engine(sqlite_url(tmp_path))
    migrate(engine)
    with write(engine) as conn:
        job_id = kind.enqueue(conn, params, account_id=1, instance_id="i", request_id="r")
        row = conn.execute(select(jobs_table).where(jobs_table.c.id == job_id)).one()
    assert (row.kind, row.params) == (kind.name, stored)
    claimed = jobs.claim(engine, "me", 5.0)
    assert claimed is not None
    assert kind(_world(tmp_path)).params(claimed) == params
    engine.dispose()


def _world(tmp_path: Path) -> World:
    """Enough of a world to build the kinds (none of these tests runs a job)."""
    return World(open_engine(sqlite_url(tmp_path)), cast(Any, None), cast(Any, None))


def test_old_rows_without_a_key_take_the_old_default_and_odd_ones_fail() -> None:
    assert StopParams.model_validate({}).stop_type == "SOFT_FIRST"
    assert ApplyParams.model_validate({}).was_running is False
    for odd in ({"stop_type": "OFF"}, {"stop_type": 1}, {"stop_type": "HARD", "extra": 1}):
        with pytest.raises(ValidationError):
            StopParams.model_validate(odd)


def test_a_kind_is_registered_once(tmp_path: Path) -> None:
    world = _world(tmp_path)
    with pytest.raises(ValueError, match="registered twice"):
        JobKinds(world, [*KINDS, StopInstances])
    assert set(JobKinds(world).executors()) == {k.name for k in KINDS}
    world.engine.dispose()
