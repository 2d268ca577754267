"""DescribeSnapshots: filters, limits, paging and order, isolation, and the Snapshot's fields."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models
from testkit import clients, world
from testkit.server import Account, Server

from lightkeeper.lighthouse.models import RESPONSE_FIELDS

pytestmark = pytest.mark.both_engines  # SQLite and PostgreSQL (tests/conftest.py)

UNKNOWN_ID = "lhsnap-zz9zz9zz"


class Pacer:
    """Keeps one account's DescribeSnapshots calls under the 20/s limit (fixed 1 s window)."""

    def __init__(self, per_second: int = 15) -> None:
        self.per_second = per_second
        self.second = -1
        self.count = 0

    def __call__(self) -> None:
        now = time.time()
        if int(now) != self.second:
            self.second, self.count = int(now), 0
        if self.count >= self.per_second:
            time.sleep(int(now) + 1.02 - now)
            self.second, self.count = int(time.time()), 0
        self.count += 1


@dataclass
class Catalog:
    """One account: three snapshots in Guangzhou (a second apart) and one in Shanghai."""

    account: Account
    client: lighthouse_client.LighthouseClient
    pace: Pacer
    instances: dict[str, dict[str, Any]]
    snapshots: dict[str, str]  # label -> snapshot id

    def describe(self, **fields: Any) -> models.DescribeSnapshotsResponse:
        request = models.DescribeSnapshotsRequest()
        for key, value in fields.items():
            setattr(request, key, value)
        self.pace()
        return self.client.DescribeSnapshots(request)

    def ids(self, response: models.DescribeSnapshotsResponse) -> list[str]:
        return [s.SnapshotId for s in response.SnapshotSet]


def _tags(**pairs: str) -> list[models.Tag]:
    tags = []
    for key, value in pairs.items():
        tag = models.Tag()
        tag.Key, tag.Value = key, value
        tags.append(tag)
    return tags


def _filter(name: str, *values: str) -> models.Filter:
    item = models.Filter()
    item.Name, item.Values = name, list(values)
    return item


def _create(
    c: lighthouse_client.LighthouseClient, instance_id: str, name: str, tags: list[models.Tag]
) -> str:
    request = models.CreateInstanceSnapshotRequest()
    request.InstanceId, request.SnapshotName, request.Tags = instance_id, name, tags
    return str(c.CreateInstanceSnapshot(request).SnapshotId)


def _next_second() -> None:
    """CreatedTime has one-second resolution: sleep into the next second."""
    now = time.time()
    time.sleep(int(now) + 1.05 - now)


def _error(call: Any) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    return info.value


@pytest.fixture(scope="module")
def catalog(server: Server) -> Catalog:
    account = world.new_account(server, "describe")
    regions = {"a": "ap-guangzhou", "b": "ap-guangzhou", "sh": "ap-shanghai"}
    with ThreadPoolExecutor(3) as pool:  # each admin call is its own process
        made = pool.map(lambda r: world.create_instance(server, account, r), regions.values())
        instances = dict(zip(regions, made, strict=True))
    a, b = instances["a"]["InstanceId"], instances["b"]["InstanceId"]
    c = world.client(server, account)
    shanghai = world.client(server, account, "ap-shanghai")
    snapshots = {
        "sh": _create(shanghai, instances["sh"]["InstanceId"], "alpha", _tags(env="prod")),
        "a": _create(c, a, "alpha", _tags(env="prod", team="red")),
    }
    _next_second()
    snapshots["b"] = _create(c, b, "alpha-b", _tags(team="blue"))
    _next_second()
    world.wait_normal(c, snapshots["a"])  # one operation at a time on a disk
    snapshots["d"] = _create(c, a, "beta", _tags(env="dev"))
    return Catalog(account, c, Pacer(), instances, snapshots)


