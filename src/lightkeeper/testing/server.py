"""``LighthouseServer``: run ``lightkeeper serve`` for a test suite and drive its control API.

A subprocess rather than a thread: the server under test is exactly the one users deploy
(its own event loop, worker threads and signal handling), a crash in it cannot take the test
process down, and several can run side by side (one per xdist worker).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is imported when a client is first made
    from tencentcloud.common.credential import Credential
    from tencentcloud.lighthouse.v20200324.lighthouse_client import LighthouseClient

DEFAULT_REGION = "ap-guangzhou"
DEFAULT_ACCOUNT = "default"
_START_TIMEOUT = 60.0


class ControlError(RuntimeError):
    """The control API refused a request (the message is its reason)."""


class LighthouseServer:
    """A real Lightkeeper server on a free loopback port, started by ``start()`` or ``with``.

    ``serve_options`` are ``lightkeeper serve`` settings by their Python names
    (``operation_seconds=2``, ``storage="qcow2"``, ``rate_limit=False``...). Tests get fast
    defaults: no pacing, instant power transitions, no scrubbing; rate limits stay on, as in
    production, unless switched off.
    """

    def __init__(self, data_dir: str | Path | None = None, **serve_options: Any) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.options: dict[str, Any] = {
            "operation_seconds": 0,
            "transition_seconds": 0,
            "scrub_interval": 0,
            **serve_options,
        }
        self.token = secrets.token_urlsafe(24)
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._keys: dict[str, tuple[str, str]] = {}

    # -- life ---------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """``host:port``, what the SDK's ``HttpProfile(endpoint=...)`` takes."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self) -> LighthouseServer:
        if self._process is not None:
            return self
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="lightkeeper-test-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        command = [
            sys.executable, "-m", "lightkeeper", "serve",
            "--data-dir", str(self.data_dir),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--control-api",
        ]  # fmt: skip
        for name, value in self.options.items():
            command += _flag(name, value)
        env = {**os.environ, "LIGHTKEEPER_CONTROL_TOKEN": self.token}
        self._log = (self.data_dir / "server.log").open("ab")
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"lightkeeper serve exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"lightkeeper serve did not become ready: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log (``DATA_DIR/server.log``), for failure messages."""
        if self.data_dir is None or not (self.data_dir / "server.log").exists():
            return ""
        text = (self.data_dir / "server.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> LighthouseServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients ------------------------------------------------------------------------------

    def credentials(self, account: str | None = None) -> Credential:
        """The root key of ``account`` (default: the ``default`` account) as an SDK
        ``Credential``."""
        from tencentcloud.common.credential import Credential

        name = account or DEFAULT_ACCOUNT
        if name not in self._keys:
            key = self._control("GET", f"/accounts/{name}")["Keys"][0]
            self._keys[name] = (key["SecretId"], key["SecretKey"])
        return Credential(*self._keys[name])

    def client(
        self,
        region: str = DEFAULT_REGION,
        account: str | None = None,
        language: str = "en-US",
        credential: Credential | None = None,
        timeout: int = 60,
    ) -> LighthouseClient:
        """An official-SDK ``LighthouseClient`` already pointed at this server."""
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.lighthouse.v20200324.lighthouse_client import LighthouseClient

        http = HttpProfile(protocol="http", endpoint=self.endpoint, reqTimeout=timeout)
        profile = ClientProfile(httpProfile=http, language=language)
        return LighthouseClient(credential or self.credentials(account), region, profile)

    # -- the world ----------------------------------------------------------------------------

    def reset(self) -> dict[str, Any]:
        """Empty the world on the same server: every instance, snapshot, job, sub-user and
        account goes, but the ``default`` account and its keys stay, so clients made before
        keep working; timing, faults and seeding return to how the server started."""
        self._keys = {k: v for k, v in self._keys.items() if k == DEFAULT_ACCOUNT}
        return self._control("POST", "/reset")

    def seed(self, seed: int | None) -> None:
        """From now on, ids and RequestIds repeat for the same calls (None: random again)."""
        self._control("POST", "/seed", {"Seed": seed})

    def timing(
        self,
        operation_seconds: float | None = None,
        transition_seconds: float | None = None,
        manual: bool | None = None,
    ) -> dict[str, Any]:
        """Change pacing while serving; ``manual=True``: snapshot operations advance only
        through ``advance``/``complete``. Operations already running keep their mode."""
        body = {
            "OperationSeconds": operation_seconds,
            "TransitionSeconds": transition_seconds,
            "Manual": manual,
        }
        return self._control("POST", "/timing", {k: v for k, v in body.items() if v is not None})

    def advance(self, snapshot_id: str, percent: int) -> None:
        """Let a manual operation on ``snapshot_id`` show up to ``percent``."""
        self._control("POST", "/advance", {"SnapshotId": snapshot_id, "Percent": percent})

    def complete(self, snapshot_id: str) -> None:
        """Let a manual operation on ``snapshot_id`` finish."""
        self.advance(snapshot_id, 100)

    def fail_next(
        self,
        action: str,
        code: str | None = "InternalError",
        count: int = 1,
        *,
        job: bool = False,
        delay: float = 0.0,
    ) -> None:
        """The next ``count`` calls of ``action`` answer ``code`` (``job=True``: the next
        ``count`` jobs it queues fail instead, e.g. a snapshot that ends FAILED); ``delay``
        holds each one that long first (``code=None, delay=...``: a slow call that then runs,
        so a client with a shorter timeout times out)."""
        self._control(
            "POST",
            "/faults",
            {
                "Action": action,
                "Code": code,
                "Count": count,
                "Target": "job" if job else "call",
                "Delay": delay,
            },
        )

    def state(self) -> dict[str, Any]:
        """The world as JSON: accounts with keys, instances, snapshots."""
        return self._control("GET", "/state")

    def load_state(self, state: dict[str, Any] | str | Path) -> list[str]:
        """Import accounts and instances (a dict, or a JSON file); returns the instance ids."""
        body = state if isinstance(state, dict) else json.loads(Path(state).read_text())
        result: list[str] = self._control("POST", "/state", body)["InstanceIds"]
        return result

    def create_account(self, name: str) -> Credential:
        """A new account; returns its root key."""
        from tencentcloud.common.credential import Credential

        key = self._control("POST", "/accounts", {"Account": name})["Keys"][0]
        self._keys[name] = (key["SecretId"], key["SecretKey"])
        return Credential(key["SecretId"], key["SecretKey"])

    def create_user(
        self, name: str, policy: dict[str, Any] | None = None, account: str | None = None
    ) -> Credential:
        """A CAM sub-user of ``account`` with ``policy`` (a CAM policy document) attached;
        returns its key."""
        from tencentcloud.common.credential import Credential

        body = {"Account": account or DEFAULT_ACCOUNT, "User": name, "Policy": policy}
        made = self._control("POST", "/users", body)
        return Credential(made["SecretId"], made["SecretKey"])

    def create_instance(
        self,
        account: str | None = None,
        region: str = DEFAULT_REGION,
        *,
        name: str | None = None,
        state: str = "RUNNING",
        disk_size_gb: int = 1,
        blueprint_id: str | None = None,
        bundle_type: str = "GENERAL_BUNDLE",
        tags: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """An instance as DescribeInstances shows it (InstanceId, SystemDisk.DiskId...).
        The disk is 1 GB by default (sparse: a test pays only for what it writes)."""
        body: dict[str, Any] = {
            "Account": account or DEFAULT_ACCOUNT,
            "Region": region,
            "InstanceName": name,
            "InstanceState": state,
            "DiskSizeGb": disk_size_gb,
            "BlueprintId": blueprint_id,
            "BundleType": bundle_type,
            "Tags": tags or {},
        }
        return self._control("POST", "/instances", body)

    def write_disk(self, instance_id: str, data: bytes, offset: int = 0) -> None:
        """Write ``data`` at ``offset`` of a disk (as a guest would): an instance id means its
        system disk, an ``lhdisk-`` id that disk (a data disk too)."""
        body = {"Offset": offset, "Data": base64.b64encode(data).decode()}
        self._control("POST", f"/instances/{instance_id}/disk", body)

    def read_disk(self, instance_id: str, offset: int, length: int) -> bytes:
        query = f"offset={offset}&length={length}"
        reply = self._control("GET", f"/instances/{instance_id}/disk?{query}")
        return base64.b64decode(reply["Data"])

    def disk_sha256(self, instance_id: str) -> str:
        """sha256 of a whole disk (an instance's system disk, or an ``lhdisk-`` id), as hex."""
        result: str = self._control("GET", f"/instances/{instance_id}/disk")["Sha256"]
        return result

    def disk_checksum(self, instance_id: str) -> str:
        """The disk's block checksum (``b1m-sha256:...``): equal for equal content, like
        ``disk_sha256``, but it costs the data written, not the disk size; a snapshot's
        recorded checksum is the same value for the same content."""
        reply = self._control("GET", f"/instances/{instance_id}/disk?digest=checksum")
        result: str = reply["Checksum"]
        return result

    def wait_snapshot(
        self, snapshot_id: str, account: str | None = None, timeout: float = 60
    ) -> Any:
        """Poll DescribeSnapshots until the snapshot's operation has ended; returns the SDK
        ``Snapshot`` (check ``SnapshotState`` and ``LatestOperationState``), or None when the
        snapshot is gone (a failed create removes it, as a DeleteSnapshots does)."""
        from tencentcloud.lighthouse.v20200324 import models

        client = self.client(account=account)
        request = models.DescribeSnapshotsRequest()
        request.SnapshotIds = [snapshot_id]
        deadline = time.monotonic() + timeout
        while True:
            found = client.DescribeSnapshots(request).SnapshotSet or []
            if not found or found[0].LatestOperationState != "OPERATING":
                return found[0] if found else None
            if time.monotonic() > deadline:
                raise TimeoutError(f"snapshot {snapshot_id} still {found[0].SnapshotState}")
            time.sleep(0.05)

    # -- the control API ----------------------------------------------------------------------

    def _control(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if self._process is None:
            raise RuntimeError("the server is not running (use start() or `with`)")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/lightkeeper-api{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as reply:
                answer = json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                reason = json.loads(exc.read()).get("Error", exc.reason)
            except ValueError:
                reason = exc.reason
            raise ControlError(f"{method} {path}: {reason}") from None
        if not isinstance(answer, dict):
            raise ControlError(f"{method} {path}: answered {answer!r}")
        return answer


def _flag(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else f"--no-{name.replace('_', '-')}"]
    if isinstance(value, list | tuple):
        return [part for item in value for part in (flag, str(item))]
    return [flag, str(value)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
