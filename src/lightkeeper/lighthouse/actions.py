"""The one action table: action name -> request model, handler and rate limit (per second).

Rate limits are the documented ones (lighthouse-facts §4.6): 20/s for every snapshot API,
100/s DescribeInstances, 10/s StopInstances, DescribeInstancesDeniedActions and DescribeRegions.
"""

from __future__ import annotations

from lightkeeper.api.registry import Action, Handler
from lightkeeper.lighthouse.models import REQUEST_MODELS
from lightkeeper.lighthouse.regions import RegionService


def build_registry(regions: RegionService) -> dict[str, Action]:
    def action(
        name: str, handler: Handler, rate_limit: int, region_required: bool = True
    ) -> Action:
        return Action(name, REQUEST_MODELS[name], handler, rate_limit, region_required)

    table = [
        action("DescribeRegions", regions.describe_regions, 10, region_required=False),
        action("DescribeZones", regions.describe_zones, 20),
    ]
    return {a.name: a for a in table}
