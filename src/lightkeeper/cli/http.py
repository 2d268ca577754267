"""The uvicorn server ``serve`` runs (imported lazily: admin commands never need it)."""

from __future__ import annotations

from types import FrameType

import uvicorn


class Server(uvicorn.Server):
    """uvicorn re-raises the signal that stopped it once it has shut down, which ends the
    process with -SIGTERM, or with click's "Aborted!" and status 1 for SIGINT. A requested stop
    is a clean one: exit status 0."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        getattr(self, "_captured_signals", []).clear()
