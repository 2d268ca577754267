"""The signature verifier against five requests signed by the real SDK, and every one-byte
change to what those signatures cover.

The unit part calls ``lightkeeper.api.signature`` directly (a pure function); the last test
goes through the real server with requests signed by the SDK's ``Sign`` helper.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit import clients
from testkit.server import Account, Server

from lightkeeper.api import signature
from lightkeeper.errors import ApiError

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "signature-vectors.json").read_text("utf-8")
)
TC3_FIELDS = ("data", "Host", "Content-Type", "X-TC-Timestamp", "signature")
V1_FIELDS = ("data", "endpoint")


@dataclass
class Inputs:
    """Everything one vector's signature covers, as the bytes that travel on the wire."""

    vector: dict[str, Any]
    fields: dict[str, bytes]

    @classmethod
    def of(cls, vector: dict[str, Any]) -> Inputs:
        if vector["signMethod"] == signature.TC3:
            headers = vector["headers"]
            auth = headers["Authorization"]
            fields = {
                "data": vector["data"].encode(),
                "Host": headers["Host"].encode(),
                "Content-Type": headers["Content-Type"].encode(),
                "X-TC-Timestamp": headers["X-TC-Timestamp"].encode(),
                "signature": auth.rpartition("Signature=")[2].encode(),
            }
        else:
            fields = {"data": vector["data"].encode(), "endpoint": vector["endpoint"].encode()}
        return cls(vector, fields)

    def changed(self, field: str, position: int, value: int) -> Inputs:
        data = bytearray(self.fields[field])
        data[position] = value
        return Inputs(self.vector, {**self.fields, field: bytes(data)})


