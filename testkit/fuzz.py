"""Hostile input through the real HTTP interface, generated with hypothesis.

    .venv/bin/python tools/fuzz.py --examples 5000 [--storage qcow2] [--json]

Starts a dedicated ``lightkeeper serve --no-rate-limit`` with one account, one instance and
one snapshot, then runs every category of ``CATEGORIES`` (correctly signed parameter junk for
every action over TC3 and v1 — Unicode digits in flattened keys and values, control and bidi
characters —, raw JSON number literals past int64 in every integer parameter, tag floods,
duplicate JSON keys, mixed-up signature methods, truncated bodies, raw-socket garbage),
splitting ``--examples`` between them by weight. Every answer
must be a well-formed envelope with a documented code, never InternalError; raw bytes that
are not HTTP may instead get uvicorn's ``400 Invalid HTTP request received.`` (not an API
request: see ``garbage_case``). ``tests/reliability/test_fuzz.py`` runs it at CI size.
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from tencentcloud.lighthouse.v20200324 import models

from testkit import storm
from testkit.server import Account, Server, free_port
from testkit.storm import ACTIONS, envelope_problem, flatten, signed_request, tc3_headers

FORM = "application/x-www-form-urlencoded"


def sdk_fields(action: str) -> list[str]:
    """The request's parameter names, from the SDK's model (not from the server's code)."""
    request = getattr(models, f"{action}Request")()
    return [name.lstrip("_") for name in vars(request)]


FIELDS = {action: sdk_fields(action) for action in ACTIONS}


@dataclass
class Target:
    server: Server
    account: Account
    instance_id: str
    snapshot_id: str
    http: httpx.Client
    counts: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)

    def answer(self, category: str, response: httpx.Response) -> str:
        """Check the envelope; count the case and its code; return the code."""
        problem = envelope_problem(response)
        assert problem is None, f"{category}: {problem}: {response.content[:500]!r}"
        code = storm.code_of(response)
        self.counts[category] += 1
        self.codes[code] += 1
        return code


# -- strategies -----------------------------------------------------------------------------------

HUGE = st.sampled_from(["x" * 70_000, "é" * 20_000, "\u0000" * 1000, "𝔘" * 5000])
# Text that must never reach a name or a tag: C0/C1 controls, line breaks, bidi controls.
CONTROLS = st.sampled_from(
    ["\x00", "a\r\nb", "\n", "\t", "\x7f", "\x85", "\u202egnp.exe", "\u2066x\u2069", "\u2028"]
)
# Digits int() reads but the API does not (Arabic-Indic, full-width, superscript), numbers
# too long for int(), and the other forms of "a number" that are not ASCII decimal.
DIGITS = st.sampled_from(["٣", "١٧٠٠٠٠٠٠٠٠", "２", "²", "¹²", "0٣", "1_0", " 3", "+5", "-0", "00"])
NUMERIC_TEXT = DIGITS | st.sampled_from(
    ["99999999999999999999", "9223372036854775808", "-9223372036854775809", "9" * 5000]
    + ["1e309", "-1e309", "1.0", "1e3", "0x10", "inf", "NaN", ""]
)
TEXT = (
    st.text(max_size=40)
    | st.sampled_from(["", " ", "null", "lhins-", "lhsnap-", "0"])
    | HUGE
    | CONTROLS
    | NUMERIC_TEXT
)
NUMBERS = st.integers(-(2**64), 2**64) | st.sampled_from(
    [2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**40, -(10**40), -1, 0, 101, 4294967296]
)
FLOATS = st.floats(allow_nan=False) | st.sampled_from([1e300, -1e300, 1.0, -0.0, 2.0**63, 1.5])
SCALARS = st.none() | st.booleans() | NUMBERS | FLOATS | TEXT
TAG_TEXT = TEXT | st.sampled_from(["k" * 127, "k" * 128, "v" * 256, "qcloud:x", "project", "环境"])
TAG = st.fixed_dictionaries({"Key": TAG_TEXT, "Value": TAG_TEXT})
TAG_FLOODS = st.sampled_from([11, 50, 1000, 40_000]).map(
    lambda n: [{"Key": f"k{i}", "Value": "v" * 200} for i in range(n)]
)
TAGS = st.lists(TAG, max_size=12) | TAG_FLOODS | st.just([{"Key": "k" * 100_000, "Value": "v"}])


