"""kill -9 of the real server at random moments under a random SDK workload, per storage
driver (and once with real VMs); after every restart the invariants of docs/reliability.md
hold. Then the stalled owner: two servers on one data dir, the owner of a running job
SIGSTOPped past its lease and resumed. Then two nodes on one PostgreSQL database and one data
dir, one of them killed at each point (issue #13). Every run has a data disk whose backups
the workload takes, applies and deletes under the same kills (issue #18).
Sizes: LIGHTKEEPER_CRASH_KILLS (default 6 per driver), LIGHTKEEPER_CRASH_QEMU_KILLS (default
2), LIGHTKEEPER_CRASH_STALLS (default 1 per driver), LIGHTKEEPER_CRASH_PG_KILLS (default 3),
LIGHTKEEPER_CRASH_CHECKSUM_KILLS (default 4 per driver), LIGHTKEEPER_CRASH_RBD_KILLS (default
4), LIGHTKEEPER_CRASH_SEED (default: random, printed on failure).
Longer runs: tools/crash_harness.py."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit.crash import BEFORE_TABLE, IN_SCRUB, STALLED_OWNER, Config, Stats, run
from testkit.postgres import Postgres

from tests.support.drivers import storages

KILLS = int(os.environ.get("LIGHTKEEPER_CRASH_KILLS", "6"))
QEMU_KILLS = int(os.environ.get("LIGHTKEEPER_CRASH_QEMU_KILLS", "2"))
STALLS = int(os.environ.get("LIGHTKEEPER_CRASH_STALLS", "1"))
PG_KILLS = int(os.environ.get("LIGHTKEEPER_CRASH_PG_KILLS", "3"))
CHECKSUM_KILLS = int(os.environ.get("LIGHTKEEPER_CRASH_CHECKSUM_KILLS", "4"))
RBD_KILLS = int(os.environ.get("LIGHTKEEPER_CRASH_RBD_KILLS", "4"))
SEED = int(os.environ.get("LIGHTKEEPER_CRASH_SEED", random.randrange(10**6)))


def _log(line: str) -> None:
    print(line, file=sys.__stderr__, flush=True)


def _check(stats: Stats, kills: int) -> None:
    summary = json.dumps(stats.as_dict())
    assert stats.violations == [], f"seed {stats.seed}: {summary}"
    stalled = stats.strategies[STALLED_OWNER]  # (a stalled-owner point has no restart)
    assert stats.kills == kills and stats.restarts == kills - stalled, summary
    assert stats.checks["settled"] == kills + 1, summary  # after every point, and at the end
    assert stats.checks["quota"] == kills + 1, summary
    disks = stats.checks["disk sha256"] + stats.checks["disk sha256 (one of two states)"]
    assert disks > 0 and stats.checks["snapshot verified"] > 0, summary
    assert stats.checks["unlocked"] > 0 and stats.checks["no orphan data"] == kills + 1, summary
    assert sum(stats.operations.values()) >= kills, summary
    backups = stats.operations["CreateDiskBackup"]  # (issue #18; at least the final one)
    assert backups > 0 and stats.checks["backup quota"] == kills + 1, summary


@pytest.mark.parametrize("storage", storages())
def test_crash_harness(storage: str, tmp_path: Path) -> None:
    config = Config(
        storage=storage,
        kills=KILLS,
        seed=SEED,
        work_dir=tmp_path,
        instances=3 if storage == "raw" else 2,
        log=_log,
    )
    _check(run(config), KILLS)


@pytest.mark.parametrize("storage", storages())
def test_crash_harness_checksum_states(storage: str, tmp_path: Path) -> None:
    """Issue #14: the server kills itself just before it writes a block table (after the
    snapshot's data), or is killed while its scrubber reads, in turn; at every restart a byte
    only one snapshot holds is flipped behind its back. No good snapshot is ever marked
    corrupt, no planted one is ever applied or verifies, and every other invariant holds."""
    config = Config(
        storage=storage,
        kills=CHECKSUM_KILLS,
        seed=SEED,
        work_dir=tmp_path,
        instances=2,
        big_data_mib=64,
        strategies=(BEFORE_TABLE, IN_SCRUB),
        cycle=True,
        plant_rate=1.0,
        log=_log,
    )
    stats = run(config)
    _check(stats, CHECKSUM_KILLS)
    summary = json.dumps(stats.as_dict())
    outcomes, checks = stats.outcomes, stats.checks
    assert outcomes["killed itself before a block table"] >= 1, summary
    assert outcomes["killed while the scrubber read"] >= 1, summary
    assert outcomes["corruption planted"] >= 1, summary
    found = sum(n for name, n in checks.items() if name.startswith("planted corruption found"))
    assert found >= outcomes["corruption planted"], summary
    assert checks["no good snapshot marked corrupt"] == CHECKSUM_KILLS + 2, summary


def test_crash_harness_on_rbd(tmp_path: Path, rbd_options: dict[str, Any]) -> None:
    """Issue #15: the same kill points with disks on Ceph RBD (a namespace of this test's own
    in the suite's cluster), every strategy in turn; a killed server's locks (its lock
    objects, its client's exclusive lock on the image) must not keep a disk from the next."""
    config = Config(
        storage="rbd",
        kills=RBD_KILLS,
        seed=SEED,
        work_dir=tmp_path,
        instances=2,
        big_data_mib=32,
        strategies=("in-copy", "before-table", "at-finish", "in-scrub"),
        cycle=True,
        rbd_namespace=rbd_options["namespace"],
        log=_log,
    )
    _check(run(config), RBD_KILLS)


def test_crash_harness_with_running_guests(tmp_path: Path, guest: tuple[Path, Path]) -> None:
    """qcow2 + qemu: live snapshots of running guests, rollbacks that stop them, restarts."""
    config = Config(
        storage="qcow2",
        compute="qemu",
        kills=QEMU_KILLS,
        seed=SEED,
        work_dir=tmp_path,
        instances=2,
        guest=guest,
        accel=os.environ.get("LIGHTKEEPER_TEST_ACCEL", "tcg"),
        settle_seconds=30,
        log=_log,
    )
    stats = run(config)
    _check(stats, QEMU_KILLS)
    live = stats.operations["CreateInstanceSnapshot"]
    assert live > 0, json.dumps(stats.as_dict())


def test_crash_harness_with_running_guests_on_rbd(
    tmp_path: Path, guest: tuple[Path, Path], rbd_options: dict[str, Any]
) -> None:
    """Issue #15: guests on RBD disks (QEMU's librbd holds the image), killed in the middle
    of a live snapshot and near the end of a rollback that stops its guest."""
    config = Config(
        storage="rbd",
        compute="qemu",
        kills=QEMU_KILLS,
        seed=SEED,
        work_dir=tmp_path,
        instances=2,
        guest=guest,
        accel=os.environ.get("LIGHTKEEPER_TEST_ACCEL", "tcg"),
        settle_seconds=30,
        strategies=("in-copy", "at-finish"),
        cycle=True,
        rbd_namespace=rbd_options["namespace"],
        log=_log,
    )
    _check(run(config), QEMU_KILLS)


@pytest.mark.parametrize("storage", storages())
def test_crash_harness_stalled_owner(storage: str, tmp_path: Path) -> None:
    """Issue #11, defect 1: the owner of a running job (a copy of the big disk, mostly) is
    stopped past its 2 s lease while the workload, and a StartInstances of that instance as
    soon as it looks released, go on through the other server; then it is resumed. It must
    commit nothing and publish nothing: finished jobs never change, no snapshot data without
    a record, disks and snapshots as the model says, instances in the state they were put."""
    config = Config(
        storage=storage,
        kills=STALLS,
        seed=SEED,
        work_dir=tmp_path,
        instances=3 if storage == "raw" else 2,
        strategies=(STALLED_OWNER,),
        job_lease_seconds=2,
        log=_log,
    )
    stats = run(config)
    _check(stats, STALLS)
    summary = json.dumps(stats.as_dict())
    assert any(s.taken_over for s in stats.stalls), summary  # the fault really happened
    assert stats.checks["finished jobs unchanged"] == STALLS + 1, summary


def test_crash_harness_two_nodes_on_postgresql(tmp_path: Path, postgres_server: Postgres) -> None:
    """Issue #13: two nodes on one PostgreSQL database sharing one data dir (one pool), the
    workload spread over both; each point kills one (the owner of a running job when there is
    one), whose jobs a survivor takes over after the 2 s lease before it is started again."""
    config = Config(
        storage="raw",
        kills=PG_KILLS,
        seed=SEED,
        work_dir=tmp_path,
        instances=2,
        big_data_mib=32,
        job_lease_seconds=2,
        database=postgres_server.create_database(f"crash{os.getpid()}_{SEED}"),
        nodes=2,
        log=_log,
    )
    stats = run(config)
    _check(stats, PG_KILLS)
    summary = json.dumps(stats.as_dict())
    assert stats.checks["jobs of a killed node taken over"] == stats.takeovers, summary
