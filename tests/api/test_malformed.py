"""No request, however malformed, gets anything but a well-formed envelope.

Every answer on the API endpoint is HTTP 200, ``Content-Type: application/json`` exactly, and
``{"Response": {"Error": {"Code", "Message"}, "RequestId": uuid4}}`` with a documented code.
Decision recorded here: every path except ``/healthz`` and ``/metrics`` is the API endpoint
(the SDK always posts to ``/``, and the path is not part of what it signs).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from importlib import resources
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testkit import clients
from testkit.server import Account, Server, free_port

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
EN = {"X-TC-Language": "en-US"}
BODY_UNPARSEABLE = "The request body or query string cannot be parsed as API parameters."


def documented_codes() -> set[str]:
    """Every code in the published catalogue (read as data, not through the server's code)."""
    text = resources.files("lightkeeper.catalogue").joinpath("errors.json").read_text("utf-8")
    return {entry["code"] for entry in json.loads(text).values()}


DOCUMENTED = documented_codes()


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The ``Response`` object, after checking everything every answer must have."""
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert b"Traceback" not in response.content
    document = response.json()
    assert list(document) == ["Response"]
    body = document["Response"]
    assert uuid.UUID(body["RequestId"]).version == 4
    assert str(uuid.UUID(body["RequestId"])) == body["RequestId"]
    return dict(body)


def error_of(response: httpx.Response) -> dict[str, str]:
    body = envelope(response)
    assert set(body) == {"Error", "RequestId"}
    error = body["Error"]
    assert set(error) == {"Code", "Message"}
    assert isinstance(error["Code"], str) and isinstance(error["Message"], str)
    assert error["Code"] in DOCUMENTED
    assert error["Code"] != "InternalError"
    assert error["Message"]
    return dict(error)


def post(
    http: httpx.Client,
    body: bytes,
    content_type: str | None,
    headers: dict[str, str] | None = None,
    path: str = "/",
) -> httpx.Response:
    all_headers = {**EN, **(headers or {})}
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    return http.post(path, content=body, headers=all_headers)


@pytest.mark.parametrize(
    "body",
    [b'{"Action": ', b"{", b"}", b"nul", b"{'a': 1}", b'{"a": 1,}', b"[" * 100_000, b"\x00"],
)
def test_invalid_json_body(http: httpx.Client, body: bytes) -> None:
    error = error_of(post(http, body, JSON))
    assert error == {"Code": "InvalidParameter", "Message": BODY_UNPARSEABLE}


@pytest.mark.parametrize(
    "body", [b"[]", b'[{"Action": "DescribeRegions"}]', b'"text"', b"42", b"null", b"true"]
)
def test_json_that_is_not_an_object(http: httpx.Client, body: bytes) -> None:
    error = error_of(post(http, body, JSON))
    assert error == {"Code": "InvalidParameter", "Message": BODY_UNPARSEABLE}


def test_empty_json_body_reads_as_no_parameters(http: httpx.Client) -> None:
    error = error_of(post(http, b"", JSON))
    assert error == {
        "Code": "MissingParameter",
        "Message": "The request is missing a required parameter `Action`.",
    }


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain", "text/plain"),
        ("text/plain; charset=utf-8", "text/plain"),
        ("multipart/form-data; boundary=xyz", "multipart/form-data"),
        ("application/xml", "application/xml"),
        (None, "none"),
    ],
)
def test_wrong_content_type(http: httpx.Client, content_type: str | None, shown: str) -> None:
    body = b'--xyz\r\nContent-Disposition: form-data; name="Action"\r\n\r\nDescribeRegions\r\n'
    error = error_of(post(http, body, content_type))
    assert error["Code"] == "InvalidRequest"
    assert error["Message"].startswith(f"The Content-Type `{shown}` is not supported")


def test_wrong_content_type_even_when_signed(
    http: httpx.Client, server: Server, account: Account
) -> None:
    headers = clients.tc3_headers(
        account, server.endpoint, "DescribeRegions", b"{}", content_type="text/plain"
    )
    error = error_of(http.post("/", content=b"{}", headers=headers))
    assert error["Code"] == "InvalidRequest"


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=2048), content_type=st.sampled_from([JSON, FORM]))
def test_binary_garbage_never_breaks_the_envelope(
    http: httpx.Client, body: bytes, content_type: str
) -> None:
    error = error_of(post(http, body, content_type))
    assert error["Code"] in {"InvalidParameter", "MissingParameter"}


@pytest.mark.parametrize(
    "body",
    [
        b"Action=Describe\xffRegions&Version=2020-03-24",
        b"\xfe\xff",
        b"Action=%FF%FE",
        b"Na%E5me=x",
        b"Action=\xe5\xbf",
    ],
)
def test_non_utf8_form_body(http: httpx.Client, body: bytes) -> None:
    error = error_of(post(http, body, FORM))
    assert error["Code"] == "InvalidParameter"
    assert error["Message"] in (BODY_UNPARSEABLE, "请求包体或查询字符串无法解析为接口参数。")


def test_non_utf8_query_string(http: httpx.Client) -> None:
    error = error_of(http.get("/?Action=%FFDescribeRegions", headers=EN))
    assert error == {"Code": "InvalidParameter", "Message": BODY_UNPARSEABLE}


@pytest.mark.parametrize(
    ("form", "name"),
    [
        ("A=1&A.0=2", "A.0"),
        ("A.0=2&A=1", "A"),
        ("Filters.0.Name=zone&Filters.0=x", "Filters.0"),
        ("Filters.0=x&Filters.0.Name=zone", "Filters.0.Name"),
        ("Action=DescribeRegions&Action=DescribeZones", "Action"),
        ("Order=ASC&Order=ASC", "Order"),
        ("X.0=a&X.2=b", "X"),
        ("X.1=a", "X"),
        ("A..B=1", "A..B"),
        (".A=1", ".A"),
        ("A.=1", "A."),
    ],
)
def test_conflicting_flattened_keys(http: httpx.Client, form: str, name: str) -> None:
    body = f"{form}&Version=2020-03-24&Language=en-US".encode()
    error = error_of(post(http, body, FORM))
    assert error["Code"] == "InvalidParameter"
    assert f"`{name}`" in error["Message"]


def test_huge_header_still_gets_an_envelope(http: httpx.Client) -> None:
    error = error_of(post(http, b"{}", None, {"X-Custom": "x" * 60 * 1024}))
    assert error["Code"] == "InvalidRequest"


def test_huge_header_on_a_signed_request_is_served(
    http: httpx.Client, server: Server, account: Account
) -> None:
    headers = clients.tc3_headers(account, server.endpoint, "DescribeZones", b"{}")
    headers["X-Custom"] = "y" * 60 * 1024
    body = envelope(http.post("/", content=b"{}", headers=headers))
    assert body["TotalCount"] == 4  # DescribeZones: 20/s, not 10


def raw_request(server: Server, head: bytes, body: bytes = b"") -> httpx.Response:
    """Send bytes httpx refuses to build (it caps URLs at 64 KB) and parse the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + b"\r\n" + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw_head, _, content = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = [(name, value) for name, _, value in (h.partition(": ") for h in header_lines)]
    return httpx.Response(int(status_line.split(" ")[1]), headers=headers, content=content)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_very_long_path(server: Server, method: str) -> None:
    path = "/" + "p" * 200 * 1024
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {server.endpoint}\r\n"
        f"Content-Type: {FORM}\r\nContent-Length: 0\r\nX-TC-Language: en-US\r\n"
        "Connection: close\r\n"
    ).encode()
    error = error_of(raw_request(server, head))
    # A form/query request takes its language from the ``Language`` parameter (v1), not the
    # X-TC-Language header, so with none the default zh-CN applies.
    assert error == {"Code": "MissingParameter", "Message": "缺少必要参数`Action`。"}


