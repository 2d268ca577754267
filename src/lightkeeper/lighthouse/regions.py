"""DescribeRegions and DescribeZones, served from the configured region list."""

from __future__ import annotations

from collections.abc import Sequence

from lightkeeper.api.registry import Context, Reply
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse import models
from lightkeeper.regions import Region

ZONE_ORDER_FIELDS = ("ZONE", "INSTANCE_DISPLAY_LABEL")


class RegionService:
    def __init__(self, regions: Sequence[Region]) -> None:
        self.regions = {r.region: r for r in regions}

    def describe_regions(self, ctx: Context, _req: models.DescribeRegionsRequest) -> Reply:
        regions = [
            {
                "Region": r.region,
                "RegionName": r.name_en if ctx.language == "en-US" else r.name_zh,
                "RegionState": "AVAILABLE",
                "IsChinaMainland": r.mainland,
            }
            for r in self.regions.values()
        ]
        return {"TotalCount": len(regions), "RegionSet": regions}

    def describe_zones(self, ctx: Context, req: models.DescribeZonesRequest) -> Reply:
        order_field = req.OrderField or "ZONE"
        if order_field not in ZONE_ORDER_FIELDS:
            raise ApiError("InvalidParameterValue", name="OrderField", value=order_field)
        order = req.Order or "ASC"
        if order not in ("ASC", "DESC"):
            raise ApiError("InvalidParameterValue", name="Order", value=order)
        region = self.regions[ctx.region or ""]
        zones = [
            {
                "Zone": f"{region.region}-{n}",
                "ZoneName": region.zone_name(n, ctx.language),
                "InstanceDisplayLabel": "NORMAL",
            }
            for n in region.zones
        ]
        # Every zone is NORMAL, so both order fields sort by zone number.
        zones.sort(key=lambda z: int(z["Zone"].rsplit("-", 1)[1]), reverse=order == "DESC")
        return {"TotalCount": len(zones), "ZoneInfoSet": zones}
