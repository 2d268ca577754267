"""DescribeGeneralResourceQuotas: the snapshot quota of §3.1 and per-bundle instance quotas."""

from __future__ import annotations

from lightkeeper.api.registry import Context, Reply
from lightkeeper.domain import rules
from lightkeeper.errors import ApiError
from lightkeeper.lighthouse import models
from lightkeeper.lighthouse.world import World
from lightkeeper.store import resources as db

# Totals for the names Lightkeeper does not meter (documented defaults, §3.4).
FIXED_TOTALS = {
    "GENERAL_BUNDLE_INSTANCE": 50,
    "STORAGE_BUNDLE_INSTANCE": 50,
    "ENTERPRISE_BUNDLE_INSTANCE": 100,
    "EXCLUSIVE_BUNDLE_INSTANCE": 20,
    "BEFAST_BUNDLE_INSTANCE": 20,
    "STARTER_BUNDLE_INSTANCE": 20,
    "HK_EXCLUSIVE_BUNDLE_INSTANCE": 20,
    "CAREFREE_BUNDLE_INSTANCE": 20,
    "EXCLUSIVE_BUNDLE_02_INSTANCE": 20,
    "NEWCOMER_BUNDLE_INSTANCE": 20,
    "GAME_PORTAL_BUNDLE_INSTANCE": 20,
    "ECONOMY_BUNDLE_INSTANCE": 20,
    "BUDGET_BUNDLE_INSTANCE": 20,
    "RAZOR_SPEED_BUNDLE_INSTANCE": 20,
    "BANDWIDTH_BUNDLE_INSTANCE": 20,
    "USER_KEY_PAIR": 10,
    "SNAPSHOT": 10,
    "BLUEPRINT": 20,
    "FREE_BLUEPRINT": 5,
    "DATA_DISK": 20,
    "FIREWALL_RULE": 100,
}
METERED_BUNDLES = {
    "GENERAL_BUNDLE_INSTANCE": "GENERAL_BUNDLE",
    "STORAGE_BUNDLE_INSTANCE": "STORAGE_BUNDLE",
}


class QuotaService:
    def __init__(self, world: World) -> None:
        self.world = world

    def describe(self, ctx: Context, req: models.DescribeGeneralResourceQuotasRequest) -> Reply:
        if not req.ResourceNames:
            raise ApiError("MissingParameter", name="ResourceNames")
        for name in req.ResourceNames:
            if name not in FIXED_TOTALS:
                raise ApiError("InvalidParameterValue.InvalidResourceQuotaResourceName")
        account, region = ctx.principal.account_id, ctx.region or ""
        options = self.world.options
        with self.world.read() as conn:
            by_bundle = db.count_instances_by_bundle(conn, account, region)
            quotas = []
            for name in req.ResourceNames:
                total, used = FIXED_TOTALS[name], 0
                if name == "SNAPSHOT":
                    total = rules.snapshot_quota(
                        db.count_quota_instances(conn, account, region),
                        options.snapshot_quota_per_instance,
                        options.snapshot_quota_max,
                    )
                    used = db.count_snapshots(conn, account, region)
                elif name in METERED_BUNDLES:
                    used = by_bundle.get(METERED_BUNDLES[name], 0)
                quotas.append(
                    {
                        "ResourceName": name,
                        "ResourceQuotaAvailable": total - used,
                        "ResourceQuotaTotal": total,
                    }
                )
        return {"GeneralResourceQuotaSet": quotas}
