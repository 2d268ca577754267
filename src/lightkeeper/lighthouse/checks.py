"""Parameter checks shared by several actions: ID formats, list sizes, paging, filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lightkeeper.domain import ids
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse.models import Filter

MALFORMED = {
    ids.INSTANCE: "InvalidParameterValue.InstanceIdMalformed",
    ids.SNAPSHOT: "InvalidParameterValue.SnapshotIdMalformed",
    ids.DISK: "InvalidParameterValue.InvalidDiskIdMalformed",
    ids.DISK_BACKUP: "InvalidParameterValue.DiskBackupIdMalformed",
}


def check_id(prefix: str, value: str) -> str:
    if not ids.is_valid(prefix, value):
        raise ApiError(MALFORMED[prefix])
    return value


def check_ids(
    prefix: str, values: Sequence[str], limit: int, *, required: bool = False, name: str = ""
) -> list[str]:
    """At most ``limit`` well-formed, distinct IDs."""
    if required and not values:
        raise ApiError("MissingParameter", name=name)
    if len(values) > limit:
        raise ApiError("InvalidParameterValue.LimitExceeded")
    if len(set(values)) != len(values):
        raise ApiError("InvalidParameterValue.Duplicated")
    return [check_id(prefix, v) for v in values]


def check_paging(
    offset: int | None,
    limit: int | None,
    maximum: int = 100,
    negative: str = "InvalidParameterValue.Negative",
    too_many: str = "InvalidParameterValue.OutOfRange",
) -> tuple[int, int]:
    """Offset and Limit (defaults 0 and 20). ``negative`` / ``too_many``: the codes the
    action lists for them (the disk actions differ from the seed's)."""
    offset = 0 if offset is None else offset
    limit = 20 if limit is None else limit
    if offset < 0 or limit < 0:
        name, value = ("Offset", offset) if offset < 0 else ("Limit", limit)
        raise _paging_error(negative, name, value)
    if limit > maximum:
        raise _paging_error(too_many, "Limit", limit)
    return offset, limit


def _paging_error(code: str, name: str, value: int) -> ApiError:
    # (the bare InvalidParameterValue's message names the field and its value)
    return (
        ApiError(code, name=name, value=value)
        if code == "InvalidParameterValue"
        else (ApiError(code))
    )


def check_filters(
    filters: Sequence[Filter],
    names: Sequence[str],
    max_values: int,
    id_prefixes: Mapping[str, str] | None = None,
    unknown_name: str = "InvalidParameter.InvalidFilterNotSupportedName",
) -> dict[str, list[str]]:
    """Validate ``Filters``; ``tag:<key>`` is accepted when ``tag:`` is in ``names``.
    ``unknown_name``: the code of a name the action does not filter on (the actions differ:
    the disk actions answer ``InvalidParameter.InvalidFilterInvalidKey``).

    Returns name -> values; a name given twice must match both (its values are intersected).
    """
    if len(filters) > 10:
        raise ApiError("InvalidParameterValue.LimitExceeded")
    result: dict[str, list[str]] = {}
    for item in filters:
        known = item.Name in names or ("tag:" in names and item.Name.startswith("tag:"))
        if not known or item.Name == "tag:":
            raise ApiError(unknown_name)
        if len(item.Values) > max_values:
            raise ApiError("InvalidParameter.FilterValueLimitExceeded")
        prefix = (id_prefixes or {}).get(item.Name)
        if prefix is not None:
            for value in item.Values:
                check_id(prefix, value)
        if item.Name in result:
            result[item.Name] = [v for v in result[item.Name] if v in item.Values]
        else:
            result[item.Name] = list(item.Values)
    return result