@pytest.mark.parametrize("path", ["/foo", "/v3/", "/healthz/x", "/index.html"])
def test_other_paths_are_the_api_endpoint(http: httpx.Client, path: str) -> None:
    error = error_of(post(http, b"[1]", JSON, path=path))
    assert error == {"Code": "InvalidParameter", "Message": BODY_UNPARSEABLE}


def test_signed_request_to_another_path_is_served(
    http: httpx.Client, server: Server, account: Account
) -> None:
    headers = clients.tc3_headers(account, server.endpoint, "DescribeZones", b"{}")
    body = envelope(http.post("/foo", content=b"{}", headers=headers))
    assert body["TotalCount"] == 4  # DescribeZones: 20/s, not 10


def test_head_gets_the_envelope_headers_without_a_body(http: httpx.Client) -> None:
    reply = http.head("/", headers=EN)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.content == b""
    message = "The HTTP method `HEAD` is not supported; only GET and POST are."
    expected = {
        "Response": {
            "Error": {"Code": "UnsupportedProtocol", "Message": message},
            "RequestId": str(uuid.uuid4()),
        }
    }
    assert int(reply.headers["content-length"]) == len(
        json.dumps(expected, separators=(",", ":")).encode()
    )
    same_as_get = error_of(http.request("PROPFIND", "/", headers=EN))
    assert same_as_get["Code"] == "UnsupportedProtocol"


