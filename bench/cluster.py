"""Cluster (issue #13): DescribeSnapshots (Limit=20 of 1,000) and CreateInstanceSnapshot at
saturation on three set-ups in one run, against moto's CreateSnapshot:

* ``sqlite``: one node on SQLite in its data dir (the embedded default);
* ``pg1``: one node on PostgreSQL;
* ``pg3``: three nodes on one PostgreSQL database and one data dir (one pool) behind the
  shipped HAProxy configuration (``testkit.haproxy``).

PostgreSQL is a private server (``testkit.postgres``, unix socket) with ``fsync`` and
``synchronous_commit`` on, checked before the runs: an accepted create is committed to disk
before its answer, as on SQLite (``synchronous=FULL``). Each set-up has its own database and
data dir, seeded alike (``bench.seed``). The machine is shared, so the set-ups alternate
(round after round, the order reversed every other round) and the best run of each counts.

The database's share of a request: CPU time of each set-up's processes over each run
(``/proc``; the nodes, the PostgreSQL backends of that database plus its background
processes, HAProxy) divided by the requests answered; PostgreSQL's own execution time per
request from ``pg_stat_statements`` (reset before each run), with the wait for the writers'
advisory lock counted apart; and its WAL fsyncs (``pg_stat_wal``, ``track_wal_io_timing``).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from testkit import haproxy
from testkit.postgres import Postgres

from bench.api import (
    N_SNAPSHOTS,
    check,
    create_requests,
    describe_requests,
    lightkeeper_server,
    moto_requests,
    moto_server,
    row,
    wait_jobs_drained,
)
from bench.common import (
    Proc,
    Signed,
    children_of,
    cmdline,
    cpu_seconds,
    cpu_spent,
    free_port,
    machine_busy_seconds,
    pids_where,
    saturate,
)
from bench.seed import Seeded, open_world, seed
from lightkeeper.server import Services

# as pg_stat_statements shows it (constants normalised to $n); its key is WRITE_LOCK_KEY
WRITE_LOCK = "SELECT pg_advisory_xact_lock($1)"
TARGETS = {"describe_pg_vs_sqlite": 0.8, "create_vs_moto": 2.0, "pg3_vs_pg1": 1.0}


@dataclass
class Setup:
    """One configuration under test: its world, its nodes and the port the load hits."""

    name: str
    services: Services
    reader: Seeded
    writer: Seeded
    nodes: list[Proc] = field(default_factory=list)
    front: int = 0  # the port wrk sends to: the node's, or HAProxy's
    database: str | None = None  # PostgreSQL database name; None: SQLite
    haproxy_config: Path | None = None
    used: int = 0  # writer instances already snapshotted
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def take(self, n: int) -> list[str]:
        """The next ``n`` never-snapshotted instances: every create is a real, new one."""
        ids = self.writer.instance_ids[self.used : self.used + n]
        self.used += n
        return ids

    def pids(self, pg: Postgres | None) -> dict[str, list[int]]:
        groups = {"nodes": [p.process.pid for p in self.nodes if p.process is not None]}
        if self.database is not None and pg is not None:
            groups["postgres"] = _postgres_pids(pg, self.database)
        if self.haproxy_config is not None:
            config = str(self.haproxy_config)
            groups["haproxy"] = pids_where(lambda c: c.startswith("haproxy") and config in c)
        return groups


def _postgres_pids(pg: Postgres, database: str) -> list[int]:
    """The postmaster, its background processes (WAL writer, checkpointer...) and the
    backends connected to ``database`` (their process title names it)."""
    postmaster = int((pg.data / "postmaster.pid").read_text().split()[0])
    children = children_of(postmaster)
    return [postmaster] + [
        pid for pid in children if "[local]" not in (t := cmdline(pid)) or f" {database} " in t
    ]


# -- PostgreSQL -------------------------------------------------------------------------------


@contextmanager
def _postgres() -> Iterator[Postgres]:
    """A durable private server with ``pg_stat_statements`` loaded."""
    server = Postgres(durable=True)
    try:
        server.init()
        with (server.data / "postgresql.conf").open("a") as conf:
            conf.write("shared_preload_libraries = 'pg_stat_statements'\n")
            conf.write("pg_stat_statements.track_utility = on\n")  # BEGIN/COMMIT: the fsyncs
            conf.write("track_wal_io_timing = on\n")  # pg_stat_wal: time in WAL fsyncs
        server.start()
        with _admin(server) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        yield server
    finally:
        try:
            server.stop("immediate")
        finally:
            server.remove()


def _admin(server: Postgres) -> psycopg.Connection[Any]:
    return psycopg.connect(server.conninfo(), autocommit=True)


def _durability(server: Postgres) -> dict[str, Any]:
    """What decides whether a commit waits for the disk; raises unless it does."""
    with _admin(server) as conn:
        shown = {
            name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
            for name in ("fsync", "synchronous_commit", "wal_sync_method", "commit_delay")
        }
        overrides = conn.execute("SELECT setconfig FROM pg_db_role_setting").fetchall()
    shown["role_or_database_overrides"] = [str(r[0]) for r in overrides]  # type: ignore[assignment]
    if shown["fsync"] != "on" or shown["synchronous_commit"] != "on" or overrides:
        raise RuntimeError(f"PostgreSQL is not durable for this benchmark: {shown}")
    return shown


def _pg_reset(server: Postgres) -> None:
    with _admin(server) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT pg_stat_reset_shared('wal')")


def _pg_wal(server: Postgres) -> tuple[int, float]:
    """WAL fsyncs since the last reset and the milliseconds they took (the whole server;
    backends report at most once a second, so the last second of a run may be missing)."""
    with _admin(server) as conn:
        found = conn.execute("SELECT wal_sync, wal_sync_time FROM pg_stat_wal").fetchone()
    assert found is not None
    return int(found[0]), float(found[1])


def _pg_statements(server: Postgres, database: str) -> dict[str, Any]:
    """Execution time and calls in ``database`` since the last reset, and the top statements.
    The writers' advisory lock is counted apart: its "execution" is the wait for the lock."""
    with _admin(server) as conn:
        rows = conn.execute(
            "SELECT query, calls, total_exec_time FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s"
            " ORDER BY total_exec_time DESC",
            (database,),
        ).fetchall()
    lock = [r for r in rows if r[0].startswith(WRITE_LOCK)]
    return {
        "exec_ms": sum(r[2] for r in rows) - sum(r[2] for r in lock),
        "lock_ms": sum(r[2] for r in lock),
        "calls": sum(r[1] for r in rows),
        "top": [
            {"query": " ".join(r[0].split())[:100], "calls": r[1], "ms": round(r[2], 1)}
            for r in rows[:6]
        ],
    }


