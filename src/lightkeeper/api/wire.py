"""Read one HTTP request into an ``ApiCall``: where the action, region, language, parameters
and signature material are, for each of the SDK's transport modes (wire-protocol §2.1).

Only parsing happens here; every rule about the values is applied by ``app.Frontend``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import ClientDisconnect, Request

from lightkeeper.api.flatten import unflatten
from lightkeeper.api.forwarded import Network, client_address
from lightkeeper.api.integers import ascii_decimal
from lightkeeper.domain import ids
from lightkeeper.errors import DEFAULT_LANGUAGE, LANGUAGES, ApiError

if TYPE_CHECKING:
    from lightkeeper.domain.principal import Principal

GET_LIMIT = 32 * 1024
V1_POST_LIMIT = 1024 * 1024
V3_POST_LIMIT = 10 * 1024 * 1024

V1_COMMON = frozenset(
    {
        "Action",
        "Version",
        "Region",
        "Timestamp",
        "Nonce",
        "SecretId",
        "Signature",
        "SignatureMethod",
        "Language",
        "Token",
        "RequestClient",
    }
)


@dataclass
class ApiCall:
    """Everything the front end needs to authenticate and dispatch one request."""

    request_id: str
    method: str
    host: str
    client_ip: str  # CAM's qcs:ip: the TCP peer, or what a trusted proxy forwards for
    proxy: str | None = None  # the TCP peer, when client_ip came from X-Forwarded-For
    principal: Principal | None = None  # set once the signature is verified
    language: str = DEFAULT_LANGUAGE
    scheme: str = ""  # "TC3-HMAC-SHA256", "HmacSHA1" or "HmacSHA256"; "" when unknown
    action: str | None = None
    version: str | None = None
    region: str | None = None
    timestamp: str | None = None
    token: str | None = None
    authorization: str | None = None
    query: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    common: dict[str, str] = field(default_factory=dict)  # v1 common parameters, raw
    raw_v1: dict[str, str] = field(default_factory=dict)  # every v1 parameter, for signing
    params: dict[str, Any] = field(default_factory=dict)
    typed_params: bool = False  # JSON bodies carry real types; form values are all strings
    received: float = field(default_factory=time.monotonic)  # when its handling began


def new_call(request: Request, proxies: Sequence[Network] = ()) -> ApiCall:
    """Start a call with what is known before the body is read (RequestId, language, who)."""
    raw = request.scope["headers"]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
    client = request.client
    peer = client.host if client else ""
    # every X-Forwarded-For line (the dict above keeps only the last), read only when needed
    forwarded = [v.decode("latin-1") for k, v in raw if k == b"x-forwarded-for"] if proxies else []
    client_ip, via_proxy = client_address(peer, forwarded, proxies)
    call = ApiCall(
        request_id=ids.new_uuid(),
        method=request.method,
        host=headers.get("host", ""),
        client_ip=client_ip,
        proxy=peer if via_proxy else None,
        headers=headers,
        query=request.scope.get("query_string", b"").decode("latin-1"),
    )
    call.language = _language(headers.get("x-tc-language"))
    return call


def _language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing anything over ``limit`` without buffering it all."""
    declared = ascii_decimal(request.headers.get("content-length") or "")
    if declared is not None and declared > limit:
        raise ApiError("RequestSizeLimitExceeded", limit=limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError("RequestSizeLimitExceeded", limit=limit)
            chunks.append(chunk)
    except ClientDisconnect:  # the client closed before sending Content-Length bytes
        raise ApiError.variant("InvalidParameter#body") from None
    return b"".join(chunks)


async def parse(request: Request, call: ApiCall) -> None:
    """Fill ``call`` from the request; raises ``ApiError`` for transport-level problems."""
    if call.method not in ("GET", "POST"):
        raise ApiError("UnsupportedProtocol", method=call.method)
    content_type = call.headers.get("content-type", "").split(";")[0].strip().lower()
    if call.method == "GET":
        if len(call.query) > GET_LIMIT:
            raise ApiError("RequestSizeLimitExceeded", limit=GET_LIMIT)
        pairs = _pairs(call.query)
        if call.headers.get("authorization"):
            _from_tc3_headers(call)
            call.params = unflatten(pairs)
        else:
            _from_v1(call, pairs)
        return
    if content_type == "application/json":
        call.body = await read_body(request, V3_POST_LIMIT)
        _from_tc3_headers(call)
        call.params = _json_object(call.body)
        call.typed_params = True
    elif content_type == "application/x-www-form-urlencoded":
        call.body = await read_body(request, V1_POST_LIMIT)
        try:
            text = call.body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError.variant("InvalidParameter#body") from None
        _from_v1(call, _pairs(text))
    else:
        raise ApiError.variant("InvalidRequest#content_type", content_type=content_type or "none")


def _pairs(text: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=False, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ApiError.variant("InvalidParameter#body") from None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise ApiError.variant("InvalidParameter#body") from None
    if not isinstance(value, dict):
        raise ApiError.variant("InvalidParameter#body")
    return value


def _from_tc3_headers(call: ApiCall) -> None:
    headers = call.headers
    call.scheme = "TC3-HMAC-SHA256"
    call.authorization = headers.get("authorization")
    call.action = headers.get("x-tc-action")
    call.version = headers.get("x-tc-version")
    call.region = headers.get("x-tc-region") or None
    call.timestamp = headers.get("x-tc-timestamp")
    call.token = headers.get("x-tc-token") or None


def _from_v1(call: ApiCall, pairs: list[tuple[str, str]]) -> None:
    raw: dict[str, str] = {}
    for key, value in pairs:
        if key in raw:
            raise ApiError("InvalidParameter", name=key)
        raw[key] = value
    call.raw_v1 = raw
    call.common = {k: v for k, v in raw.items() if k in V1_COMMON}
    call.scheme = raw.get("SignatureMethod", "HmacSHA1")
    call.action = raw.get("Action")
    call.version = raw.get("Version")
    call.region = raw.get("Region") or None
    call.timestamp = raw.get("Timestamp")
    call.token = raw.get("Token") or None
    call.language = _language(raw.get("Language"))
    call.params = unflatten([(k, v) for k, v in raw.items() if k not in V1_COMMON])
