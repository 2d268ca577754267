"""DescribeInstances, Start/Stop/RebootInstances and DescribeInstancesDeniedActions."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.lighthouse.v20200324 import lighthouse_client, models
from testkit import clients, world
from testkit.server import Account, Server, free_port

from lightkeeper.lighthouse.models import RESPONSE_FIELDS

pytestmark = pytest.mark.both_engines  # SQLite and PostgreSQL (tests/conftest.py)

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def _error(call: Callable[[], Any]) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        call()
    return info.value


def _filter(name: str, *values: str) -> models.Filter:
    item = models.Filter()
    item.Name, item.Values = name, list(values)
    return item


def _describe(c: lighthouse_client.LighthouseClient, **fields: Any) -> Any:
    request = models.DescribeInstancesRequest()
    for key, value in fields.items():
        setattr(request, key, value)
    return c.DescribeInstances(request)


def _power(c: lighthouse_client.LighthouseClient, action: str, ids: list[str], **extra: Any) -> str:
    request = getattr(models, f"{action}Request")()
    request.InstanceIds = ids
    for key, value in extra.items():
        setattr(request, key, value)
    return str(getattr(c, action)(request).RequestId)


def _create_all(server: Server, account: Account, specs: list[tuple[str, ...]]) -> list[Any]:
    with ThreadPoolExecutor(len(specs)) as pool:  # each admin call is its own process
        return list(pool.map(lambda a: world.create_instance(server, account, *a), specs))


# -- describing: one account with three instances on the shared server -----------------------


@dataclass
class Fleet:
    account: Account
    client: lighthouse_client.LighthouseClient
    web: dict[str, Any]  # RUNNING, ap-guangzhou-3, tags role=web, tier=front
    db: dict[str, Any]  # STOPPED, ap-guangzhou-4, tag role=db
    spare: dict[str, Any]  # RUNNING, ap-guangzhou-4, untagged

    def ids(self, response: Any) -> list[str]:
        return [i.InstanceId for i in response.InstanceSet]


@pytest.fixture(scope="module")
def fleet(server: Server) -> Fleet:
    account = world.new_account(server, "fleet")
    web = world.create_instance(
        server,
        account,
        "ap-guangzhou",
        "--name",
        "web-1",
        "--tag",
        "role=web",
        "--tag",
        "tier=front",
    )
    now = time.time()
    time.sleep(int(now) + 1.05 - now)  # times have one-second resolution: web is the oldest
    db, spare = _create_all(
        server,
        account,
        [
            ("ap-guangzhou", "--name", "db-1", "--zone", "ap-guangzhou-4", "--state", "STOPPED")
            + ("--tag", "role=db"),
            ("ap-guangzhou", "--name", "spare", "--zone", "ap-guangzhou-4"),
        ],
    )
    return Fleet(account, world.client(server, account), web, db, spare)


def test_describe_returns_every_sdk_field_with_realistic_values(
    server: Server, fleet: Fleet
) -> None:
    reply = clients.tc3_post(
        server.endpoint,
        fleet.account,
        "DescribeInstances",
        {"InstanceIds": [fleet.web["InstanceId"]]},
    )
    body = reply.json()["Response"]
    assert body["TotalCount"] == 1
    raw = body["InstanceSet"][0]
    sdk_fields = {name.lstrip("_") for name in vars(models.Instance())}
    assert set(RESPONSE_FIELDS["Instance"]) == sdk_fields
    assert set(raw) == sdk_fields
    never_operated = {"LatestOperation", "LatestOperationState", "LatestOperationRequestId"}
    never_operated.add("LatestOperationStartedTime")
    nulls = {k for k, v in raw.items() if v is None}
    assert nulls == {"IsolatedTime"} | never_operated  # nothing has been done to it yet

    assert raw["InstanceId"] == fleet.web["InstanceId"]
    assert re.fullmatch(r"lhins-[a-z0-9]{8}", raw["InstanceId"])
    assert raw["InstanceName"] == "web-1"
    assert raw["InstanceState"] == "RUNNING" and raw["InstanceRestrictState"] == "NORMAL"
    assert raw["Zone"] == "ap-guangzhou-3"
    assert raw["BundleId"] and raw["BlueprintId"].startswith("lhbp-")
    assert raw["CPU"] > 0 and raw["Memory"] > 0
    assert raw["InstanceChargeType"] in ("PREPAID", "POSTPAID_BY_HOUR")
    assert re.fullmatch(r"lhdisk-[a-z0-9]{8}", raw["SystemDisk"]["DiskId"])
    assert raw["SystemDisk"]["DiskSize"] == 1
    assert raw["SystemDisk"]["DiskType"] in ("CLOUD_PREMIUM", "CLOUD_SSD")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", raw["PrivateAddresses"][0])
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", raw["PublicAddresses"][0])
    assert raw["InternetAccessible"]["InternetMaxBandwidthOut"] > 0
    assert raw["RenewFlag"] and isinstance(raw["LoginSettings"]["KeyIds"], list)
    assert uuid.UUID(raw["Uuid"])
    assert re.fullmatch(ISO, raw["CreatedTime"]) and re.fullmatch(ISO, raw["ExpiredTime"])
    assert raw["ExpiredTime"] > raw["CreatedTime"]
    assert raw["PlatformType"] == "LINUX_UNIX" and raw["Platform"] and raw["OsName"]
    assert raw["Tags"] == [{"Key": "role", "Value": "web"}, {"Key": "tier", "Value": "front"}]
    assert raw["SupportIpv6Detail"]["IsSupport"] is False
    assert raw["PublicIpv6Addresses"] == [] and isinstance(raw["InitInvocationId"], str)
    assert set(raw["InstanceViolationDetail"]) == {"Source", "State", "Reason", "Content"}


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("instance-name", ("web-1",), {"web"}),
        ("instance-name", ("web",), set()),  # exact match
        ("instance-name", ("web-1", "db-1"), {"web", "db"}),
        ("zone", ("ap-guangzhou-4",), {"db", "spare"}),
        ("zone", ("ap-guangzhou-6",), set()),
        ("instance-state", ("STOPPED",), {"db"}),
        ("instance-state", ("RUNNING",), {"web", "spare"}),
        ("tag-key", ("role",), {"web", "db"}),
        ("tag-key", ("tier",), {"web"}),
        ("tag-value", ("db",), {"db"}),
        ("tag:role", ("web", "db"), {"web", "db"}),
    ],
)
def test_filter(fleet: Fleet, name: str, values: tuple[str, ...], expected: set[str]) -> None:
    response = _describe(fleet.client, Filters=[_filter(name, *values)])
    wanted = {getattr(fleet, label)["InstanceId"] for label in expected}
    assert set(fleet.ids(response)) == wanted and response.TotalCount == len(expected)


def test_instance_ids_and_filters_conflict(fleet: Fleet) -> None:
    error = _error(
        lambda: _describe(
            fleet.client,
            InstanceIds=[fleet.web["InstanceId"]],
            Filters=[_filter("zone", "ap-guangzhou-3")],
        )
    )
    assert error.code == "InvalidParameter.ParameterConflict"
    assert "InstanceIds" in error.message


def test_order_without_order_field(fleet: Fleet) -> None:
    error = _error(lambda: _describe(fleet.client, Order="DESC"))
    assert error.code == "MissingParameter.OrderFieldRequired"
    ordered = _describe(fleet.client, Order="DESC", OrderField="EXPIRED_TIME")
    assert ordered.TotalCount == 3


def test_order_by_expired_time_applies_before_paging(fleet: Fleet) -> None:
    web = fleet.web["InstanceId"]
    assert fleet.ids(_describe(fleet.client))[-1] == web  # newest first by default
    earliest = _describe(fleet.client, OrderField="EXPIRED_TIME", Limit=1)  # ASC by default
    assert fleet.ids(earliest) == [web] and earliest.TotalCount == 3
    latest = _describe(fleet.client, OrderField="EXPIRED_TIME", Order="DESC", Limit=2)
    assert web not in fleet.ids(latest) and len(latest.InstanceSet) == 2
    last = _describe(fleet.client, OrderField="EXPIRED_TIME", Order="DESC", Offset=2)
    assert fleet.ids(last) == [web]


def test_paging(fleet: Fleet) -> None:
    everything = _describe(fleet.client)
    assert everything.TotalCount == 3 and len(everything.InstanceSet) == 3
    mine = {fleet.web["InstanceId"], fleet.db["InstanceId"], fleet.spare["InstanceId"]}
    assert set(fleet.ids(everything)) == mine
    first = _describe(fleet.client, Limit=2)
    rest = _describe(fleet.client, Offset=2, Limit=2)
    assert first.TotalCount == rest.TotalCount == 3
    assert len(first.InstanceSet) == 2 and len(rest.InstanceSet) == 1
    assert fleet.ids(first) + fleet.ids(rest) == fleet.ids(everything)
    assert _error(lambda: _describe(fleet.client, Limit=101)).code == (
        "InvalidParameterValue.OutOfRange"
    )


def test_start_on_running_is_refused(fleet: Fleet) -> None:
    web = fleet.web["InstanceId"]
    error = _error(lambda: _power(fleet.client, "StartInstances", [web]))
    assert error.code == "UnsupportedOperation.InvalidInstanceState"
    assert world.instance(fleet.client, web).LatestOperation is None


def test_batch_with_one_bad_instance_changes_nothing(fleet: Fleet) -> None:
    web, db = fleet.web["InstanceId"], fleet.db["InstanceId"]
    error = _error(lambda: _power(fleet.client, "StopInstances", [web, db]))
    assert error.code == "UnsupportedOperation.InvalidInstanceState"
    unknown = _error(lambda: _power(fleet.client, "StopInstances", [web, "lhins-zz9zz9zz"]))
    assert unknown.code == "ResourceNotFound.InstanceIdNotFound"
    for instance_id, state in ((web, "RUNNING"), (db, "STOPPED")):
        now = world.instance(fleet.client, instance_id)
        assert now.InstanceState == state and now.LatestOperation is None


@pytest.mark.parametrize("action", ["StartInstances", "StopInstances", "RebootInstances"])
def test_duplicate_ids(fleet: Fleet, action: str) -> None:
    web = fleet.web["InstanceId"]
    assert _error(lambda: _power(fleet.client, action, [web, web])).code == (
        "InvalidParameterValue.Duplicated"
    )


def test_unknown_stop_type(fleet: Fleet) -> None:
    web = fleet.web["InstanceId"]
    error = _error(lambda: _power(fleet.client, "StopInstances", [web], StopType="WEIRD"))
    assert error.code == "InvalidParameterValue"
    assert "WEIRD" in error.message
    assert world.instance(fleet.client, web).InstanceState == "RUNNING"


def test_denied_actions_of_a_running_instance(server: Server, fleet: Fleet) -> None:
    web = fleet.web["InstanceId"]
    request = models.DescribeInstancesDeniedActionsRequest()
    request.InstanceIds = [web]
    english = fleet.client.DescribeInstancesDeniedActions(request).InstanceDeniedActionSet
    assert [item.InstanceId for item in english] == [web]
    denied = {d.Action: (d.Code, d.Message) for d in english[0].DeniedActions}
    assert denied == {
        "StartInstances": (
            "UnsupportedOperation.InvalidInstanceState",
            f"The request does not support the instance `{web}` which is in the state of "
            "`RUNNING`.",
        )
    }
    chinese = world.client(server, fleet.account, language="zh-CN")
    zh = chinese.DescribeInstancesDeniedActions(request).InstanceDeniedActionSet[0]
    assert [(d.Action, d.Code, d.Message) for d in zh.DeniedActions] == [
        (
            "StartInstances",
            "UnsupportedOperation.InvalidInstanceState",
            f"实例 `{web}` 处于 `运行中` 状态中，不支持该操作。",
        )
    ]


# -- power transitions: a server whose transitions take 1 s ----------------------------------


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("paced") / "data"
    server = Server(data, free_port(), ("--transition-seconds", "1"))
    server.start()
    yield server
    server.kill()  # a throwaway data dir: no need to wait for a transition in flight


def test_stop_start_and_reboot_pass_through_their_transitional_states(paced: Server) -> None:
    account = world.new_account(paced, "power")
    running, stopped, rebooted = (
        i["InstanceId"]
        for i in _create_all(
            paced,
            account,
            [("ap-guangzhou",), ("ap-guangzhou", "--state", "STOPPED"), ("ap-guangzhou",)],
        )
    )
    c = world.client(paced, account)
    plan = {  # instance -> (action, transitional state, final state)
        running: ("StopInstances", "STOPPING", "STOPPED"),
        stopped: ("StartInstances", "STARTING", "RUNNING"),
        rebooted: ("RebootInstances", "REBOOTING", "RUNNING"),
    }
    requests: dict[str, str] = {}
    for instance_id, (action, transitional, _) in plan.items():
        requests[instance_id] = _power(c, action, [instance_id])
        now = world.instance(c, instance_id)
        assert now.InstanceState == transitional
        assert now.LatestOperation == action and now.LatestOperationState == "OPERATING"
        assert now.LatestOperationRequestId == requests[instance_id]
        assert re.fullmatch(ISO, now.LatestOperationStartedTime)

    for instance_id, (action, _, final) in plan.items():
        done = world.wait_for(
            partial(world.instance, c, instance_id),
            lambda i: i.LatestOperationState != "OPERATING",
            timeout=15,
        )
        assert done.InstanceState == final
        assert done.LatestOperation == action and done.LatestOperationState == "SUCCESS"
        assert done.LatestOperationRequestId == requests[instance_id]