# -- one measured run -------------------------------------------------------------------------


def _measure(
    setup: Setup, pg: Postgres | None, requests: list[Signed], seconds: float
) -> dict[str, Any]:
    """One saturation run, with the CPU each process group spent per answered request and
    (PostgreSQL) the database's own execution time per request."""
    before = {name: cpu_seconds(pids) for name, pids in setup.pids(pg).items()}
    commits_before = _commit_counts(setup)
    busy = machine_busy_seconds()
    if setup.database is not None and pg is not None:
        _pg_reset(pg)
    started = time.perf_counter()
    result = saturate(setup.front, requests, seconds)
    elapsed = time.perf_counter() - started
    answered = max(1, result["requests"])
    result["cpu_us_per_request"] = {
        name: cpu_spent(before[name], cpu_seconds(pids)) / answered * 1e6
        for name, pids in setup.pids(pg).items()
    }
    result["machine_busy_cores"] = (machine_busy_seconds() - busy) / elapsed
    commits, writes = (a - b for a, b in zip(_commit_counts(setup), commits_before, strict=True))
    result["commits_per_request"] = commits / answered
    result["writes_per_commit"] = writes / max(1, commits)
    if setup.database is not None and pg is not None:
        statements = _pg_statements(pg, setup.database)
        result["db_exec_ms_per_request"] = statements["exec_ms"] / answered
        result["db_write_lock_wait_ms_per_request"] = statements["lock_ms"] / answered
        result["db_calls_per_request"] = statements["calls"] / answered
        result["db_top"] = statements["top"]
        syncs, sync_ms = _pg_wal(pg)
        result["wal_fsyncs_per_request"] = syncs / answered
        result["wal_fsync_ms_mean"] = sync_ms / max(1, syncs)
    return result