def test_snapshot_ids_and_filters_conflict(catalog: Catalog) -> None:
    error = _error(
        lambda: catalog.describe(
            SnapshotIds=[catalog.snapshots["a"]], Filters=[_filter("snapshot-name", "alpha")]
        )
    )
    assert error.code == "InvalidParameter.ParameterConflict"
    assert "SnapshotIds" in error.message and "Filters" in error.message


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("snapshot-id", ("#a", "#d"), {"a", "d"}),
        ("disk-id", ("#disk:b",), {"b"}),
        ("snapshot-name", ("alpha",), {"a"}),  # exact: neither "alpha-b" nor Shanghai's
        ("snapshot-name", ("alph",), set()),
        ("snapshot-name", ("alpha-b", "beta"), {"b", "d"}),
        ("instance-id", ("#ins:a",), {"a", "d"}),
        ("instance-id", ("#ins:a", "#ins:b"), {"a", "b", "d"}),
        ("tag-key", ("team",), {"a", "b"}),
        ("tag-value", ("prod", "dev"), {"a", "d"}),
        ("tag:env", ("prod",), {"a"}),
        ("tag:team", ("blue", "green"), {"b"}),
        ("tag:nope", ("prod",), set()),
    ],
)
def test_filter_by_name(
    catalog: Catalog, name: str, values: tuple[str, ...], expected: set[str]
) -> None:
    def resolve(value: str) -> str:
        if value.startswith("#disk:"):
            return str(catalog.instances[value[6:]]["SystemDisk"]["DiskId"])
        if value.startswith("#ins:"):
            return str(catalog.instances[value[5:]]["InstanceId"])
        if value.startswith("#"):
            return catalog.snapshots[value[1:]]
        return value

    response = catalog.describe(Filters=[_filter(name, *map(resolve, values))])
    assert set(catalog.ids(response)) == {catalog.snapshots[label] for label in expected}
    assert response.TotalCount == len(expected)


def test_filters_are_combined_with_and(catalog: Catalog) -> None:
    response = catalog.describe(
        Filters=[_filter("snapshot-name", "alpha", "alpha-b"), _filter("tag-key", "env")]
    )
    assert catalog.ids(response) == [catalog.snapshots["a"]]


def test_tags_given_at_creation_are_returned(catalog: Catalog) -> None:
    response = catalog.describe(SnapshotIds=[catalog.snapshots["a"], catalog.snapshots["b"]])
    tags = {s.SnapshotId: {(t.Key, t.Value) for t in s.Tags} for s in response.SnapshotSet}
    assert tags == {
        catalog.snapshots["a"]: {("env", "prod"), ("team", "red")},
        catalog.snapshots["b"]: {("team", "blue")},
    }


@pytest.mark.parametrize(
    ("filters", "code"),
    [
        (
            [_filter("snapshot-name", f"n{i}") for i in range(11)],
            "InvalidParameterValue.LimitExceeded",
        ),
        ([_filter("snapshot-name", *"abcdef")], "InvalidParameter.FilterValueLimitExceeded"),
        ([_filter("instance-name", "web")], "InvalidParameter.InvalidFilterNotSupportedName"),
        ([_filter("tag:", "x")], "InvalidParameter.InvalidFilterNotSupportedName"),
    ],
)
def test_filter_limits(catalog: Catalog, filters: list[models.Filter], code: str) -> None:
    assert _error(lambda: catalog.describe(Filters=filters)).code == code


def test_ten_filters_and_five_values_are_accepted(catalog: Catalog) -> None:
    filters = [_filter("tag-key", "env", "team", "x", "y", "z") for _ in range(10)]
    assert catalog.describe(Filters=filters).TotalCount == 3


def test_more_than_100_snapshot_ids(catalog: Catalog) -> None:
    many = [f"lhsnap-{i:08d}" for i in range(101)]
    assert _error(lambda: catalog.describe(SnapshotIds=many)).code == (
        "InvalidParameterValue.LimitExceeded"
    )
    assert catalog.describe(SnapshotIds=many[:100]).TotalCount == 0


@pytest.mark.parametrize(
    ("paging", "code"),
    [
        ({"Offset": -1}, "InvalidParameterValue.Negative"),
        ({"Limit": -1}, "InvalidParameterValue.Negative"),
        ({"Limit": 101}, "InvalidParameterValue.OutOfRange"),
    ],
)
def test_paging_errors(catalog: Catalog, paging: dict[str, int], code: str) -> None:
    assert _error(lambda: catalog.describe(**paging)).code == code


