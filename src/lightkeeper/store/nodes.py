"""The nodes of one database: each ``serve`` registers under its name at start, writes a
heartbeat while it runs and says when it stops, so every node and ``admin node list`` can
tell a live node from one that stopped or died (a node is down once its heartbeat is
``MISSED_BEATS`` of its own intervals old)."""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, Engine, and_, delete, func, insert, select, update

from lightkeeper.store.database import write
from lightkeeper.store.jobs import RUNNING
from lightkeeper.store.processes import may_be_running
from lightkeeper.store.resources import utcnow
from lightkeeper.store.tables import instances, jobs, nodes

MISSED_BEATS = 3
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class NodeState(StrEnum):
    UP = "UP"
    DOWN = "DOWN"  # its heartbeat stopped: crashed, frozen or cut off
    STOPPED = "STOPPED"  # it said so when it stopped


class NodeTaken(Exception):
    """Another live process already serves under this node name."""


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    host: str
    pid: int
    storage: str
    compute: str
    started_at: dt.datetime
    heartbeat_at: dt.datetime
    heartbeat_seconds: float  # 0: stopped cleanly
    pool: str | None  # the storage pool it reaches (None: registered before pools)
    running_jobs: int

    def state(self, now: dt.datetime) -> NodeState:
        if self.heartbeat_seconds == 0:
            return NodeState.STOPPED
        age = (now - self.heartbeat_at).total_seconds()
        return NodeState.UP if age <= MISSED_BEATS * self.heartbeat_seconds else NodeState.DOWN


def checked_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(
            f"node name {name!r}: 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def default_name() -> str:
    """The host name, made a valid node name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64].lstrip("._-")
    return name or "node"


def register(
    engine: Engine,
    name: str,
    address: str,
    storage: str,
    compute: str,
    interval: float,
    pool: str | None = None,
) -> None:
    """Take ``name`` for this process; NodeTaken if a live process of another pid or host
    holds it (two servers under one name would each think the other's jobs theirs)."""
    host, pid, now = socket.gethostname(), os.getpid(), utcnow()
    with write(engine) as conn:
        row = conn.execute(select(nodes).where(nodes.c.name == name)).first()
        if row is not None:
            held = Node(**row._asdict(), running_jobs=0)
            if held.state(now) == NodeState.UP and _alive_elsewhere(held, host, pid):
                age = (now - held.heartbeat_at).total_seconds()
                raise NodeTaken(
                    f"node {name!r} is already served by pid {held.pid} on {held.host} "
                    f"(heartbeat {age:.1f} s ago): give this server another --node"
                )
            conn.execute(delete(nodes).where(nodes.c.name == name))
        conn.execute(
            insert(nodes).values(
                name=name,
                address=address,
                host=host,
                pid=pid,
                storage=storage,
                compute=compute,
                started_at=now,
                heartbeat_at=now,
                heartbeat_seconds=interval,
                pool=pool,
            )
        )


def _alive_elsewhere(held: Node, host: str, pid: int) -> bool:
    """Whether the process that holds a fresh heartbeat may still be running: on this host
    that is known (a server restarted right after a kill -9 takes its name back at once);
    on another, its heartbeat has to run out."""
    if held.host == host and held.pid == pid:
        return False
    return may_be_running(held.host, held.pid)


def _mine(name: str) -> ColumnElement[bool]:
    return and_(
        nodes.c.name == name, nodes.c.host == socket.gethostname(), nodes.c.pid == os.getpid()
    )


def heartbeat(engine: Engine, name: str) -> bool:
    """Refresh this process's heartbeat; False if the name is no longer this process's."""
    with write(engine) as conn:
        done = conn.execute(update(nodes).where(_mine(name)).values(heartbeat_at=utcnow()))
    return bool(done.rowcount)


def stopped(engine: Engine, name: str) -> None:
    """Said at a clean stop: the node is STOPPED, not DOWN."""
    with write(engine) as conn:
        conn.execute(
            update(nodes).where(_mine(name)).values(heartbeat_at=utcnow(), heartbeat_seconds=0)
        )


def list_nodes(engine: Engine) -> list[Node]:
    """Every node ever registered, with the jobs it is running now, by name."""
    with engine.connect() as conn:
        running: dict[str, int] = dict(
            conn.execute(
                select(jobs.c.node, func.count())
                .where(jobs.c.state == RUNNING, jobs.c.node.is_not(None))
                .group_by(jobs.c.node)
            ).all()
        )
        rows = conn.execute(select(nodes).order_by(nodes.c.name)).all()
    return [Node(**r._asdict(), running_jobs=int(running.get(r.name, 0))) for r in rows]


def get_node(engine: Engine, name: str) -> Node | None:
    return next((n for n in list_nodes(engine) if n.name == name), None)


def least_loaded(engine: Engine, pool: str) -> str | None:
    """Where a new instance whose disk is made in ``pool`` goes by default: the UP node of
    that pool placed with the fewest instances (ties by name); None when none is UP."""
    now = utcnow()
    up = [n.name for n in list_nodes(engine) if n.pool == pool and n.state(now) == NodeState.UP]
    if not up:
        return None
    with engine.connect() as conn:
        placed: dict[str, int] = dict(
            conn.execute(
                select(instances.c.node, func.count())
                .where(instances.c.node.in_(up))
                .group_by(instances.c.node)
            ).all()
        )
    return min(up, key=lambda name: (placed.get(name, 0), name))


def job_counts(engine: Engine) -> list[tuple[str, str, int]]:
    """(state, node or "", count) of every job: the ``lightkeeper_jobs`` gauge."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.state, jobs.c.node, func.count()).group_by(jobs.c.state, jobs.c.node)
        ).all()
    return [(state, node or "", int(count)) for state, node, count in rows]
