"""Integers as API 3.0 carries them: ASCII decimal text on the wire, int64/uint64 in the spec.

Python's ``int()`` and ``str.isdigit()`` are wider than the protocol: ``int("٣")`` is 3
(Arabic-Indic digits), ``int(" 1_0 ")`` is 10, ``"²".isdigit()`` is true but ``int("²")``
raises, and ``int()`` refuses more than 4,300 digits. The real service reads ASCII digits
only, so every number taken from a request goes through ``ascii_decimal`` (fail closed), and
every integer parameter of the generated request models is an ``Int64`` or ``UInt64``, whose
range is checked before any value reaches the database (SQLite cannot bind 2**63).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
UINT64_MAX = 2**64 - 1

_SIGNED = re.compile(r"[+-]?[0-9]+")
_UNSIGNED = re.compile(r"[0-9]+")
# A type error is ``InvalidParameter``; a number that does not fit is out of range
# (``lightkeeper.api.validation`` maps these pydantic error types to the API's codes).
OUT_OF_RANGE_ERRORS = frozenset(
    {"greater_than_equal", "less_than_equal", "int_parsing_size", "int_out_of_range"}
)


def ascii_decimal(text: str, *, signed: bool = False) -> int | None:
    """``text`` as an int if it is only ASCII digits (after a sign, if ``signed``), else None.

    None also for more digits than ``int()`` converts (4,300): no caller needs such a number.
    """
    if not (_SIGNED if signed else _UNSIGNED).fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _wire_integer(value: Any) -> Any:
    """Before pydantic's own int validation: query/form text must be ASCII decimal (a JSON
    body gives real numbers, and strict validation refuses text there anyway); a whole JSON
    number beyond the int64 range, which the JSON parser (orjson) hands over as a float when
    it is outside [-2**63, 2**64), is out of range rather than of the wrong type."""
    if isinstance(value, str):
        if _SIGNED.fullmatch(value) is None:
            raise PydanticCustomError("int_parsing", "not an ASCII decimal integer")
        if ascii_decimal(value, signed=True) is None:  # thousands of digits: does not fit
            raise PydanticCustomError("int_out_of_range", "integer out of range")
    elif isinstance(value, float) and value.is_integer() and abs(value) >= 2**63:
        raise PydanticCustomError("int_out_of_range", "integer out of range")
    return value


Int64 = Annotated[int, BeforeValidator(_wire_integer), Field(ge=INT64_MIN, le=INT64_MAX)]
UInt64 = Annotated[int, BeforeValidator(_wire_integer), Field(ge=0, le=UINT64_MAX)]
