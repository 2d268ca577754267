"""This server as a node of its database: its heartbeat, and what ``/healthz`` and
``/metrics`` say about it and about the jobs of every node."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lightkeeper.store import nodes
from lightkeeper.store.database import StoreUnavailable

if TYPE_CHECKING:  # prometheus_client is imported when metrics are set up: ``admin`` never is
    from prometheus_client import CollectorRegistry, Histogram
    from prometheus_client.registry import Collector

logger = logging.getLogger("lightkeeper.node")


class Heartbeat:
    """Writes ``nodes.heartbeat_at`` every ``interval`` seconds (run by the worker's
    ``every``) and remembers when it last succeeded."""

    def __init__(self, engine: Engine, name: str, interval: float) -> None:
        self.engine = engine
        self.name = name
        self.interval = interval
        self._last_ok = time.monotonic()
        self._trouble_since: float | None = None  # a beat failed, or one is still waiting
        self._latency: Histogram | None = None

    def beat(self) -> None:
        started = time.monotonic()
        if self._trouble_since is None:
            self._trouble_since = started  # cleared when this beat succeeds
        try:
            mine = nodes.heartbeat(self.engine, self.name)
        except (SQLAlchemyError, StoreUnavailable) as exc:
            logger.warning("node %s: heartbeat not written: %s", self.name, exc)
            return
        finished = time.monotonic()
        if self._latency is not None:
            self._latency.observe(finished - started)
        if not mine:
            logger.error("node %s: the name now belongs to another process", self.name)
            return
        self._last_ok = finished
        self._trouble_since = None

    def age(self) -> float:
        """Seconds since the last heartbeat was written."""
        return time.monotonic() - self._last_ok

    def problem(self) -> str | None:
        """For ``/healthz``: the heartbeat is failing (or hanging) for as long as other nodes
        take to count this one as down. A process that was only paused (its beats were not
        even tried) is not unhealthy for that: its next beat comes within an interval."""
        trouble = self._trouble_since
        if trouble is None or time.monotonic() - trouble <= nodes.MISSED_BEATS * self.interval:
            return None
        return f"the node's heartbeat has not been written for {self.age():.0f} s"

    def instrument(self, registry: CollectorRegistry, take_overs: Callable[[], int]) -> None:
        from prometheus_client import Histogram

        self._latency = Histogram(
            "lightkeeper_database_latency_seconds",
            "Round trip of the heartbeat's write transaction (write lock included).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        registry.register(_node_collector(self, take_overs))


def _node_collector(heartbeat: Heartbeat, take_overs: Callable[[], int]) -> Collector:
    """Read at each scrape: the jobs of every node by state, this node's take-overs and
    heartbeat age. The class is made here, where prometheus_client is imported: every
    ``admin`` command imports this module (through ``server``) and should not pay for it."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector

    class NodeCollector(Collector):
        def collect(self) -> Iterator[Metric]:
            counts = GaugeMetricFamily(
                "lightkeeper_jobs",
                "Jobs by state and by the node that claimed them last ('' if none yet).",
                labels=["state", "node"],
            )
            try:
                for state, node, count in nodes.job_counts(heartbeat.engine):
                    counts.add_metric([state, node], count)
            except SQLAlchemyError:
                pass  # a scrape while the database is away: the other figures still count
            yield counts
            yield CounterMetricFamily(
                "lightkeeper_job_lease_takeovers",
                "Jobs this node claimed after another owner's lease expired.",
                value=take_overs(),
            )
            yield GaugeMetricFamily(
                "lightkeeper_node_heartbeat_age_seconds",
                "Seconds since this node's heartbeat was last written.",
                value=heartbeat.age(),
            )

    return NodeCollector()
