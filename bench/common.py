"""Shared pieces of the HTTP benchmarks: servers as subprocesses, TC3 pre-signing, wrk runs
and the fixed-rate client (``bench.loadgen``) in its own process."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testkit.clients import tc3_headers
from testkit.server import Account

PYTHON = sys.executable
SERVICE = "lighthouse"
VERSION = "2020-03-24"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


@dataclass
class Proc:
    """A server subprocess, its port and log file; ``stop`` sends SIGTERM and waits."""

    argv: list[str]
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            self.argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
        )
        wait_port(self.port, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- requests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signed:
    """One complete HTTP request, ready to replay (path, headers, body)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def tc3_request(
    host: str, secret_id: str, secret_key: str, action: str, region: str, params: dict[str, Any]
) -> Signed:
    """POST JSON signed with TC3-HMAC-SHA256 exactly as the SDK signs it (the tests' signer).
    TC3 has no nonce, so the same request may be replayed while its timestamp is within 300 s
    of the server's."""
    body = json.dumps(params, separators=(",", ":")).encode()
    who = Account("bench", "", 0, secret_id, secret_key)
    return Signed("POST", "/", tc3_headers(who, host, action, body, region), body)


def plain_request(host: str, path: str = "/") -> Signed:
    return Signed("POST", path, {"Host": host, "Content-Type": "application/json"}, b"{}")


def send(port: int, request: Signed) -> tuple[int, bytes]:
    """One request over a fresh connection (checks, seeding through the API)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(request.method, request.path, request.body, request.headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# -- wrk --------------------------------------------------------------------------------------

WRK_LUA = r"""
local reqs = {}
%s
local i = 0
request = function()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
errors = 0
response = function(status, headers, body)
  if status ~= 200 or string.find(body, '"Error"', 1, true) then
    errors = errors + 1
    if first == nil then first = body end
  end
end
"""
WRK_DONE = r"""
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  local errs = 0
  for _, t in ipairs(threads) do errs = errs + t:get("errors") end
  io.write(string.format("LK_ERRORS %d\n", errs))
  for _, t in ipairs(threads) do
    local f = t:get("first")
    if f ~= nil then io.write("LK_FIRST_ERROR " .. string.sub(f, 1, 300) .. "\n") end
  end
end
"""


def _lua_string(value: str | bytes) -> str:
    text = value.decode() if isinstance(value, bytes) else value
    return "[==[" + text + "]==]"


def wrk_script(requests: Sequence[Signed]) -> str:
    lines = []
    for r in requests:
        headers = ", ".join(
            f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in r.headers.items()
        )
        lines.append(
            f"table.insert(reqs, wrk.format({_lua_string(r.method)}, {_lua_string(r.path)}, "
            f"{{{headers}}}, {_lua_string(r.body)}))"
        )
    return WRK_LUA % "\n".join(lines) + WRK_DONE


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    port: int,
    requests: Sequence[Signed],
    *,
    seconds: float,
    connections: int = 16,
    threads: int = 1,
) -> dict[str, Any]:
    """Saturation: ``wrk -t1 -c16`` replaying ``requests`` in turn; errors counted by body."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(requests))
    try:
        proc = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                script.name,
                f"http://127.0.0.1:{port}/",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
    finally:
        os.unlink(script.name)
    if proc.returncode != 0 or "LK_ERRORS" not in proc.stdout:
        raise RuntimeError(f"wrk failed: {proc.stdout}\n{proc.stderr}")
    out = proc.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = int(re.search(r"LK_ERRORS (\d+)", out).group(1))  # type: ignore[union-attr]
    latency = {
        f"p{p}_ms": _seconds(v) * 1000
        for p, v in re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", out, re.M)
    }
    first = re.search(r"LK_FIRST_ERROR (.*)", out)
    result: dict[str, Any] = {"rps": rps, "requests": total, "errors": errors, **latency}
    if first:
        result["first_error"] = first.group(1)
    return result


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


# -- the asyncio client, in its own process -----------------------------------------------------


def loadgen(
    port: int,
    requests: Sequence[Signed],
    *,
    seconds: float,
    rate: float | None = None,
    connections: int = 16,
) -> dict[str, Any]:
    """Run ``bench.loadgen`` in a subprocess: fixed ``rate`` (or saturation if None)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump(
            [
                {"method": r.method, "path": r.path, "headers": r.headers, "body": r.body.decode()}
                for r in requests
            ],
            spec,
        )
    argv = [
        PYTHON,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--requests",
        spec.name,
        "--seconds",
        str(seconds),
        "--connections",
        str(connections),
    ]
    if rate is not None:
        argv += ["--rate", str(rate)]
    try:
        out = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
            cwd=Path(__file__).parent.parent,
        ).stdout
    finally:
        os.unlink(spec.name)
    return dict(json.loads(out))


def saturate(port: int, requests: Sequence[Signed], seconds: float) -> dict[str, Any]:
    """wrk when installed, else the asyncio client without a rate."""
    if have_wrk():
        return {**wrk(port, requests, seconds=seconds), "tool": "wrk -t1 -c16"}
    return {**loadgen(port, requests, seconds=seconds), "tool": "asyncio -c16"}


# -- CPU accounting -----------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU of each live process (all its threads), from ``/proc/PID/stat``;
    a process that has exited is left out."""
    found = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[pid] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (14, 15)
    return found


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two ``cpu_seconds`` readings by the processes alive at the second
    (one that started in between counts whole; one that exited in between is lost)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def pids_where(match: Callable[[str], bool]) -> list[int]:
    """Processes whose command line (arguments joined by spaces) satisfies ``match``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            if match(cmdline(int(entry.name))):
                found.append(int(entry.name))
    return found


def children_of(parent: int) -> list[int]:
    """Live processes whose parent is ``parent`` (``/proc/PID/stat`` field 4)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (every core, every process), ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / _TICK
