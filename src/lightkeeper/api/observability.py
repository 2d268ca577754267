"""One structured access-log line per request, and the Prometheus metrics behind /metrics."""

from __future__ import annotations

import logging

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

from lightkeeper.api.wire import ApiCall

access_log = logging.getLogger("lightkeeper.access")


class Metrics:
    """Per-app registry, so two servers in one process (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lightkeeper_requests",
            "API requests answered, by action and error code ('' for success).",
            ["action", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lightkeeper_request_seconds",
            "API request latency in seconds, by action.",
            ["action"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )

    def observe(self, action: str, code: str, seconds: float) -> None:
        self.requests.labels(action, code).inc()
        self.latency.labels(action).observe(seconds)


def log_request(call: ApiCall, code: str, seconds: float) -> None:
    """Who asked what and the answer. The principal (account, sub-user, SecretId) of every
    authenticated call is named, also when it was refused afterwards (CAM, rate limit,
    parameters); a call whose signature was not verified names nobody. Never a SecretKey or
    a token. ``peer`` appears when ``client`` came from a trusted proxy's X-Forwarded-For."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    principal = call.principal
    record = {
        "request_id": call.request_id,
        "action": call.action or "-",
        "region": call.region or "",
        "account": principal.account_name if principal else "",
        "user": (principal.user_name or "") if principal else "",
        "key": principal.secret_id if principal else "",
        "code": code,
        "ms": round(seconds * 1000, 3),
        "client": call.client_ip,
    }
    if call.proxy is not None:
        record["peer"] = call.proxy
    access_log.info(orjson.dumps(record).decode())
