"""Whether a process named in the database (a job's owner, a node's server) may still run."""

from __future__ import annotations

import os
import socket


def may_be_running(host: str, pid: int) -> bool:
    """False only when it is known for sure: the process was on this host and is gone. On
    another host nothing can be told from here (its lease or heartbeat has to run out)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
