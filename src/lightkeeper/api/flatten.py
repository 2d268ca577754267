"""Turn flattened GET/form parameters back into the JSON shape.

The SDK flattens ``{"Filters": [{"Name": "x", "Values": ["a"]}]}`` into
``Filters.0.Name=x&Filters.0.Values.0=a`` for GET and the legacy signatures; rebuilding the
tree here lets every action validate one structure whatever the transport.
"""

from __future__ import annotations

from typing import Any

from lightkeeper.api.integers import ascii_decimal
from lightkeeper.errors import ApiError

Tree = dict[str, Any]


def unflatten(pairs: list[tuple[str, str]]) -> Tree:
    """Rebuild nested dicts and lists from dotted keys; numeric segments are list indexes."""
    root: Tree = {}
    for key, value in pairs:
        parts = key.split(".")
        if any(part == "" for part in parts):
            raise ApiError("InvalidParameter", name=key)
        node: Any = root
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if not isinstance(node, dict):
                raise ApiError("InvalidParameter", name=key)
            if last:
                if part in node:
                    raise ApiError("InvalidParameter", name=key)
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return {k: _lists(v, k) for k, v in root.items()}


def _lists(node: Any, path: str) -> Any:
    """Convert dicts whose keys are exactly 0..n-1 into lists, depth first."""
    if not isinstance(node, dict):
        return node
    converted = {k: _lists(v, f"{path}.{k}") for k, v in node.items()}
    indexes = [i for i in map(_index, converted) if i is not None]
    if converted and len(indexes) == len(converted):
        if sorted(indexes) != list(range(len(indexes))):
            raise ApiError("InvalidParameter", name=path)
        return [converted[str(i)] for i in range(len(indexes))]
    return converted


def _index(segment: str) -> int | None:
    """The list index a key segment names: canonical ASCII decimal ("0", "12", not "01",
    "²" or "٣"); anything else is a plain key, which a list-typed parameter then refuses."""
    number = ascii_decimal(segment)
    return number if number is not None and str(number) == segment else None
