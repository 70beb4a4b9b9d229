"""Region levels and zone kinds."""

from __future__ import annotations

from enum import StrEnum


class RegionLevel(StrEnum):
    province = "province"
    city = "city"
    district = "district"
    street = "street"
    community = "community"
    grid = "grid"


LEVEL_ORDER = [level.value for level in RegionLevel]


class ZoneKind(StrEnum):
    """封控区 / 管控区 / 防范区, and the later high / medium / low risk areas."""

    lockdown = "lockdown"
    control = "control"
    precaution = "precaution"
    high = "high"
    medium = "medium"
    low = "low"
