"""What each ``serve`` option takes, in ``--help``, read from the ``Settings`` model.

``--port TEXT`` told a newcomer nothing. Click's own INT/FLOAT/Choice types would say more
but also reject a bad value themselves, in click's multi-line usage error, before the
``Settings`` model could say it in the one ``lightkeeper: error: invalid port: ...`` line
every other configuration mistake gets (and a value from the TOML file, which click never
checks, the same way). So these types only name what is expected; validation stays the
model's, one rule for flags, variables and the TOML file alike.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import click

from lightkeeper.config import Settings

_NAMES: dict[Any, str] = {int: "integer", float: "number", Path: "path", str: "text"}


class SettingType(click.ParamType[Any]):
    """Shown as its name (INTEGER, NUMBER, PATH) or its choices; converts nothing."""

    def __init__(self, name: str, choices: tuple[str, ...] = ()) -> None:
        self.name = name
        self.choices = choices

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        return f"[{'|'.join(self.choices)}]" if self.choices else None

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value


def setting_type(name: str) -> SettingType:
    """The type of the ``Settings`` field behind option ``--name``."""
    annotation = Settings.model_fields[name.replace("-", "_")].annotation
    if get_origin(annotation) in (Union, types.UnionType):  # ``int | None``: the int
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Literal:
        return SettingType("choice", tuple(str(a) for a in get_args(annotation)))
    if get_origin(annotation) is tuple:  # a repeatable option: each use is one item
        annotation = str
    return SettingType(_NAMES.get(annotation, "text"))
