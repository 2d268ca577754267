"""Generate ``lightkeeper.lighthouse.models`` from the Lighthouse API reference.

Why generate: the Lighthouse API has 120 actions, and the authoritative description of their
parameters is the official SDK/tccli spec (captured in ``lighthouse-api.json``). Instead of
hand-writing and hand-maintaining 120 request schemas, we derive pydantic models from that spec,
the same way LocalStack and moto derive request validation from botocore's service specs. The
output is checked in and regenerated whenever the reference is refreshed.

Emits:

* one frozen, ``extra="forbid"`` pydantic model per action request (``<Action>Request``) and per
  nested structure a request references (``Filter``, ``Tag``, ...);
* ``REQUEST_MODELS``: action name -> request model;
* ``RESPONSE_FIELDS``: response / nested output model name -> documented field names, so server
  code and tests can check that every documented output field is returned.

Usage: ``python tools/gen_models.py [--reference DIR] [--out PATH]``
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict, cast

from pydantic import BaseModel

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO_ROOT.parent / "shared" / "reference"
DEFAULT_OUT = REPO_ROOT / "src" / "lightkeeper" / "lighthouse" / "models.py"
REFERENCE_FILE = "lighthouse-api.json"
LINE_LENGTH = 100

# Integers are the range-checked wire types of ``lightkeeper.api.integers``: a value outside
# int64/uint64 must be refused as out of range, not reach the database.
INTEGER_TYPES = ("Int64", "UInt64")
SCALAR_TYPES: dict[str, str] = {
    "string": "str",
    "int64": "Int64",
    "uint64": "UInt64",
    "int": "Int64",
    "integer": "Int64",
    "bool": "bool",
    "boolean": "bool",
    "float": "float",
    "double": "float",
    "datetime_iso": "str",
    "datetime": "str",
    "date": "str",
    "timestamp": "str",
}

# Python names a field must not take on a BaseModel subclass or in the generated module.
RESERVED_NAMES = (
    set(dir(BaseModel))
    | set(keyword.kwlist)
    | {"BaseModel", "ConfigDict", "Field", "RequestModel", "annotations"}
    | {"str", "int", "bool", "float", "list", "dict", "tuple", "type"}
)


class FieldSpec(TypedDict, total=False):
    """One field entry of ``models[...]`` in the reference (only the keys we use)."""

    name: str
    type: str
    base_type: str
    api_type: str
    required: bool
    disabled: bool


Models = Mapping[str, Sequence[FieldSpec]]


def display_width(text: str) -> int:
    """Width of ``text`` as ruff measures it (East Asian wide characters count double)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def first_sentence(doc: str) -> str:
    """First sentence of a (possibly markdown, possibly Chinese) class doc, on one line."""
    for raw in doc.splitlines():
        line = raw.strip().lstrip(">*-# ").strip()
        if line:
            break
    else:
        return ""
    for stop in ("。", ". "):
        if stop in line:
            line = line.split(stop, 1)[0] + stop.strip()
    return line


def docstring_line(text: str, indent: int) -> str:
    """A safe one-line docstring that fits the line length."""
    text = text.replace("\\", "/").replace('"', "'").strip()
    budget = LINE_LENGTH - indent - 6
    if display_width(text) > budget:
        while display_width(text) > budget - 1:
            text = text[:-1]
        text = text.rstrip() + "…"
    if text.endswith("'"):
        text += "."
    return f'{" " * indent}"""{text}"""'


def active_fields(fields: Iterable[FieldSpec]) -> list[FieldSpec]:
    return [f for f in fields if not f.get("disabled", False)]


def referenced_models(fields: Iterable[FieldSpec], models: Models) -> list[str]:
    return [f["base_type"] for f in active_fields(fields) if f["base_type"] in models]


def closure(roots: Iterable[str], models: Models) -> list[str]:
    """All model names reachable from ``roots`` (roots included), in sorted order."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        if name not in models:
            raise SystemExit(f"unknown model {name!r}")
        seen.add(name)
        stack.extend(referenced_models(models[name], models))
    return sorted(seen)


def dependency_order(names: Sequence[str], models: Models) -> list[str]:
    """Sort ``names`` so that each model comes after the models it references."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise SystemExit(f"cyclic model reference: {' -> '.join((*path, name))}")
        state[name] = 1
        for dep in sorted(set(referenced_models(models[name], models))):
            visit(dep, (*path, name))
        state[name] = 2
        order.append(name)

    for name in sorted(names):
        visit(name, ())
    return order


def python_type(field: FieldSpec, models: Models, aliases: Mapping[str, str]) -> str:
    base = field["base_type"]
    if base in models:
        inner = aliases.get(base, base)
    elif base in SCALAR_TYPES:
        inner = SCALAR_TYPES[base]
    else:
        raise SystemExit(f"unmapped base_type {base!r} for field {field['name']!r}")
    is_list = field.get("api_type") == "list"
    if is_list != field["type"].startswith("list of"):
        raise SystemExit(f"inconsistent list-ness for field {field['name']!r}")
    return f"list[{inner}]" if is_list else inner


