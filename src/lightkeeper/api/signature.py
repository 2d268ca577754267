"""Signature verification for TC3-HMAC-SHA256 (v3) and HmacSHA1/HmacSHA256 (v1).

Both are rebuilt exactly as ``tencentcloud.common.abstract_client`` computes them: over the
``Host`` header as received (tccli signs ``http://127.0.0.1:PORT``), the raw body or the raw
query string, and the UTC date of the timestamp. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from lightkeeper.errors import ApiError

TC3 = "TC3-HMAC-SHA256"
V1_METHODS = {"HmacSHA1": hashlib.sha1, "HmacSHA256": hashlib.sha256}
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
REQUIRED_SIGNED_HEADERS = frozenset({"content-type", "host"})


@dataclass(frozen=True)
class Tc3Authorization:
    """The parts of an ``Authorization: TC3-HMAC-SHA256 ...`` header."""

    secret_id: str
    date: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_tc3_authorization(header: str) -> Tc3Authorization:
    """Split the header; anything malformed is ``AuthFailure.InvalidAuthorization``."""
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != TC3:
        raise ApiError("AuthFailure.InvalidAuthorization", reason="unsupported algorithm")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise ApiError("AuthFailure.InvalidAuthorization", reason=f"malformed `{key}`")
        fields[key] = value
    try:
        credential = fields["Credential"].split("/")
        signed = tuple(fields["SignedHeaders"].split(";"))
        signature = fields["Signature"]
    except KeyError as missing:
        raise ApiError(
            "AuthFailure.InvalidAuthorization", reason=f"missing {missing.args[0]}"
        ) from None
    if len(credential) != 4 or credential[3] != "tc3_request" or not all(credential):
        raise ApiError("AuthFailure.InvalidAuthorization", reason="malformed Credential")
    if not REQUIRED_SIGNED_HEADERS <= set(signed):
        raise ApiError(
            "AuthFailure.InvalidAuthorization",
            reason="SignedHeaders must include content-type;host",
        )
    return Tc3Authorization(credential[0], credential[1], credential[2], signed, signature)


def _same(expected: str, provided: str) -> bool:
    """Constant-time; on bytes, because ``compare_digest`` raises TypeError for a non-ASCII str
    and a client can send any byte in a header or form value."""
    return hmac.compare_digest(expected.encode(), provided.encode("utf-8", "surrogatepass"))


def _hmac256(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def tc3_signature(
    secret_key: str,
    auth: Tc3Authorization,
    *,
    method: str,
    query: str,
    headers: Mapping[str, str],
    payload: bytes,
    timestamp: str,
) -> str:
    """The hex signature the SDK would have sent for this request."""
    if headers.get("x-tc-content-sha256") == UNSIGNED_PAYLOAD:
        payload = UNSIGNED_PAYLOAD.encode()
    canonical_headers = "".join(f"{name}:{headers.get(name, '')}\n" for name in auth.signed_headers)
    canonical_request = "\n".join(
        (
            method,
            "/",
            query if method == "GET" else "",
            canonical_headers,
            ";".join(auth.signed_headers),
            hashlib.sha256(b"" if method == "GET" else payload).hexdigest(),
        )
    )
    scope = f"{auth.date}/{auth.service}/tc3_request"
    string_to_sign = "\n".join(
        (TC3, timestamp, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest())
    )
    key = _tc3_signing_key(secret_key, auth.date, auth.service)
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=1024)
def _tc3_signing_key(secret_key: str, date: str, service: str) -> bytes:
    """The derived key depends only on the secret, the day and the service: three of the four
    HMACs of a verification, the same for every request a key signs that day."""
    key = _hmac256(("TC3" + secret_key).encode("utf-8"), date)
    key = _hmac256(key, service)
    return _hmac256(key, "tc3_request")


def tc3_matches(
    secret_key: str,
    auth: Tc3Authorization,
    *,
    method: str,
    query: str,
    headers: Mapping[str, str],
    payload: bytes,
    timestamp: str,
) -> bool:
    """Try the header values verbatim (as the Python SDK signs), then trimmed and lower-cased."""
    variants = [headers, {k: v.strip().lower() for k, v in headers.items()}]
    for variant in variants:
        expected = tc3_signature(
            secret_key,
            auth,
            method=method,
            query=query,
            headers=variant,
            payload=payload,
            timestamp=timestamp,
        )
        if _same(expected, auth.signature):
            return True
    return False


def v1_string_to_sign(method: str, host: str, path: str, params: Mapping[str, str]) -> str:
    """``METHOD + host + path + '?' + sorted k=v`` with raw values; ``_`` in keys reads ``.``."""
    formatted = {k.replace("_", "."): v for k, v in params.items() if k != "Signature"}
    joined = "&".join(f"{k}={formatted[k]}" for k in sorted(formatted))
    return f"{method}{host}{path}?{joined}"


def v1_matches(secret_key: str, sign_method: str, string_to_sign: str, signature: str) -> bool:
    digest = hmac.new(
        secret_key.encode("utf-8"), string_to_sign.encode("utf-8"), V1_METHODS[sign_method]
    ).digest()
    return _same(base64.b64encode(digest).decode(), signature)
