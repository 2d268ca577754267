"""What an action is to the front end: a request model, a handler and its limits.

Adding an action is one handler plus one entry in ``lightkeeper.lighthouse.actions``; the
request model comes from the generated ``lighthouse.models``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from lightkeeper.domain.principal import Principal

Reply = dict[str, Any]


@dataclass(frozen=True)
class Context:
    """What a handler may know about the call besides its parameters."""

    request_id: str
    action: str
    region: str | None
    language: str
    principal: Principal
    client_ip: str


Handler = Callable[[Context, Any], Reply]
# For an action that may omit Region: the region the call is about (its instance's), from the
# caller and the raw parameters, or None if there is none to find.
RegionOf = Callable[[Principal, Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class Action:
    name: str
    model: type[BaseModel]
    handler: Handler
    rate_limit: int = 20
    region_required: bool = True
    # The handler only reads the database: it never waits for a lock, a disk or a machine,
    # so a front end over a local database may run it on the event loop (``Frontend``).
    reads_only: bool = False
    # A call without Region is treated as a call in this region (conditions, resources, rate
    # limit bucket, lookups), so leaving Region out can never bypass a rule about a region.
    region_of: RegionOf | None = None


Registry = Mapping[str, Action]


class Authorizer(Protocol):
    def authorize(self, ctx: Context, request: Any) -> None:
        """Raise ``UnauthorizedOperation.NoPermission`` unless the principal may do this."""


class AllowAll:
    """For a front end without access control (tests of the bare protocol)."""

    def authorize(self, ctx: Context, request: Any) -> None:
        return None


ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]
