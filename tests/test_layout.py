"""The suite and the long-run tools share helpers through ``testkit/`` only (issue #12): tests
never import tools, tools never import tests, and testkit imports neither (nor bench, nor
pytest, so the tools run without the test dependencies' fixtures)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "tests": {"tools"},
    "tools": {"tests"},
    "bench": {"tests", "tools"},
    "testkit": {"tests", "tools", "bench", "pytest"},
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.partition(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_what_they_may(package: str) -> None:
    wrong = {
        str(path.relative_to(REPO)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in sorted((REPO / package).rglob("*.py"))
    }
    assert {path: names for path, names in wrong.items() if names} == {}
