#!/usr/bin/env python3
"""Long crash runs: kill -9 the real server N times under a random SDK workload.

    .venv/bin/python tools/crash_harness.py --kills 500 --storage raw [--compute qemu] [--seed S]
    .venv/bin/python tools/crash_harness.py --kills 100 --strategies stalled-owner \
        --job-lease-seconds 2
    .venv/bin/python tools/crash_harness.py --kills 30 --database postgresql --nodes 2 \
        --job-lease-seconds 2
    .venv/bin/python tools/crash_harness.py --kills 40 --strategies before-table,in-scrub \
        --plant-rate 0.5

Prints one JSON summary (kill points, operations, checks, invariant violations) and exits
non-zero if any invariant was violated. See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testkit import ceph  # noqa: E402
from testkit.crash import (  # noqa: E402
    KILL_STRATEGIES,
    STRATEGIES,
    Config,
    Stats,
    run,
)
from testkit.postgres import running as postgres_running  # noqa: E402


def build_guest() -> tuple[Path, Path]:
    out = REPO / "guest" / "out"
    result = subprocess.run(
        [sys.executable, str(REPO / "guest" / "build.py"), str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    paths = dict(line.split("=", 1) for line in result.stdout.split())
    return Path(paths["kernel"]), Path(paths["initrd"])


def save(path: Path | None, stats: Stats) -> None:
    if path is not None:
        path.write_text(json.dumps(stats.as_dict(), indent=2))


@contextmanager
def database(engine: str) -> Iterator[str | None]:
    """``postgresql``: a private PostgreSQL server (testkit/postgres.py) for the run, and a
    database on it; ``sqlite``: None (the data dir's own file)."""
    if engine == "sqlite":
        yield None
        return
    with postgres_running() as server:
        yield server.create_database("crash")


@contextmanager
def rbd_namespace(storage: str) -> Iterator[str]:
    """``rbd``: a RADOS namespace of the run, in the cluster at $CEPH_CONF or in a private
    one-node cluster the run starts (testkit/ceph.py); else ""."""
    if storage != "rbd":
        yield ""
        return
    with ExitStack() as stack:
        conf = os.environ.get("CEPH_CONF")
        if not conf:
            cluster = stack.enter_context(ceph.running(Path(tempfile.mkdtemp(prefix="lk-ceph-"))))
            conf = os.environ["CEPH_CONF"] = str(cluster.conf)
        yield stack.enter_context(ceph.namespace(Path(conf), f"crash{os.getpid()}"))


def strategies(text: str) -> tuple[str, ...]:
    """A comma-separated list of STRATEGIES, or ``all``."""
    chosen = STRATEGIES if text == "all" else tuple(filter(None, text.split(",")))
    unknown = set(chosen) - set(STRATEGIES)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(STRATEGIES)} or all")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--storage", choices=["raw", "qcow2", "rbd"], default="raw")
    parser.add_argument("--compute", choices=["null", "qemu"], default="null")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument(
        "--data-disks", type=int, default=1, help="unattached data disks whose backups it takes"
    )
    parser.add_argument("--big-data-mib", type=int, default=128)
    parser.add_argument("--accel", default="tcg", help="qemu accelerator (tcg or kvm)")
    parser.add_argument("--work-dir", type=Path, default=None, help="kept after the run")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--stats-file", type=Path, help="rewritten after every kill point")
    parser.add_argument(
        "--strategies",
        type=strategies,
        default=KILL_STRATEGIES,
        help=f"comma-separated, of {', '.join(STRATEGIES)}, or all (default: the kill ones)",
    )
    parser.add_argument(
        "--job-lease-seconds", type=float, help="LIGHTKEEPER_JOB_LEASE_SECONDS of the servers"
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="postgresql: the records in a PostgreSQL server the run starts itself",
    )
    parser.add_argument("--nodes", type=int, default=1, help="servers on one database and data dir")
    parser.add_argument(
        "--plant-rate",
        type=float,
        default=0.1,
        help="chance per restart that a byte of a snapshot is corrupted behind the server",
    )
    parser.add_argument(
        "--scrub-share", type=float, default=0.5, help="share of server lifetimes that scrub"
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else time.time_ns() % 10**6
    print(f"seed {seed}", file=sys.stderr, flush=True)  # (also in the summary)
    guest = build_guest() if args.compute == "qemu" else None

    def log(line: str) -> None:
        if not args.quiet:
            print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.__stderr__, flush=True)

    with (
        tempfile.TemporaryDirectory(prefix="lk-crash-") as tmp,
        database(args.database) as url,
        rbd_namespace(args.storage) as namespace,
    ):
        work = args.work_dir or Path(tmp)
        config = Config(
            storage=args.storage,
            compute=args.compute,
            kills=args.kills,
            seed=seed,
            work_dir=work,
            instances=args.instances,
            data_disks=args.data_disks,
            big_data_mib=args.big_data_mib,
            guest=guest,
            accel=args.accel,
            strategies=args.strategies,
            job_lease_seconds=args.job_lease_seconds,
            database=url,
            nodes=args.nodes,
            plant_rate=args.plant_rate,
            rbd_namespace=namespace,
            scrub_share=args.scrub_share,
            log=log,
            on_kill=lambda stats: save(args.stats_file, stats),
        )
        stats = run(config)
    save(args.stats_file, stats)
    print(json.dumps(stats.as_dict(), indent=2))
    return 1 if stats.violations else 0


if __name__ == "__main__":
    sys.exit(main())
