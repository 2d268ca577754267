"""``python -m bench.loadgen``: an HTTP/1.1 keep-alive load generator on asyncio (uvloop when
installed), run in its own process so it never shares the server's interpreter.

With ``--rate R`` request ``i`` is due at ``start + i / R`` and its latency is measured from
that due time, so a stalled server is not hidden by the client waiting for it (no coordinated
omission). Without ``--rate`` every connection sends back to back (saturation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
from typing import Any

CONTENT_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.I)


def _encode(spec: dict[str, Any]) -> bytes:
    body = spec["body"].encode()
    headers = {**spec["headers"], "Content-Length": str(len(body))}
    head = f"{spec['method']} {spec['path']} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return head.encode() + b"\r\n" + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> bool:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    match = CONTENT_LENGTH.search(head)
    body = await reader.readexactly(int(match.group(1)) if match else 0)
    return head.startswith(b"HTTP/1.1 200") and b'"Error"' not in body


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _run(port: int, raws: list[bytes], seconds: float, rate: float | None, conns: int) -> Any:
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    end = start + seconds

    async def one(index: int, due: float) -> None:
        nonlocal errors
        reader, writer = await pool.get()
        ok = await _exchange(reader, writer, raws[index % len(raws)])
        latencies.append(time.perf_counter() - due)
        errors += not ok
        pool.put_nowait((reader, writer))

    if rate is None:

        async def loop(offset: int) -> None:
            n = offset
            while time.perf_counter() < end:
                await one(n, time.perf_counter())
                n += conns

        await asyncio.gather(*(loop(i) for i in range(conns)))
    else:
        tasks = []
        n = 0
        while True:
            due = start + n / rate
            if due >= end:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(n, due)))
            n += 1
        await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {
        "rps": len(latencies) / elapsed,
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": _percentile(latencies, 50) * 1000,
        "p99_ms": _percentile(latencies, 99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
        "max_ms": max(latencies) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", required=True, help="JSON list of requests")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    with open(args.requests) as file:
        raws = [_encode(spec) for spec in json.load(file)]
    work = _run(args.port, raws, args.seconds, args.rate, args.connections)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(work)
    else:
        result = uvloop.run(work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