def tuple_entry(key: str, values: Sequence[str]) -> list[str]:
    """A ``"key": ("a", "b"),`` dict entry formatted the way ``ruff format`` would."""
    items = [json.dumps(v) for v in values]
    if not items:
        body = "()"
    elif len(items) == 1:
        body = f"({items[0]},)"
    else:
        body = f"({', '.join(items)})"
    line = f"    {json.dumps(key)}: {body},"
    if len(items) <= 1 or len(line) <= LINE_LENGTH:
        return [line]
    return [f"    {json.dumps(key)}: (", *(f"        {item}," for item in items), "    ),"]


def render(spec: Mapping[str, Any]) -> str:
    models = cast(Models, spec["models"])
    class_docs = cast(Mapping[str, str], spec.get("class_docs", {}))
    actions = sorted(cast(Sequence[str], spec["actions"]))
    action_meta = cast(Mapping[str, Mapping[str, str]], spec["action_meta"])

    request_of = {action: action_meta[action]["input"] for action in actions}
    response_of = {action: action_meta[action]["output"] for action in actions}
    request_names = closure(request_of.values(), models)
    nested = [n for n in request_names if n not in set(request_of.values())]
    ordered = dependency_order(nested, models) + sorted(request_of.values())

    for name in ordered:
        for field in active_fields(models[name]):
            if not field["name"].isidentifier() or field["name"] in RESERVED_NAMES:
                raise SystemExit(f"field {name}.{field['name']} needs an alias; not supported")

    # A field named like a model (``DiskChargePrepaid: DiskChargePrepaid | None``) would shadow
    # the class inside the class body, so such classes refer to models through a private alias.
    type_aliases = {
        dep: f"_{dep}"
        for n in ordered
        for dep in referenced_models(models[n], models)
        if dep in {f["name"] for f in active_fields(models[n])}
    }

    used = {
        python_type(field, models, {}) for name in ordered for field in active_fields(models[name])
    }
    integers = [t for t in INTEGER_TYPES if t in used or f"list[{t}]" in used]
    out: list[str] = [
        "# Generated by tools/gen_models.py from lighthouse-api.json. DO NOT EDIT.",
        "# Regenerate with: python tools/gen_models.py",
        '"""Pydantic models for Lighthouse (2020-03-24) requests, derived from the API spec."""',
        "",
        "from __future__ import annotations",
        "",
        "from pydantic import BaseModel, ConfigDict",
        "",
        *([f"from lightkeeper.api.integers import {', '.join(integers)}", ""] if integers else []),
        "",
        "class RequestModel(BaseModel):",
        '    """Base of all request models: strict about unknown fields, immutable."""',
        "",
        '    model_config = ConfigDict(extra="forbid", populate_by_name=False, frozen=True)',
    ]

    for name in ordered:
        fields = active_fields(models[name])
        own_names = {f["name"] for f in fields}
        shadowed = any(dep in own_names for dep in referenced_models(fields, models))
        local_aliases = type_aliases if shadowed else {}
        if name in class_docs and first_sentence(class_docs[name]):
            doc = first_sentence(class_docs[name])
        elif name.endswith("Request"):
            doc = f"Request of {name.removesuffix('Request')}."
        else:
            doc = f"{name}."
        out += ["", "", f"class {name}(RequestModel):", docstring_line(doc, 4)]
        if fields:
            out.append("")
        for field in fields:
            annotation = python_type(field, models, local_aliases)
            if field.get("required", False):
                out.append(f"    {field['name']}: {annotation}")
            else:
                out.append(f"    {field['name']}: {annotation} | None = None")
        if name in type_aliases:
            out += ["", "", f"{type_aliases[name]} = {name}"]

    out += ["", "", "REQUEST_MODELS: dict[str, type[RequestModel]] = {"]
    out += [f"    {json.dumps(action)}: {request_of[action]}," for action in actions]
    out.append("}")

    response_names = closure(response_of.values(), models)
    out += [
        "",
        "# Documented output fields (RequestId excluded) of every response model and of every",
        "# nested model reachable from a response.",
        "RESPONSE_FIELDS: dict[str, tuple[str, ...]] = {",
    ]
    for name in response_names:
        names = [f["name"] for f in active_fields(models[name]) if f["name"] != "RequestId"]
        out += tuple_entry(name, names)
    out.append("}")
    return "\n".join(out) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--reference",
        type=Path,
        default=DEFAULT_REFERENCE,
        help=f"directory holding {REFERENCE_FILE} (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output module (default: %(default)s)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reference = cast(Path, args.reference) / REFERENCE_FILE
    spec = cast(dict[str, Any], json.loads(reference.read_text(encoding="utf-8")))
    text = render(spec)
    out = cast(Path, args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
