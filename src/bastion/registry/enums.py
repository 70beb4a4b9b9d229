"""Registry vocabularies."""

from __future__ import annotations

from enum import IntFlag, StrEnum


class IdType(StrEnum):
    resident_id = "resident_id"  # 居民身份证 (GB 11643)
    passport = "passport"
    hk_macao_permit = "hk_macao_permit"  # 港澳居民来往内地通行证
    taiwan_permit = "taiwan_permit"  # 台湾居民来往大陆通行证
    foreign_permanent = "foreign_permanent"  # 外国人永久居留身份证
    other = "other"


class Sex(StrEnum):
    male = "M"
    female = "F"


class SpecialGroup(IntFlag):
    """特殊人群, stored as a bit set so "who in my grid is bedridden" is one indexed filter."""

    living_alone = 1  # 独居老人
    bedridden = 2  # 卧床
    disabled = 4  # 残疾
    low_income = 8  # 低保
    veteran = 16  # 退役军人

    @classmethod
    def names(cls, value: int) -> list[str]:
        return [g.name for g in cls if g.name and value & g.value]

    @classmethod
    def parse_names(cls, names: list[str]) -> int:
        value = 0
        for name in names:
            value |= cls[name].value
        return value


#: Accepted spellings of each special group in import files (English key, 中文).
SPECIAL_GROUP_ALIASES: dict[str, str] = {
    "living_alone": "living_alone",
    "独居": "living_alone",
    "独居老人": "living_alone",
    "bedridden": "bedridden",
    "卧床": "bedridden",
    "disabled": "disabled",
    "残疾": "disabled",
    "残疾人": "disabled",
    "low_income": "low_income",
    "低保": "low_income",
    "veteran": "veteran",
    "退役军人": "veteran",
}