def test_non_ascii_byte_in_a_tc3_signature_is_a_signature_failure(
    http: httpx.Client, server: Server, account: Account
) -> None:
    headers = clients.tc3_headers(account, server.endpoint, "DescribeRegions", b"{}")
    wire = {name.encode(): value.encode("latin-1") for name, value in headers.items()}
    wire[b"Authorization"] = wire[b"Authorization"][:-1] + b"\xe9"
    error = error_of(http.post("/", content=b"{}", headers=wire))
    assert error["Code"] == "AuthFailure.SignatureFailure"


def test_non_ascii_v1_signature_is_a_signature_failure(
    http: httpx.Client, server: Server, account: Account
) -> None:
    params = clients.v1_params(
        account, server.endpoint, "DescribeRegions", {}, nonce=uuid.uuid4().int % 10**9
    )
    params["Signature"] = "é" + params["Signature"][1:]
    reply = http.post("/", content=urllib.parse.urlencode(params), headers={"Content-Type": FORM})
    assert error_of(reply)["Code"] == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("timestamp", ["9" * 400, "-" + "9" * 400, "9" * 5000])
def test_absurd_timestamps(
    http: httpx.Client, server: Server, account: Account, timestamp: str
) -> None:
    headers = clients.tc3_headers(account, server.endpoint, "DescribeRegions", b"{}")
    headers["X-TC-Timestamp"] = timestamp
    error = error_of(http.post("/", content=b"{}", headers=headers))
    # An integer too large for a float is expired; one too long to parse is not an integer.
    assert error["Code"] == (
        "InvalidParameter" if len(timestamp) > 4300 else "AuthFailure.SignatureExpire"
    )


# -- numbers and digits (issue #11, 7 and 8) --------------------------------------------------

OUT_OF_RANGE = "InvalidParameterValue.OutOfRange"
PAGED = ["DescribeSnapshots", "DescribeInstances"]


@pytest.fixture(scope="module")
def unlimited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Account]]:
    """A server without rate limits: these tests send many signed calls in a second."""
    srv = Server(tmp_path_factory.mktemp("numbers") / "data", free_port(), ("--no-rate-limit",))
    srv.start()
    yield srv, srv.create_account("numbers")
    srv.stop()


def tc3_raw(target: tuple[Server, Account], action: str, body: bytes) -> httpx.Response:
    srv, account = target
    headers = clients.tc3_headers(account, srv.endpoint, action, body)
    return httpx.post(f"{srv.url}/", content=body, headers=headers, timeout=30)


def v1_get(
    target: tuple[Server, Account], action: str, params: dict[str, str], **common: str
) -> httpx.Response:
    """A signed v1 GET; ``common`` overrides common parameters (Timestamp, Nonce) verbatim."""
    srv, account = target
    nonce = uuid.uuid4().int % 10**9
    full = clients.v1_params(account, srv.endpoint, action, params, method="GET", nonce=nonce)
    full = clients.v1_signed(account, srv.endpoint, {**full, **common}, method="GET")
    return httpx.get(f"{srv.url}/?{urllib.parse.urlencode(full)}", timeout=30)