def v1_params(data: bytes) -> dict[str, str] | None:
    """Parse a v1 body the way the server does (UTF-8, strict escapes, no duplicate keys)."""
    try:
        pairs = parse_qsl(data.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return None
    params = dict(pairs)
    return params if len(params) == len(pairs) else None


def accepted(inputs: Inputs) -> bool:
    """What the server's verifier says about these inputs (a refusal of any kind is False)."""
    vector, fields = inputs.vector, inputs.fields
    method = vector["reqMethod"]
    try:
        if vector["signMethod"] == signature.TC3:
            original = vector["headers"]["Authorization"].rpartition("Signature=")[0]
            auth = signature.parse_tc3_authorization(
                original + "Signature=" + fields["signature"].decode("latin-1")
            )
            headers = {k.lower(): v for k, v in vector["headers"].items()}
            for name in ("Host", "Content-Type", "X-TC-Timestamp"):
                headers[name.lower()] = fields[name].decode("latin-1")
            return signature.tc3_matches(
                vector["secret_key"],
                auth,
                method=method,
                query=fields["data"].decode("latin-1") if method == "GET" else "",
                headers=headers,
                payload=fields["data"] if method == "POST" else b"",
                timestamp=headers["x-tc-timestamp"],
            )
        params = v1_params(fields["data"])
        if params is None or "Signature" not in params:
            return False
        text = signature.v1_string_to_sign(
            method, fields["endpoint"].decode("latin-1"), "/", params
        )
        return signature.v1_matches(
            vector["secret_key"], vector["signMethod"], text, params["Signature"]
        )
    except ApiError:
        return False


def same_request(before: Inputs, after: Inputs, field: str) -> bool:
    """Changes the protocol itself treats as no change, so a valid signature must survive."""
    old, new = before.fields[field], after.fields[field]
    if before.vector["signMethod"] == signature.TC3:
        # The verifier also tries trimmed, lower-cased header values (other SDKs sign those).
        return field in ("Host", "Content-Type") and new.lower() == old.lower()
    if field != "data":
        return False

    # v1 signs decoded values ("+" and "%20" are one space, "%2f" is "%2F") and reads "_" in
    # a key as "." (the SDK's own quirk), so such spellings are the same signed request.
    def canonical(data: bytes) -> dict[str, str] | None:
        params = v1_params(data)
        return None if params is None else {k.replace("_", "."): v for k, v in params.items()}

    return canonical(old) == canonical(new) and canonical(new) is not None


def labels(vector: dict[str, Any]) -> str:
    return str(vector["label"])


def test_there_are_five_vectors_covering_every_sign_method() -> None:
    assert len(VECTORS) == 5
    assert {v["signMethod"] for v in VECTORS} == {"TC3-HMAC-SHA256", "HmacSHA256", "HmacSHA1"}
    assert {
        v["headers"]["X-TC-Timestamp"] for v in VECTORS if "X-TC-Timestamp" in v["headers"]
    } == {"1700000000"}


@pytest.mark.parametrize("vector", VECTORS, ids=labels)
def test_sdk_signed_vector_is_accepted(vector: dict[str, Any]) -> None:
    assert accepted(Inputs.of(vector))


@pytest.mark.parametrize("vector", VECTORS, ids=labels)
def test_wrong_secret_key_is_rejected(vector: dict[str, Any]) -> None:
    other = {**vector, "secret_key": vector["secret_key"][:-1] + "5"}
    assert not accepted(Inputs.of(other))


@pytest.mark.parametrize("vector", VECTORS, ids=labels)
def test_every_single_bit_flip_is_rejected(vector: dict[str, Any]) -> None:
    """Exhaustive: flip the low bit of every byte of every field the signature covers."""
    inputs = Inputs.of(vector)
    flips = 0
    for field, value in inputs.fields.items():
        for position, byte in enumerate(value):
            changed = inputs.changed(field, position, byte ^ 0x01)
            assert not accepted(changed), (field, position, changed.fields[field])
            flips += 1
    assert flips == sum(len(v) for v in inputs.fields.values()) > 100


@st.composite
def one_byte_change(draw: st.DrawFn) -> tuple[Inputs, Inputs, str]:
    inputs = Inputs.of(draw(st.sampled_from(VECTORS)))
    field = draw(st.sampled_from(sorted(inputs.fields)))
    position = draw(st.integers(0, len(inputs.fields[field]) - 1))
    original = inputs.fields[field][position]
    value = draw(st.integers(0, 255).filter(lambda b: b != original))
    return inputs, inputs.changed(field, position, value), field


@settings(max_examples=400, deadline=None)
@given(change=one_byte_change())
def test_any_one_byte_change_is_rejected_unless_it_spells_the_same_request(
    change: tuple[Inputs, Inputs, str],
) -> None:
    before, after, field = change
    assert accepted(after) == same_request(before, after, field)


def test_known_equivalent_spellings_are_accepted() -> None:
    """The exceptions above are real: these one-byte changes keep a v1 signature valid."""
    v1 = Inputs.of(next(v for v in VECTORS if v["signMethod"] == "HmacSHA256"))
    data = v1.fields["data"]
    plus = data.index(b"+")
    assert accepted(v1.changed("data", plus, ord(" ")))  # "+" and " " both mean a space
    dot = data.index(b"Tags.0") + 4
    assert accepted(v1.changed("data", dot, ord("_")))  # "Tags_0.Key" signs as "Tags.0.Key"
    tc3 = Inputs.of(VECTORS[0])
    assert accepted(tc3.changed("Content-Type", 0, ord("A")))  # header case is forgiven


# --- through the real server ----------------------------------------------------------------

# Header bytes a client can send: visible ASCII and latin-1 (servers read headers as latin-1).
HEADER_BYTES = st.one_of(st.integers(0x21, 0x7E), st.integers(0x80, 0xFF))
E2E_FIELDS = ("body", "X-TC-Timestamp", "X-TC-Region", "X-TC-Action", "signature")
REFUSALS = {
    "body": {"AuthFailure.SignatureFailure", "InvalidParameter"},
    "X-TC-Timestamp": {
        "AuthFailure.SignatureExpire",
        "AuthFailure.SignatureFailure",
        "InvalidParameter",
    },
    "X-TC-Region": {"UnsupportedRegion"},
    "X-TC-Action": {"InvalidAction"},
    "signature": {"AuthFailure.SignatureFailure", "AuthFailure.InvalidAuthorization"},
}


@st.composite
def tampered_request(draw: st.DrawFn) -> tuple[dict[str, Any], str, str]:
    params: dict[str, Any] = {}
    order = draw(st.sampled_from([None, "ASC", "DESC"]))
    if order is not None:
        params["Order"] = order
    region = draw(st.sampled_from(["ap-guangzhou", "ap-beijing", "ap-singapore", "eu-frankfurt"]))
    language = draw(st.sampled_from(["en-US", "zh-CN"]))
    field = draw(st.sampled_from(E2E_FIELDS))
    return (
        {
            "params": params,
            "region": region,
            "language": language,
            "position": draw(st.integers(0, 10_000)),
            "value": draw(st.integers(0, 255)),
            "header_byte": draw(HEADER_BYTES),
        },
        field,
        region,
    )


@pytest.fixture(scope="module")
def http(server: Server) -> Any:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@settings(max_examples=40, deadline=None)
@given(case=tampered_request())
def test_tampered_requests_never_succeed(
    server: Server,
    account: Account,
    http: httpx.Client,
    case: tuple[dict[str, Any], str, str],
) -> None:
    spec, field, region = case
    body = json.dumps(spec["params"]).encode()  # what the SDK sends
    headers = clients.tc3_headers(
        account, server.endpoint, "DescribeZones", body, region=region, language=spec["language"]
    )
    for _ in range(3):  # the valid request counts against DescribeZones' 20/s: wait it out
        untouched = http.post("/", content=body, headers=headers).json()["Response"]
        if untouched.get("Error", {}).get("Code") != "RequestLimitExceeded":
            break
        time.sleep(1 - time.time() % 1)
    assert "Error" not in untouched, untouched  # the request was valid before the change

    if field == "body":
        position = spec["position"] % len(body)
        value = spec["value"] if spec["value"] != body[position] else spec["value"] ^ 0xFF
        changed = bytearray(body)
        changed[position] = value
        body = bytes(changed)
    else:
        name = "Authorization" if field == "signature" else field
        text = headers[name]
        start = text.rindex("Signature=") + len("Signature=") if field == "signature" else 0
        position = start + spec["position"] % (len(text) - start)
        value = spec["header_byte"]
        if value == ord(text[position]):
            value = 0xE9
        headers[name] = text[:position] + chr(value) + text[position + 1 :]

    wire = {name.encode(): value.encode("latin-1") for name, value in headers.items()}
    reply = http.post("/", content=body, headers=wire)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    answer = reply.json()["Response"]
    assert "Error" in answer, (field, headers, body)
    assert answer["Error"]["Code"] in REFUSALS[field], (field, answer)
