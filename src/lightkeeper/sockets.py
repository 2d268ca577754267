"""Whether a socket has input waiting, without reading it: one ``poll`` with no timeout.
Outside the layers, so that the HTTP transport (an idle timer that must not close a socket
holding an unread request) and the store (a pooled connection the server cut) share it."""

from __future__ import annotations

import select


def has_input(fileno: int) -> bool:
    """Bytes, the peer's close or an error wait on ``fileno`` (POLLIN, or POLLHUP/POLLERR,
    which poll reports whatever was asked)."""
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))
