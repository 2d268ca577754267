"""The ASGI application: one POST/GET endpoint at ``/`` plus ``/healthz`` and ``/metrics``.

``Frontend.dispatch`` applies the API 3.0 rules in the order the real gateway does: transport,
action and version, authentication, region, rate limit, parameters, then the handler.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from lightkeeper.api import envelope, wire
from lightkeeper.api.auth import KeyStore, ReplayGuard, authenticate
from lightkeeper.api.chaos import Faults
from lightkeeper.api.forwarded import Network
from lightkeeper.api.observability import Metrics, log_request
from lightkeeper.api.ratelimit import RateLimiter
from lightkeeper.api.registry import AllowAll, Authorizer, Context, Registry, Reply
from lightkeeper.api.validation import validate
from lightkeeper.errors import ApiError

logger = logging.getLogger("lightkeeper.api")


@dataclass
class Frontend:
    """Everything the endpoint needs, built once per server."""

    registry: Registry
    keys: KeyStore
    version: str
    service: str
    regions: Collection[str]
    rate_limits: Mapping[str, int] = field(default_factory=dict)  # overrides per action
    limiter: RateLimiter = field(default_factory=RateLimiter)
    replay: ReplayGuard = field(default_factory=ReplayGuard)
    metrics: Metrics = field(default_factory=Metrics)
    # Why the server cannot serve writes now (store/health.py), or None; cheap: /healthz is polled.
    health: Callable[[], str | None] = lambda: None
    authorizer: Authorizer = field(default_factory=AllowAll)
    # Run ``reads_only`` actions on the event loop. For a local SQLite file: such a read takes
    # a fraction of a millisecond and never waits (WAL readers take no lock), while the hop to
    # a worker thread cost more than the read itself (GIL hand-offs between the threads on
    # every SQLite call; the measurements are in docs/performance.md, "Reads on the event loop").
    # Off for a database across a network, whose round trips would stall the loop.
    inline_reads: bool = False
    # Peers whose X-Forwarded-For is believed (``--trusted-proxy``); none by default.
    trusted_proxies: tuple[Network, ...] = ()
    # Faults a test armed through the control API (api/chaos.py); empty otherwise.
    faults: Faults = field(default_factory=Faults)

    def runs_inline(self, call: wire.ApiCall) -> bool:
        action = self.registry.get(call.action) if call.action else None
        return (
            self.inline_reads
            and action is not None
            and action.reads_only
            and not self.faults.armed()  # a delay must not hold the event loop
        )

    def dispatch(self, call: wire.ApiCall) -> Reply:
        """Run one parsed call; every refusal is an ``ApiError``. ``call.principal`` is set as
        soon as the signature is verified, so refusals after it are logged with the caller."""
        if not call.action:
            raise ApiError("MissingParameter", name="Action")
        action = self.registry.get(call.action)
        if action is None:
            raise ApiError("InvalidAction")
        if not call.version:
            raise ApiError("MissingParameter", name="Version")
        if call.version != self.version:
            raise ApiError("NoSuchVersion", action=call.action, version=call.version)
        now = time.time()
        principal = call.principal = authenticate(call, self.keys, self.replay, self.service, now)
        fault = self.faults.take("call", action.name)
        if fault is not None:  # after authentication: an unsigned call is still refused first
            fault.strike(call.request_id)
        region = call.region
        if region is None and action.region_of is not None:
            region = action.region_of(principal, call.params)  # no bypass by omitting Region
        if region is None:
            if action.region_required:
                raise ApiError("MissingParameter", name="Region")
        elif region not in self.regions:
            raise ApiError("UnsupportedRegion", action=action.name, region=region)
        limit = self.rate_limits.get(action.name, action.rate_limit)
        self.limiter.hit(action.name, region or "", principal.rate_limit_key, limit, now)
        request = validate(action.model, call.params, strict=call.typed_params)
        context = Context(
            request_id=call.request_id,
            action=action.name,
            region=region,
            language=call.language,
            principal=principal,
            client_ip=call.client_ip,
        )
        if not principal.is_root:
            self.authorizer.authorize(context, request)
        return action.handler(context, request)


Hook = Callable[[], None]


ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def build_app(
    frontend: Frontend,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    mounts: Mapping[str, ASGI] | None = None,
    browser_home: str | None = None,
) -> ASGI:
    """A plain ASGI callable: three paths do not need a router. ``mounts``: apps served
    under a path prefix outside API 3.0 (the console, the control API), answered before
    anything else; the longest prefix first. ``browser_home``: where a browser opening
    ``/`` or ``/docs`` is sent (the console), instead of an API refusal."""
    mounted = sorted((mounts or {}).items(), key=lambda item: -len(item[0]))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, on_startup, on_shutdown)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        for prefix, mounted_app in mounted:
            if path == prefix or path.startswith(prefix + "/"):
                await mounted_app({**scope, "root_path": prefix}, receive, send)
                return
        if browser_home is not None and path in ("/", "/docs") and _is_browser(scope):
            response: Response = RedirectResponse(browser_home, 302)
        elif path == "/healthz":
            response = _healthz(frontend)
        elif path == "/metrics":
            response = Response(generate_latest(frontend.metrics.registry), 200)
            response.headers["content-type"] = CONTENT_TYPE_LATEST
        else:
            response = await _api(frontend, Request(scope, receive))
        await response(scope, receive, send)

    return app


def endpoint(frontend: Frontend) -> ASGI:
    """Only the API 3.0 endpoint of ``frontend``, to mount under a path of another app (a
    second service beside Lighthouse: the console's STS, lighthouse/federation.py)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = await _api(frontend, Request(scope, receive))
            await response(scope, receive, send)

    return app


async def _lifespan(
    receive: Receive, send: Send, on_startup: Sequence[Hook], on_shutdown: Sequence[Hook]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            for hook in on_startup:
                await run_in_threadpool(hook)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            for hook in on_shutdown:
                await run_in_threadpool(hook)
            await send({"type": "lifespan.shutdown.complete"})
            return


def _is_browser(scope: Scope) -> bool:
    """A person's browser, not an API call: ``GET`` with no query and no signature, asking
    for HTML (every API call has a query or a body, and a signature or an Action)."""
    if scope["method"] != "GET" or scope.get("query_string"):
        return False
    headers = dict(scope["headers"])
    return b"authorization" not in headers and b"text/html" in headers.get(b"accept", b"")


def _healthz(frontend: Frontend) -> Response:
    problem = frontend.health()
    if problem is None:
        return PlainTextResponse("ok\n", 200)
    return PlainTextResponse(f"unhealthy: {problem}\n", 503)


async def _api(frontend: Frontend, request: Request) -> Response:
    started = time.perf_counter()
    call = wire.new_call(request, frontend.trusted_proxies)
    code = ""
    try:
        await wire.parse(request, call)
        if frontend.runs_inline(call):
            reply = frontend.dispatch(call)
        else:
            reply = await run_in_threadpool(frontend.dispatch, call)
        response: Response = envelope.success(reply, call.request_id)
    except ApiError as error:
        code = error.code
        response = envelope.failure(error, call.request_id, call.language)
    except Exception:
        logger.exception("internal error in request %s", call.request_id)
        internal = ApiError("InternalError", request_id=call.request_id)
        code = internal.code
        response = envelope.failure(internal, call.request_id, call.language)
    elapsed = time.perf_counter() - started
    action = call.action if call.action and call.action in frontend.registry else "-"
    frontend.metrics.observe(action, code, elapsed)
    log_request(call, code, elapsed)
    return response
