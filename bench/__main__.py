"""``python -m bench [--quick] [--only NAME]``: run the benchmarks, print a table, write
``bench/results/latest.json``."""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from bench import api, ceph_rbd, cluster, datapath, first_hour, incremental, scale, testing

SUITES = {
    "api": api.run,
    "cluster": cluster.run,
    "datapath": datapath.run,
    "first_hour": first_hour.run,
    "incremental": incremental.run,
    "rbd": ceph_rbd.run,
    "scale": scale.run,
    "testing": testing.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", choices=sorted(SUITES), action="append")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "latest.json"
    )
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": {"python": platform.python_version(), "system": platform.platform()},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for name in args.only or sorted(SUITES):
        results[name] = SUITES[name](quick=args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
