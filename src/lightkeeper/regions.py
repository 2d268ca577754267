"""The default region and zone list: the 15 regions the ApplyInstanceSnapshot page names.

Tencent's real Lighthouse region set changes over time, so it is configuration (``regions`` in
the TOML file); this table is only the default.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_ZH_NUMERALS = "零一二三四五六七八九十"


class Region(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str = Field(pattern=r"^[a-z]+-[a-z]+$")
    name_zh: str
    name_en: str
    mainland: bool
    zones: tuple[int, ...] = Field(min_length=1)

    def zone_ids(self) -> list[str]:
        return [f"{self.region}-{n}" for n in self.zones]

    def zone_name(self, number: int, language: str) -> str:
        if language == "en-US":
            return f"{self.name_en} Zone {number}"
        city = self.name_zh.removeprefix("中国")
        return f"{city}{_ZH_NUMERALS[number] if number <= 10 else number}区"


def _r(region: str, zh: str, en: str, mainland: bool, *zones: int) -> Region:
    return Region(region=region, name_zh=zh, name_en=en, mainland=mainland, zones=zones)


DEFAULT_REGIONS: tuple[Region, ...] = (
    _r("ap-bangkok", "曼谷", "Bangkok", False, 1, 2),
    _r("ap-beijing", "北京", "Beijing", True, 3, 5, 6, 7),
    _r("ap-chengdu", "成都", "Chengdu", True, 1, 2),
    _r("ap-guangzhou", "广州", "Guangzhou", True, 3, 4, 6, 7),
    _r("ap-hongkong", "中国香港", "Hong Kong, China", False, 2, 3),
    _r("ap-jakarta", "雅加达", "Jakarta", False, 1, 2),
    _r("ap-nanjing", "南京", "Nanjing", True, 1, 2, 3),
    _r("ap-seoul", "首尔", "Seoul", False, 1, 2),
    _r("ap-shanghai", "上海", "Shanghai", True, 2, 3, 4, 5),
    _r("ap-singapore", "新加坡", "Singapore", False, 1, 2, 3, 4),
    _r("ap-tokyo", "东京", "Tokyo", False, 1, 2),
    _r("eu-frankfurt", "法兰克福", "Frankfurt", False, 1, 2),
    _r("na-ashburn", "弗吉尼亚", "Virginia", False, 1, 2),
    _r("na-siliconvalley", "硅谷", "Silicon Valley", False, 1, 2),
    _r("sa-saopaulo", "圣保罗", "Sao Paulo", False, 1),
)
