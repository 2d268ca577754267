"""``python -m bench.profile [ACTION] [-n N] [--postgres]``: where one request's time goes,
in-process.

Builds the real application (``server.create_app``) over a seeded world (1,000 snapshots; in
SQLite, or with ``--postgres`` in a private durable PostgreSQL, ``testkit.postgres``) and
drives it with N signed ASGI requests, no sockets. The handler normally runs on a worker
thread; here it runs on the calling thread so one profiler sees the whole request. Uses
pyinstrument when installed (``pip install pyinstrument``), else cProfile.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from testkit import postgres

from bench.common import tc3_request
from bench.seed import REGION, open_world, seed

PARAMS: dict[str, dict[str, Any]] = {
    "DescribeSnapshots": {"Limit": 20},
    "DescribeInstances": {"Limit": 20},
    "DescribeRegions": {},
}


def sent_to(sink: list[dict[str, Any]]) -> Any:
    async def send(message: dict[str, Any]) -> None:
        sink.append(message)

    return send


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("action", nargs="?", default="DescribeSnapshots", choices=sorted(PARAMS))
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--postgres", action="store_true", help="the world in PostgreSQL")
    args = parser.parse_args()
    with ExitStack() as stack:
        url = None
        if args.postgres:
            url = stack.enter_context(postgres.running(durable=True)).create_database("lk")
        _profile(args.action, args.n, url)


def _profile(action: str, n: int, url: str | None) -> None:
    import lightkeeper.api.app as app_module
    from lightkeeper.server import create_app

    async def inline(func: Any, *call_args: Any) -> Any:
        return func(*call_args)

    app_module.run_in_threadpool = inline  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="lk-profile-") as tmp:
        settings: dict[str, Any] = {"database_url": url} if url else {}
        services = open_world(Path(tmp) / "data", rate_limit=False, log_level="warning", **settings)
        who = seed(services, "profile", 50, 1000)
        app = create_app(services)
        request = tc3_request(
            "127.0.0.1:8080",
            who.secret_id,
            who.secret_key,
            action,
            REGION,
            PARAMS[action],
        )
        headers = [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
        headers.append((b"content-length", str(len(request.body)).encode()))
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": headers,
            "query_string": b"",
            "client": ("127.0.0.1", 5000),
            "scheme": "http",
            "server": ("127.0.0.1", 8080),
            "http_version": "1.1",
            "root_path": "",
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": request.body, "more_body": False}

        async def drive(n: int) -> bytes:
            sent: list[dict[str, Any]] = []
            for _ in range(n):
                sent.clear()
                await app(dict(scope), receive, sent_to(sent))
            return bytes(sent[-1]["body"])

        first = asyncio.run(drive(50))
        if b'"Error"' in first:
            raise SystemExit(first.decode())
        started = time.perf_counter()
        asyncio.run(drive(n))
        elapsed = time.perf_counter() - started
        print(f"{action}: {elapsed / n * 1e6:.0f} us per request in-process, unprofiled")
        try:
            from pyinstrument import Profiler
        except ImportError:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(asyncio.run, drive(n))
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        else:
            profile = Profiler(interval=0.0002)
            profile.start()
            asyncio.run(drive(n))
            profile.stop()
            print(profile.output_text(unicode=False, color=False, show_all=False))
        services.engine.dispose()


if __name__ == "__main__":
    main()
