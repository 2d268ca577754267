"""CAM policies: the grammar, its validation, and evaluation as CAM does it.

A request is allowed when no statement explicitly denies it and, for every resource the
action touches, some statement allows it. The root account is allowed everything; a
temporary credential's session policy is intersected with its user's policies.

Resources are six-segment strings ``qcs:project:service:region:account:type/id``; in a
statement ``*`` matches any run of characters and an empty region segment matches every region.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SERVICE = "lighthouse"
CONDITION_OPERATORS = {
    "ip_equal",
    "ip_not_equal",
    "string_equal",
    "string_not_equal",
    "string_equal_if_exist",
}
CONDITION_KEYS = {"qcs:ip", "qcs:requested_region"}


class PolicyError(ValueError):
    """An invalid policy document; the message says what is wrong and where."""


@dataclass(frozen=True)
class Statement:
    effect: str  # "allow" | "deny"
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (operator, key, values)


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...] = ()

    def __add__(self, other: Policy) -> Policy:
        return Policy(self.statements + other.statements)


@dataclass(frozen=True)
class Request:
    """One authorisation question: may this principal do ``action`` on ``resources``?"""

    action: str  # e.g. "lighthouse:CreateInstanceSnapshot"
    resources: tuple[str, ...]  # concrete qcs strings, or ("*",) for operation-level APIs
    context: Mapping[str, str] = field(default_factory=dict)  # qcs:ip, qcs:requested_region


def resource_name(region: str, uin: str, kind: str, resource_id: str) -> str:
    return f"qcs::{SERVICE}:{region}:uin/{uin}:{kind}/{resource_id}"


# -- parsing and validation ------------------------------------------------------------------


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise PolicyError(f"{where} must be a non-empty string or list of strings")
    return tuple(items)


def parse_policy(document: Any) -> Policy:
    """Validate a policy document (already JSON-decoded) and return it in evaluable form."""
    if not isinstance(document, dict):
        raise PolicyError("the policy must be a JSON object")
    unknown = set(document) - {"version", "statement"}
    if unknown:
        raise PolicyError(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    if document.get("version") != "2.0":
        raise PolicyError('"version" must be "2.0"')
    raw = document.get("statement")
    raw_list = [raw] if isinstance(raw, dict) else raw
    if not isinstance(raw_list, list) or not raw_list:
        raise PolicyError('"statement" must be a non-empty list of statements')
    return Policy(tuple(_statement(s, f"statement[{n}]") for n, s in enumerate(raw_list)))


def _statement(raw: Any, where: str) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be an object")
    unknown = set(raw) - {"effect", "action", "resource", "condition"}
    if unknown:
        raise PolicyError(f"{where} has unknown key(s): {', '.join(sorted(unknown))}")
    effect = raw.get("effect")
    if effect not in ("allow", "deny"):
        raise PolicyError(f'{where}.effect must be "allow" or "deny"')
    actions = _strings(raw.get("action"), f"{where}.action")
    for action in actions:
        if action != "*" and not re.fullmatch(r"(name/)?[a-z]+:[A-Za-z*]+", action):
            raise PolicyError(f'{where}.action "{action}" is not "service:Action" or "*"')
    resources = _strings(raw.get("resource"), f"{where}.resource")
    for resource in resources:
        if resource != "*" and (not resource.startswith("qcs:") or resource.count(":") < 5):
            raise PolicyError(
                f'{where}.resource "{resource}" is not "*" or '
                '"qcs:project:service:region:account:resource"'
            )
    return Statement(effect, actions, resources, _conditions(raw.get("condition"), where))


def _conditions(raw: Any, where: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}.condition must be an object")
    parsed = []
    for operator, tests in raw.items():
        if operator not in CONDITION_OPERATORS:
            known = ", ".join(sorted(CONDITION_OPERATORS))
            raise PolicyError(f'{where}.condition operator "{operator}" is not one of {known}')
        if not isinstance(tests, dict) or not tests:
            raise PolicyError(f"{where}.condition.{operator} must map keys to values")
        for key, values in tests.items():
            if key not in CONDITION_KEYS:
                known = ", ".join(sorted(CONDITION_KEYS))
                raise PolicyError(f'{where}.condition key "{key}" is not one of {known}')
            strings = _strings(values, f"{where}.condition.{operator}.{key}")
            if operator.startswith("ip_"):
                for value in strings:
                    try:
                        ipaddress.ip_network(value, strict=False)
                    except ValueError:
                        raise PolicyError(
                            f'{where}.condition.{operator}: "{value}" is not an IP or CIDR'
                        ) from None
            parsed.append((operator, key, strings))
    return tuple(parsed)


# -- evaluation ------------------------------------------------------------------------------


def _action_matches(pattern: str, action: str) -> bool:
    pattern = pattern.removeprefix("name/")
    return pattern == "*" or fnmatch.fnmatchcase(action, pattern)


def _resource_matches(pattern: str, resource: str, operation_level: bool) -> bool:
    if pattern == "*":
        return True
    if operation_level:  # naming a resource for an operation-level API grants nothing
        return False
    p_parts, r_parts = pattern.split(":", 5), resource.split(":", 5)
    if len(p_parts) != 6 or len(r_parts) != 6:
        return False
    for n, (p, r) in enumerate(zip(p_parts, r_parts, strict=True)):
        if n == 1 and p == "":  # project: kept only for compatibility
            continue
        if n == 3 and p == "":  # an empty region matches every region
            continue
        if not fnmatch.fnmatchcase(r, p):
            return False
    return True


def _condition_holds(
    effect: str, operator: str, key: str, values: tuple[str, ...], context: Mapping[str, str]
) -> bool:
    actual = context.get(key)
    if operator.startswith("ip_"):
        try:
            address = ipaddress.ip_address(actual or "")
        except ValueError:
            # An address that cannot be told (absent, "unknown", garbage) fails closed: a
            # deny statement's ip condition holds, an allow statement's does not, whichever
            # of ip_equal / ip_not_equal it is.
            return effect == "deny"
        inside = any(address in ipaddress.ip_network(v, strict=False) for v in values)
        return inside if operator == "ip_equal" else not inside
    if operator == "string_equal_if_exist" and actual is None:
        return True
    if actual is None:
        return False
    equal = actual in values
    return not equal if operator == "string_not_equal" else equal


def _applies(statement: Statement, action: str, resource: str, request: Request) -> bool:
    operation_level = request.resources == ("*",)
    return (
        any(_action_matches(a, action) for a in statement.actions)
        and any(_resource_matches(r, resource, operation_level) for r in statement.resources)
        and all(
            _condition_holds(statement.effect, o, k, v, request.context)
            for o, k, v in statement.conditions
        )
    )


def denied_resource(policy: Policy, request: Request) -> str | None:
    """The first resource the policy does not allow (explicit deny first), or None."""
    for resource in request.resources:
        for statement in policy.statements:
            if statement.effect == "deny" and _applies(
                statement, request.action, resource, request
            ):
                return resource
    for resource in request.resources:
        if not any(
            s.effect == "allow" and _applies(s, request.action, resource, request)
            for s in policy.statements
        ):
            return resource
    return None


def check(policies: Sequence[Policy], request: Request) -> str | None:
    """Every policy (the user's, then a session's) must allow: the refused resource, or None."""
    for policy in policies:
        refused = denied_resource(policy, request)
        if refused is not None:
            return refused
    return None