def _commit_counts(setup: Setup) -> tuple[float, float]:
    """The nodes' real commits and the write transactions they held, so far (/metrics):
    how many writers one commit served (store/group_commit.py). Counts the job work that
    ran in the window too, like the CPU figures."""
    commits = writes = 0.0
    for node in setup.nodes:
        with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        values = dict(re.findall(r"^(lightkeeper_database_\w+_total) (\S+)$", text, re.M))
        commits += float(values["lightkeeper_database_commits_total"])
        writes += float(values["lightkeeper_database_committed_writes_total"])
    return commits, writes


# -- set-ups ----------------------------------------------------------------------------------


def _world(root: Path, name: str, pool: int, url: str | None) -> Setup:
    """A seeded world in ``root/name``; ``url``: in PostgreSQL database ``name``."""
    settings = {"database_url": url} if url else {}
    services = open_world(root / name, **settings)
    reader = seed(services, "reader", 50, N_SNAPSHOTS)
    writer = seed(services, "writer", pool, 0, disks=True)
    return Setup(name, services, reader, writer, database=name if url else None)


def _start(setup: Setup, root: Path, log: Path, n_nodes: int, url: str | None) -> None:
    data = root / setup.name
    extra = ["--no-rate-limit"] + (["--database", url] if url else [])
    if n_nodes == 1:
        node = ["--node", setup.name] if url else []
        setup.nodes.append(lightkeeper_server(data, log, *extra, *node).start())
        setup.front = setup.nodes[0].port
        return
    for n in range(1, n_nodes + 1):
        node = ["--node", f"node{n}", "--trusted-proxy", "127.0.0.1"]
        setup.nodes.append(lightkeeper_server(data, log, *extra, *node).start())


def _stop(nodes: list[Proc]) -> None:
    for node in nodes:
        node.stop()


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {**max(runs, key=lambda r: r["rps"]), "all_rps": [r["rps"] for r in runs]}


def run(quick: bool = False) -> dict[str, Any]:
    rounds, seconds = (1, 2.0) if quick else (3, 4.0)
    per_run = 800 if quick else 1500  # creates one run may need: 375 req/s at most here
    results: dict[str, Any] = {"rounds": rounds, "seconds": seconds, "targets": TARGETS}
    scratch = os.environ.get("BENCH_DIR")
    with ExitStack() as stack:
        root = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="lk-bench-cluster-", dir=scratch)
            )
        )
        log = root / "servers.log"
        pg = stack.enter_context(_postgres())
        results["durability"] = _durability(pg)
        started = time.perf_counter()
        urls = {name: pg.create_database(name) for name in ("pg1", "pg3")}
        setups = [
            _world(root, "sqlite", per_run * rounds, None),
            _world(root, "pg1", per_run * rounds, urls["pg1"]),
            _world(root, "pg3", per_run * rounds, urls["pg3"]),
        ]
        results["seed_s"] = time.perf_counter() - started
        for setup in setups:
            stack.callback(setup.services.engine.dispose)
        for setup, n_nodes in zip(setups, (1, 1, 3), strict=True):
            stack.callback(_stop, setup.nodes)
            _start(setup, root, log, n_nodes, urls.get(setup.name))
        pg3 = setups[2]
        front = free_port()
        stack.enter_context(
            haproxy.running(root, front, [f"127.0.0.1:{p.port}" for p in pg3.nodes])
        )
        pg3.front, pg3.haproxy_config = front, root / "haproxy.cfg"
        moto = moto_server(log)
        if moto is not None:
            stack.callback(moto.stop)
            _, moto_create, _ = moto_requests(moto.port, N_SNAPSHOTS)
        print(
            f"\nCluster (seeded 3 worlds of {N_SNAPSHOTS} snapshots + {per_run * rounds}"
            f" instances in {results['seed_s']:.1f}s; {rounds} alternating rounds of"
            f" {seconds:.0f}s runs, best counts)"
        )
        for setup in setups:  # warm every node's caches and pools
            check(setup.front, describe_requests(setup.front, setup.reader)[0])
            saturate(setup.front, describe_requests(setup.front, setup.reader), 1)
        moto_runs: list[dict[str, Any]] = []
        for n in range(rounds):
            order = setups if n % 2 == 0 else setups[::-1]
            for setup in order:
                requests = describe_requests(setup.front, setup.reader)
                setup.runs.setdefault("describe", []).append(_measure(setup, pg, requests, seconds))
            for setup in order:
                requests = create_requests(setup.front, setup.writer, setup.take(per_run))
                setup.runs.setdefault("create", []).append(_measure(setup, pg, requests, seconds))
                wait_jobs_drained(setup.services)  # its copies must not load the next run
            if moto is not None:
                moto_runs.append(saturate(moto.port, moto_create, seconds))
                time.sleep(2)  # a slow server keeps answering queued requests after wrk stops
    for setup in setups:
        results[setup.name] = {action: _best(runs) for action, runs in setup.runs.items()}
        row(f"{setup.name} DescribeSnapshots (1,000, Limit=20)", results[setup.name]["describe"])
        row(f"{setup.name} CreateInstanceSnapshot", results[setup.name]["create"])
    if moto_runs:
        results["moto_create"] = _best(moto_runs)
        row("moto CreateSnapshot", results["moto_create"])
    _shares(results)
    results["ratios"] = _ratios(results)
    return results


