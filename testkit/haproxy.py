"""The shipped HAProxy configuration (``deploy/haproxy.cfg``) run in front of test nodes: the
same file, with its front port and its server lines replaced by the nodes of the test."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "haproxy.cfg"


def configuration(port: int, backends: Sequence[str]) -> str:
    """``deploy/haproxy.cfg`` listening on ``port`` and balancing over ``backends``
    (``host:port`` each)."""
    text = SHIPPED.read_text()
    text, bound = re.subn(r"bind 127\.0\.0\.1:\d+", f"bind 127.0.0.1:{port}", text)
    lines = [line for line in text.splitlines() if not re.match(r"\s+server node\d+ ", line)]
    servers = [f"    server node{n} {address} check" for n, address in enumerate(backends, 1)]
    if bound != 1 or len(lines) == len(text.splitlines()):
        raise ValueError(f"{SHIPPED} no longer has the bind and server lines this expects")
    return "\n".join([*lines, *servers]) + "\n"


@contextmanager
def running(work_dir: Path, port: int, backends: Sequence[str]) -> Iterator[str]:
    """HAProxy in the foreground until the block ends; yields its ``host:port``. Waits until
    every backend passes its health check."""
    config = work_dir / "haproxy.cfg"
    config.write_text(configuration(port, backends))
    subprocess.run(["haproxy", "-c", "-q", "-f", str(config)], check=True)
    log = (work_dir / "haproxy.log").open("wb")
    process = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=log, stderr=log)
    endpoint = f"127.0.0.1:{port}"
    try:
        _wait_healthy(endpoint, len(backends), process)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_healthy(endpoint: str, count: int, process: subprocess.Popen[bytes]) -> None:
    """Until ``count`` answers in a row came from ``count`` distinct nodes' /healthz."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("haproxy exited")
        try:
            codes = [httpx.get(f"http://{endpoint}/healthz", timeout=2).status_code
                     for _ in range(count)]  # fmt: skip
            if codes == [200] * count:
                time.sleep(2.5)  # the checks (inter 1s, rise 2) have marked every node up
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("haproxy did not become ready")
