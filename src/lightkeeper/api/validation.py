"""Map pydantic validation failures onto API 3.0 parameter errors.

Unknown field -> ``UnknownParameter``, missing -> ``MissingParameter``, a number outside
its int64/uint64 range -> ``InvalidParameterValue.OutOfRange``, wrong type ->
``InvalidParameter``, each naming the dotted path the SDK would flatten it to.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from lightkeeper.api.integers import OUT_OF_RANGE_ERRORS
from lightkeeper.errors import ApiError


def _path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def validate(model: type[BaseModel], params: dict[str, Any], *, strict: bool) -> BaseModel:
    try:
        return model.model_validate(params, strict=strict)
    except ValidationError as exc:
        raise _api_error(exc) from None


def _api_error(exc: ValidationError) -> ApiError:
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    by_kind = {"extra_forbidden": "UnknownParameter", "missing": "MissingParameter"}
    for kind in ("extra_forbidden", "missing"):
        for error in errors:
            if error["type"] == kind:
                return ApiError(by_kind[kind], name=_path(error["loc"]))
    first = errors[0]
    if first["type"] in OUT_OF_RANGE_ERRORS:
        return ApiError.variant("InvalidParameterValue.OutOfRange#name", name=_path(first["loc"]))
    return ApiError("InvalidParameter", name=_path(first["loc"]))