def _shares(r: dict[str, Any]) -> None:
    print("  CPU per request (us; best run) and PostgreSQL's own time per request:")
    for name in ("sqlite", "pg1", "pg3"):
        for action in ("describe", "create"):
            run_ = r[name][action]
            cpu = run_["cpu_us_per_request"]
            db = cpu.get("postgres", 0.0)
            share = db / sum(cpu.values())
            run_["db_cpu_share"] = share if "postgres" in cpu else None
            parts = "  ".join(f"{k} {v:7.0f}" for k, v in cpu.items())
            extra = (
                f"  db share {share:5.1%}  pg exec {run_['db_exec_ms_per_request']:.3f} ms"
                f" + write-lock wait {run_['db_write_lock_wait_ms_per_request']:.1f} ms"
                f" ({run_['db_calls_per_request']:.1f} stmts)"
                f"  fsyncs {run_['wal_fsyncs_per_request']:.2f}"
                f" x {run_['wal_fsync_ms_mean']:.2f} ms"
                if "postgres" in cpu
                else ""
            )
            commits = (
                f"  commits/req {run_['commits_per_request']:.2f}"
                f" ({run_['writes_per_commit']:.1f} writes each)"
            )
            print(
                f"    {name:6} {action:8} {parts}{extra}{commits}"
                f"  busy {run_['machine_busy_cores']:.2f}"
            )


def _ratios(r: dict[str, Any]) -> dict[str, Any]:
    """Each ratio with its target (None: reported only)."""
    pairs: dict[str, tuple[float, float | None]] = {
        "describe_pg1_vs_sqlite": (
            r["pg1"]["describe"]["rps"] / r["sqlite"]["describe"]["rps"],
            TARGETS["describe_pg_vs_sqlite"],
        ),
        "describe_pg3_vs_pg1": (
            r["pg3"]["describe"]["rps"] / r["pg1"]["describe"]["rps"],
            TARGETS["pg3_vs_pg1"],
        ),
        "create_pg3_vs_pg1": (
            r["pg3"]["create"]["rps"] / r["pg1"]["create"]["rps"],
            TARGETS["pg3_vs_pg1"],
        ),
    }
    if "moto_create" in r:
        for name in ("sqlite", "pg1", "pg3"):
            pairs[f"create_{name}_vs_moto"] = (
                r[name]["create"]["rps"] / r["moto_create"]["rps"],
                TARGETS["create_vs_moto"],
            )
    print("  ratios (same run):")
    ratios: dict[str, Any] = {}
    for name, (value, target) in pairs.items():
        met = None if target is None else value >= target
        ratios[name] = {"value": value, "target": target, "met": met}
        verdict = "" if target is None else f"target >= {target}: {'met' if met else 'missed'}"
        print(f"    {name:26} {value:7.3f}  {verdict}")
    return ratios
