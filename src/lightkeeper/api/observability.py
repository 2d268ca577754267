"""One structured access-log line per request, and the Prometheus metrics behind /metrics."""

from __future__ import annotations

import logging

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

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


def log_request(
    *,
    request_id: str,
    action: str,
    region: str,
    account: str,
    code: str,
    seconds: float,
    client_ip: str,
) -> None:
    """Never logs credentials: only the account name and what was asked and answered."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    record = {
        "request_id": request_id,
        "action": action,
        "region": region,
        "account": account,
        "code": code,
        "ms": round(seconds * 1000, 3),
        "client": client_ip,
    }
    access_log.info(orjson.dumps(record).decode())
