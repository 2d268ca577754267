"""What ``/metrics`` shows of the store's writes: how many write transactions committed and
in how many real commits (group commit, store/group_commit.py: their ratio is the writers
one fsync served)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine

from lightkeeper.store.database import writer_group


class WriteMetrics(Collector):
    def __init__(self, engine: Engine) -> None:
        self._group = writer_group(engine)

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "lightkeeper_database_committed_writes",
            "Write transactions of this node that committed.",
            value=self._group.committed_writes,
        )
        yield CounterMetricFamily(
            "lightkeeper_database_commits",
            "Database commits this node made: queued write transactions share one.",
            value=self._group.commits,
        )