def test_newest_first_and_paging(catalog: Catalog) -> None:
    s = catalog.snapshots
    everything = catalog.describe()
    assert catalog.ids(everything) == [s["d"], s["b"], s["a"]]
    assert everything.TotalCount == 3
    created = [x.CreatedTime for x in everything.SnapshotSet]
    assert created == sorted(created, reverse=True) and len(set(created)) == 3

    page = catalog.describe(Limit=2)
    assert catalog.ids(page) == [s["d"], s["b"]] and page.TotalCount == 3
    rest = catalog.describe(Offset=2, Limit=2)
    assert catalog.ids(rest) == [s["a"]] and rest.TotalCount == 3
    beyond = catalog.describe(Offset=3)
    assert beyond.SnapshotSet == [] and beyond.TotalCount == 3
    assert catalog.describe(Limit=100).TotalCount == 3


def test_unknown_ids_are_omitted(catalog: Catalog) -> None:
    response = catalog.describe(SnapshotIds=[UNKNOWN_ID])
    assert response.TotalCount == 0 and response.SnapshotSet == []
    mixed = catalog.describe(SnapshotIds=[UNKNOWN_ID, catalog.snapshots["b"]])
    assert catalog.ids(mixed) == [catalog.snapshots["b"]] and mixed.TotalCount == 1


def test_other_regions_snapshots_are_not_listed(server: Server, catalog: Catalog) -> None:
    here = catalog.describe(SnapshotIds=[catalog.snapshots["sh"]])
    assert here.TotalCount == 0
    shanghai = world.client(server, catalog.account, "ap-shanghai")
    there = shanghai.DescribeSnapshots(models.DescribeSnapshotsRequest())
    assert [x.SnapshotId for x in there.SnapshotSet] == [catalog.snapshots["sh"]]
    assert there.TotalCount == 1


def test_another_accounts_snapshots_are_never_listed(
    server: Server, account: Account, catalog: Catalog
) -> None:
    other = world.client(server, account)
    mine = set(catalog.snapshots.values())
    listed = other.DescribeSnapshots(models.DescribeSnapshotsRequest())
    assert not mine & {x.SnapshotId for x in listed.SnapshotSet}
    by_ids = models.DescribeSnapshotsRequest()
    by_ids.SnapshotIds = sorted(mine)
    assert other.DescribeSnapshots(by_ids).TotalCount == 0
    by_instance = models.DescribeSnapshotsRequest()
    by_instance.Filters = [_filter("instance-id", catalog.instances["a"]["InstanceId"])]
    assert other.DescribeSnapshots(by_instance).TotalCount == 0


def test_raw_json_has_every_sdk_field(server: Server, catalog: Catalog) -> None:
    snapshot_id = catalog.snapshots["a"]
    world.wait_normal(catalog.client, snapshot_id, timeout=20)
    catalog.pace()
    reply = clients.tc3_post(
        server.endpoint, catalog.account, "DescribeSnapshots", {"SnapshotIds": [snapshot_id]}
    )
    body = reply.json()["Response"]
    assert body["TotalCount"] == 1
    raw = body["SnapshotSet"][0]
    sdk_fields = {name.lstrip("_") for name in vars(models.Snapshot())}
    assert set(RESPONSE_FIELDS["Snapshot"]) == sdk_fields
    assert set(raw) == sdk_fields
    assert raw["SnapshotId"] == snapshot_id
    assert raw["DiskUsage"] == "SYSTEM_DISK"
    assert raw["DiskId"] == catalog.instances["a"]["SystemDisk"]["DiskId"]
    assert raw["DiskSize"] == 1
    assert raw["SnapshotName"] == "alpha"
    assert raw["SnapshotState"] == "NORMAL" and raw["Percent"] == 100
    assert raw["LatestOperation"] == "CreateInstanceSnapshot"
    assert raw["LatestOperationState"] == "SUCCESS"
    assert re.fullmatch(r"[0-9a-f-]{36}", raw["LatestOperationRequestId"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", raw["CreatedTime"])
    assert raw["Tags"] == [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "red"}]
    assert "InstanceId" not in raw  # the real Snapshot carries no InstanceId