def junk() -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=5)
            | st.dictionaries(
                st.text(max_size=12) | st.sampled_from(["Name", "Values"]), inner, max_size=4
            )
        ),
        max_leaves=12,
    )


def values(target_ids: tuple[str, str]) -> st.SearchStrategy[Any]:
    """Junk, plus values near valid ones so that some cases get past validation."""
    instance_id, snapshot_id = target_ids
    ids = st.sampled_from([instance_id, snapshot_id, "lhins-00000000", "lhsnap-zzzzzzzz"])
    near = (
        ids
        | st.lists(ids, max_size=3)
        | st.lists(ids, min_size=101, max_size=101)
        | st.just([{"Name": "instance-id", "Values": [instance_id]}])
        | st.just([{"Name": "zone", "Values": ["ap-guangzhou-3"] * 6}])
        | st.just(["SNAPSHOT", "NOPE"])
        | TAGS
    )
    return junk() | near


def params_for(action: str, target_ids: tuple[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    known = st.fixed_dictionaries(
        {}, optional={name: values(target_ids) for name in FIELDS[action]}
    )
    extra = st.dictionaries(st.text(min_size=1, max_size=20), junk(), max_size=2)
    return st.one_of(known, st.builds(lambda a, b: {**a, **b}, known, extra))


def call_strategy(target_ids: tuple[str, str]) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return st.sampled_from(ACTIONS).flatmap(
        lambda action: st.tuples(st.just(action), params_for(action, target_ids))
    )


REGIONS = st.sampled_from(["ap-guangzhou", "ap-guangzhou", None, "", "xx-nowhere", "ap-shanghai"])


# -- cases --------------------------------------------------------------------------------------


def json_params_case(target: Target, data: st.DataObject) -> None:
    """Junk parameters for every action, correctly TC3-signed, so validation sees them."""
    action, params = data.draw(call_strategy((target.instance_id, target.snapshot_id)))
    region = data.draw(REGIONS)
    body = json.dumps(params).encode()
    headers = tc3_headers(target.account, target.server.endpoint, action, body, region)
    code = target.answer("json-params", target.http.post("/", content=body, headers=headers))
    assert not code.startswith("AuthFailure"), code  # correctly signed: reached validation


# Flattened keys with list indexes that are not canonical ASCII decimal ("²".isdigit() is
# true, int("²") raises; int("٣") is 3; int() refuses 4,300+ digits), and integer fields.
FLAT_KEYS = st.sampled_from(["A.0", "A.1.B", "Filters.9.Name", "X", "Offset", "Limit"]) | st.builds(
    lambda name, index, tail: f"{name}.{index}{tail}",
    st.sampled_from(["SnapshotIds", "InstanceIds", "Filters", "Tags", "ResourceNames"]),
    DIGITS | st.sampled_from(["0", "1", "9" * 5000, "01", "-1", "０"]),
    st.sampled_from(["", ".Name", ".Values.0", ".Key", ".Values.²"]),
)


def flat_params_case(target: Target, data: st.DataObject) -> None:
    """The same over v1 (form POST / GET): flattened keys, string values, any text."""
    action, params = data.draw(call_strategy((target.instance_id, target.snapshot_id)))
    flat = {k: v for k, v in flatten(params).items() if k}
    flat.update(data.draw(st.dictionaries(FLAT_KEYS, TEXT, min_size=1, max_size=3)))
    method = data.draw(st.sampled_from(["POST", "GET"]))
    sign_method = data.draw(st.sampled_from(["HmacSHA1", "HmacSHA256"]))
    full = storm.v1_params(
        target.account,
        target.server.endpoint,
        action,
        flat,
        "ap-guangzhou",
        method=method,
        sign_method=sign_method,
    )
    encoded = urllib.parse.urlencode(full)
    if method == "GET" and len(encoded) < 60_000:  # httpx refuses URLs over 64 KB
        response = target.http.get(f"/?{encoded}")
    else:
        response = target.http.post("/", content=encoded, headers={"Content-Type": FORM})
    code = target.answer("flat-params", response)
    unambiguous = len({k.replace("_", ".") for k in full}) == len(full)
    if len(encoded) < 30_000 and unambiguous:  # signed correctly: never an auth failure
        assert not code.startswith("AuthFailure"), code


# Number literals as JSON text: json.dumps cannot write 1e309 (nor would the SDK), but a
# client can. Integers past int64/uint64, whole floats past int64, non-finite literals.
NUMBER_LITERALS = st.builds(str, NUMBERS) | st.sampled_from(
    ["1e309", "-1e309", "1e300", "1.0", "1.5", "-0", "-0.0", "18446744073709551616", "9" * 400]
    + ["9223372036854775807", "9223372036854775808", "-9223372036854775809", "1E3", "0.1e1"]
)
INTEGER_FIELDS = {a: [n for n in FIELDS[a] if n in ("Offset", "Limit")] for a in ACTIONS}
NUMBER_ACTIONS = [a for a in ACTIONS if INTEGER_FIELDS[a]]


def json_numbers_case(target: Target, data: st.DataObject) -> None:
    """Raw number literals in every integer parameter, correctly TC3-signed."""
    action = data.draw(st.sampled_from(NUMBER_ACTIONS))
    fields = data.draw(st.lists(st.sampled_from(INTEGER_FIELDS[action]), min_size=1, unique=True))
    literals = [data.draw(NUMBER_LITERALS) for _ in fields]
    body = "{" + ",".join(f'"{f}":{n}' for f, n in zip(fields, literals, strict=True)) + "}"
    headers = tc3_headers(
        target.account, target.server.endpoint, action, body.encode(), "ap-guangzhou"
    )
    code = target.answer("json-numbers", target.http.post("/", content=body, headers=headers))
    assert not code.startswith("AuthFailure"), code


def tag_flood_case(target: Target, data: st.DataObject) -> None:
    """CreateInstanceSnapshot with many, long or control-character tags and names, and
    ModifySnapshotAttribute with such names, over TC3 JSON. (Tags and names are checked
    before the quota, so a quota used up by earlier cases does not hide them.)"""
    create: dict[str, Any] = {"InstanceId": target.instance_id, "Tags": data.draw(TAGS)}
    if data.draw(st.booleans()):
        create["SnapshotName"] = data.draw(TAG_TEXT)
    rename = {"SnapshotId": target.snapshot_id, "SnapshotName": data.draw(TAG_TEXT)}
    for action, params in (("CreateInstanceSnapshot", create), ("ModifySnapshotAttribute", rename)):
        reply = signed_request(
            target.http, target.account, target.server.endpoint, action, params, "ap-guangzhou"
        )
        code = target.answer("tag-flood", reply)
        assert not code.startswith("AuthFailure"), code


def duplicate_keys_case(target: Target, data: st.DataObject) -> None:
    """Raw JSON text with repeated keys (``{"InstanceId": "a", "InstanceId": 5}``)."""
    action = data.draw(st.sampled_from(ACTIONS))
    names = FIELDS[action] or ["Anything"]
    pairs = data.draw(
        st.lists(
            st.tuples(st.sampled_from(names), values((target.instance_id, target.snapshot_id))),
            min_size=2,
            max_size=6,
        )
    )
    pairs.append(pairs[0])  # at least one repeated key
    body = ("{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}").encode()
    headers = tc3_headers(target.account, target.server.endpoint, action, body, "ap-guangzhou")
    target.answer("duplicate-keys", target.http.post("/", content=body, headers=headers))


def _v1(target: Target, action: str, **options: Any) -> dict[str, str]:
    return storm.v1_params(
        target.account, target.server.endpoint, action, {}, "ap-guangzhou", **options
    )


MIXUPS = (
    "sha1-declared-sha256",
    "sha256-declared-sha1",
    "unknown-method",
    "tc3-plus-v1-query",
    "tc3-on-form",
    "v1-in-json-body",
    "tc3-get-signed-as-post",
    "tc3-wrong-algorithm",
    "tc3-wrong-service",
)


def mixup_case(target: Target, data: st.DataObject) -> None:
    """Signature methods mixed up; the expected code where there is exactly one."""
    action = data.draw(st.sampled_from(ACTIONS))
    kind = data.draw(st.sampled_from(MIXUPS))
    host = target.server.endpoint
    http = target.http
    expected: set[str] | None = None
    if kind in ("sha1-declared-sha256", "sha256-declared-sha1"):
        signed, declared = (
            ("HmacSHA1", "HmacSHA256") if kind[3] == "1" else ("HmacSHA256", "HmacSHA1")
        )
        full = _v1(target, action, method="POST", sign_method=signed, declared_method=declared)
        response = http.post(
            "/", content=urllib.parse.urlencode(full), headers={"Content-Type": FORM}
        )
        expected = {"AuthFailure.SignatureFailure"}
    elif kind == "unknown-method":
        method = data.draw(st.sampled_from(["HmacSHA512", "TC3-HMAC-SHA256", "", "hmacsha1"]))
        full = _v1(target, action, method="POST", sign_method="HmacSHA1")
        full["SignatureMethod"] = method
        response = http.post(
            "/", content=urllib.parse.urlencode(full), headers={"Content-Type": FORM}
        )
        # "TC3-HMAC-SHA256" reads as TC3 without an Authorization header
        expected = {"InvalidParameterValue", "AuthFailure.InvalidAuthorization"}
    elif kind == "tc3-plus-v1-query":
        body = b"{}"
        headers = tc3_headers(target.account, host, action, body, "ap-guangzhou")
        query = urllib.parse.urlencode(_v1(target, action, method="POST", sign_method="HmacSHA256"))
        response = http.post(f"/?{query}", content=body, headers=headers)
        # A TC3 POST signs an empty query, and the server ignores the query of a POST: the
        # (unsigned) v1 parameters change nothing, the call is served as the TC3 one.
        expected = None
    elif kind == "tc3-on-form":
        body = urllib.parse.urlencode(
            _v1(target, action, method="POST", sign_method="HmacSHA256")
        ).encode()
        headers = tc3_headers(target.account, host, action, body, "ap-guangzhou")
        headers["Content-Type"] = FORM
        response = http.post("/", content=body, headers=headers)
    elif kind == "v1-in-json-body":
        body = json.dumps(_v1(target, action, method="POST", sign_method="HmacSHA256")).encode()
        response = http.post("/", content=body, headers={"Content-Type": "application/json"})
        expected = {"AuthFailure.InvalidAuthorization", "MissingParameter"}
    elif kind == "tc3-get-signed-as-post":
        headers = tc3_headers(target.account, host, action, b"", "ap-guangzhou")
        response = http.get("/", headers=headers)
        expected = {"AuthFailure.SignatureFailure"}
    else:
        body = b"{}"
        headers = tc3_headers(target.account, host, action, body, "ap-guangzhou")
        if kind == "tc3-wrong-algorithm":
            headers["Authorization"] = headers["Authorization"].replace(
                "TC3-HMAC-SHA256", "TC3-HMAC-SHA1", 1
            )
            expected = {"AuthFailure.InvalidAuthorization"}
        else:
            headers["Authorization"] = headers["Authorization"].replace("/lighthouse/", "/cvm/")
            expected = {"AuthFailure.SignatureFailure"}
        response = http.post("/", content=body, headers=headers)
    code = target.answer(f"sign-mixup:{kind}", response)
    if expected is not None:
        assert code in expected, (kind, code)
    elif kind == "tc3-plus-v1-query":
        assert not code.startswith("AuthFailure"), (kind, code)


def _exchange(target: Target, payload: bytes, *, close_early: bool) -> bytes:
    """Send raw bytes; half-close (or close at once); return what the server sent back."""
    with socket.create_connection(("127.0.0.1", target.server.port), timeout=10) as sock:
        sock.sendall(payload)
        if close_early:
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            return b""
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        return b"".join(chunks)


def _parse_raw(raw: bytes) -> httpx.Response:
    head, _, content = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(n, v) for n, _, v in (h.partition(": ") for h in lines)]
    length = dict((n.lower(), v) for n, v in headers).get("content-length", "")
    if length.isdigit():  # garbage after a request can get a second (pipelined) answer
        content = content[: int(length)]
    return httpx.Response(int(status_line.split(" ")[1]), headers=headers, content=content)


def truncated_case(target: Target, data: st.DataObject) -> None:
    """A body shorter than its Content-Length, then the connection half-closed or reset."""
    action = data.draw(st.sampled_from(ACTIONS))
    content_type = data.draw(st.sampled_from(["application/json", FORM]))
    body = json.dumps({"InstanceIds": [target.instance_id]}).encode()
    cut = data.draw(st.integers(0, len(body)))
    extra = data.draw(st.integers(1, 10**6))
    if content_type == "application/json":
        signed = tc3_headers(target.account, target.server.endpoint, action, body, "ap-guangzhou")
    else:
        signed = {"Content-Type": FORM, "Host": target.server.endpoint}
    signed.pop("Content-Length", None)
    head = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    payload = (
        f"POST / HTTP/1.1\r\n{head}Content-Length: {len(body) + extra}\r\n\r\n"
    ).encode() + body[:cut]
    close_early = data.draw(st.booleans())
    raw = _exchange(target, payload, close_early=close_early)
    if raw:  # whatever the server still sends must be an envelope
        response = _parse_raw(raw)
        problem = envelope_problem(response)
        assert problem is None, (problem, raw[:300])
    target.counts[f"truncated:{'reset' if close_early else 'half-close'}"] += 1


UVICORN_400 = b"Invalid HTTP request received."


def garbage_case(target: Target, data: st.DataObject) -> None:
    """Bytes that are not an HTTP request. uvicorn's parser (h11) refuses those before the app
    runs, with ``400 Bad Request``, ``text/plain``, "Invalid HTTP request received." and a
    closed connection. That is accepted: it is not an API request (no action, no signature to
    answer for), the SDK never sends it, and answering it with an envelope would mean replacing
    uvicorn's protocol layer. Whatever does parse as HTTP reaches the app and gets an envelope."""
    payload = data.draw(
        st.binary(min_size=1, max_size=2048)
        | st.builds(
            lambda m, p, v: f"{m} {p} {v}\r\n".encode("utf-8", "surrogatepass"),
            st.sampled_from(["GET", "POST", "G ET", "", "\x00", "POST\t", "ПОСТ"]),
            st.sampled_from(["/", "", "//x", "*", "http://x/", "/ /", "/\x7f"])
            | st.text(max_size=20),
            st.sampled_from(["HTTP/1.1", "HTTP/9.9", "HTTP/1.1 extra", "", "HTTP/1.1\x00"]),
        )
        | st.builds(
            lambda h: b"POST / HTTP/1.1\r\nHost: x\r\n" + h + b"\r\n\r\n",
            st.sampled_from(
                [
                    b"Content-Length: -1",
                    b"Content-Length: abc",
                    b"Content-Length: 1, 2",
                    b"Transfer-Encoding: chunked\r\nContent-Length: 3",
                    b": novalue",
                    b"Bad Header",
                    b"X: \x00",
                    b"Content-Length: 99999999999999999999",
                ]
            ),
        )
    )
    if not payload.endswith(b"\r\n\r\n"):
        payload += b"\r\n\r\n"
    raw = _exchange(target, payload, close_early=False)
    if raw:
        response = _parse_raw(raw)
        if response.status_code == 400:
            assert response.headers.get("content-type", "").startswith("text/plain")
            assert response.content == UVICORN_400, raw[:300]
            target.counts["raw-garbage:uvicorn-400"] += 1
        else:
            problem = envelope_problem(response)
            assert problem is None, (problem, raw[:300])
            target.counts["raw-garbage:envelope"] += 1
    else:
        target.counts["raw-garbage:closed"] += 1


Case = Callable[[Target, st.DataObject], None]
CATEGORIES: dict[str, tuple[Case, int]] = {  # name -> (case, weight)
    "json-params": (json_params_case, 10),
    "flat-params": (flat_params_case, 4),
    "json-numbers": (json_numbers_case, 3),
    "tag-flood": (tag_flood_case, 2),
    "duplicate-keys": (duplicate_keys_case, 3),
    "sign-mixups": (mixup_case, 3),
    "truncated": (truncated_case, 2),
    "raw-garbage": (garbage_case, 3),
}


def run_category(target: Target, name: str, examples: int, seed: int | None = None) -> None:
    case = CATEGORIES[name][0]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case(target, data)

    if seed is not None:
        run = hypothesis_seed(seed)(run)
    run()


def split(total: int) -> dict[str, int]:
    weights = sum(w for _, w in CATEGORIES.values())
    return {name: max(1, total * w // weights) for name, (_, w) in CATEGORIES.items()}


# -- the world and the end checks ---------------------------------------------------------------


def fuzz_server(data_dir: Path, storage: str = "raw") -> Server:
    args = ("--storage", storage, "--no-rate-limit", "--transition-seconds", "0")
    return Server(data_dir, free_port(), args)


def make_target(server: Server, http: httpx.Client) -> Target:
    world = storm.build_world(server, ((0, "ap-guangzhou", "RUNNING"),))
    account, instance_id = world.accounts[0], world.instances[0].instance_id
    created = signed_request(
        http,
        account,
        server.endpoint,
        "CreateInstanceSnapshot",
        {"InstanceId": instance_id},
        "ap-guangzhou",
    )
    snapshot_id = created.json()["Response"]["SnapshotId"]
    storm.wait_settled(world)
    return Target(server, account, instance_id, snapshot_id, http)


def server_problems(target: Target) -> list[str]:
    """After fuzzing: healthy, serving, no InternalError counted, no traceback logged."""
    problems = []
    if target.http.get("/healthz").status_code != 200:
        problems.append("/healthz is not 200")
    reply = signed_request(
        target.http, target.account, target.server.endpoint, "DescribeRegions", {}, None
    )
    if envelope_problem(reply) is not None or "RegionSet" not in reply.json()["Response"]:
        problems.append("DescribeRegions no longer works")
    if 'code="InternalError"' in target.http.get("/metrics").text:
        problems.append("/metrics counts an InternalError")
    if "Traceback" in target.server.log():
        problems.append("the server log has a traceback")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=5000, help="total, over all categories")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: fixed)")
    parser.add_argument("--storage", choices=["raw", "qcow2"], default="raw")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="lk-fuzz-") as tmp:
        server = fuzz_server(Path(tmp) / "data", args.storage)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                target = make_target(server, http)
                for name, examples in split(args.examples).items():
                    try:
                        run_category(target, name, examples, args.seed)
                    except Exception as exc:  # report every category, then fail
                        failures[name] = f"{type(exc).__name__}: {exc}"[:2000]
                problems = server_problems(target)
        finally:
            server.stop()
    summary = {
        "storage": args.storage,
        "seconds": round(time.monotonic() - started, 1),
        "cases": sum(target.counts.values()),
        "cases_by_category": dict(sorted(target.counts.items())),
        "codes": dict(target.codes.most_common()),
        "failures": failures,
        "server_problems": problems,
    }
    print(json.dumps(summary, indent=None if args.json else 2, ensure_ascii=False))
    return 1 if failures or problems else 0