@pytest.mark.parametrize("action", PAGED)
@pytest.mark.parametrize(
    ("body", "code", "name"),
    [
        (b'{"Offset": 9223372036854775808}', OUT_OF_RANGE, "Offset"),
        (b'{"Offset": -9223372036854775809}', OUT_OF_RANGE, "Offset"),
        (b'{"Offset": 18446744073709551616}', OUT_OF_RANGE, "Offset"),
        (b'{"Limit": 9223372036854775808}', OUT_OF_RANGE, "Limit"),
        (b'{"Offset": 1e300}', OUT_OF_RANGE, "Offset"),
        (b'{"Offset": 1.5}', "InvalidParameter", "Offset"),
        (b'{"Offset": 1.0}', "InvalidParameter", "Offset"),
        (b'{"Offset": "5"}', "InvalidParameter", "Offset"),
        (b'{"Offset": 1e309}', "InvalidParameter", None),  # not a finite number: unparseable
    ],
)
def test_json_numbers_outside_int64(
    unlimited: tuple[Server, Account], action: str, body: bytes, code: str, name: str | None
) -> None:
    """Regression: ``Offset`` >= 2**63 reached SQLite, which cannot bind it: InternalError.
    Every integer parameter is an int64 (lighthouse-api.json); a number outside it is out of
    range, naming the parameter."""
    error = error_of(tc3_raw(unlimited, action, body))
    assert error["Code"] == code
    if name is not None:
        assert f"`{name}`" in error["Message"]


@pytest.mark.parametrize("action", PAGED)
def test_largest_int64_offset_is_served(unlimited: tuple[Server, Account], action: str) -> None:
    body = envelope(tc3_raw(unlimited, action, b'{"Offset": 9223372036854775807}'))
    assert body["TotalCount"] == 0


@pytest.mark.parametrize("action", PAGED)
@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Offset": "99999999999999999999"}, OUT_OF_RANGE),
        ({"Offset": "9223372036854775808"}, OUT_OF_RANGE),
        ({"Limit": "-9223372036854775809"}, OUT_OF_RANGE),
        ({"Offset": "9" * 5000}, OUT_OF_RANGE),
        ({"Offset": "٣"}, "InvalidParameter"),  # Arabic-Indic 3: int() takes it, the API not
        ({"Offset": "²"}, "InvalidParameter"),
        ({"Offset": "１２"}, "InvalidParameter"),
        ({"Offset": "1_0"}, "InvalidParameter"),
        ({"Offset": " 3"}, "InvalidParameter"),
        ({"Offset": "1.0"}, "InvalidParameter"),
        ({"Offset": "1e3"}, "InvalidParameter"),
        ({"Offset": ""}, "InvalidParameter"),
    ],
)
def test_query_integers_are_ascii_int64(
    unlimited: tuple[Server, Account], action: str, params: dict[str, str], code: str
) -> None:
    error = error_of(v1_get(unlimited, action, params))
    assert error["Code"] == code
    assert f"`{next(iter(params))}`" in error["Message"]


@pytest.mark.parametrize("action", PAGED)
def test_query_integer_in_range_is_served(unlimited: tuple[Server, Account], action: str) -> None:
    body = envelope(v1_get(unlimited, action, {"Offset": "9223372036854775807", "Limit": "+5"}))
    assert body["TotalCount"] == 0


@pytest.mark.parametrize(
    "key",
    [
        "SnapshotIds.²",
        "SnapshotIds.٣",
        "SnapshotIds.０",
        "SnapshotIds.00",
        "SnapshotIds." + "9" * 5000,
    ],
)
def test_flattened_index_must_be_ascii_decimal(unlimited: tuple[Server, Account], key: str) -> None:
    """Regression: ``"²".isdigit()`` is true but ``int("²")`` raises (and int() refuses more
    than 4300 digits): a list index that is not canonical ASCII decimal is InternalError no
    more, but an ordinary key, which the list-typed parameter then refuses."""
    error = error_of(v1_get(unlimited, "DescribeSnapshots", {key: "lhsnap-00000000"}))
    assert error["Code"] == "InvalidParameter"


@pytest.mark.parametrize("field", ["Timestamp", "Nonce"])
def test_signed_unicode_digits_in_timestamp_or_nonce(
    unlimited: tuple[Server, Account], field: str
) -> None:
    """Regression: int() read a correctly signed ``Timestamp=١٧…`` (Arabic-Indic digits) as
    the current time and served the call. The real service reads ASCII digits only."""
    ascii_value = str(int(time.time())) if field == "Timestamp" else "12345"
    arabic = ascii_value.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    error = error_of(v1_get(unlimited, "DescribeRegions", {}, **{field: arabic}))
    assert error["Code"] == "InvalidParameter"
    assert f"`{field}`" in error["Message"]
