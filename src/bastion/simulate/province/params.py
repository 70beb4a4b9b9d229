"""The figures the demo province is built from: census population and household sizes, the
sizes of communities and grids, shares of towns, Korean people and low-income households, and
the sizes of a build's batches."""

from __future__ import annotations

from collections.abc import Callable

PROVINCE = "220000"
PROVINCE_POPULATION = 24_073_453

#: Household sizes (share of households), after the 2020 census: the mean is 2.34 people.
HOUSEHOLD_SIZES: tuple[tuple[int, float], ...] = (
    (1, 0.275),
    (2, 0.34),
    (3, 0.235),
    (4, 0.09),
    (5, 0.04),
    (6, 0.02),
)
COMMUNITY_HOUSEHOLDS = (1_000, 3_000)
GRID_HOUSEHOLDS = 300
COMMUNITIES_PER_STREET = (4, 12)
MAX_CHILDREN = 999  # three digits of code per level
LOW_INCOME_HOUSEHOLDS = 0.03  # 低保 is granted per household, so every member carries it
#: Share of towns (镇) with villages (村) among a district's streets, by kind of district.
RURAL_SHARE = {"urban": 0.15, "county": 0.7, "whole_city": 0.5}
KOREAN_SHARE = {"222400": 0.36}  # 延边: about a third of its people are Korean (朝鲜族)
KOREAN_SHARE_ELSEWHERE = 0.01
#: ID sequences per district, birth date and sex: odd 001–997 for men, even 002–998 for women.
SEQUENCES_PER_DATE = 499
#: Persons gathered before one bulk write: big enough that per-statement overhead vanishes,
#: small enough that memory stays flat.
FLUSH_PERSONS = 20_000
#: From this many persons on, generation runs in a second process (starting one costs about a
#: second; below this the build is quick anyway).
BACKGROUND_FROM = 150_000
#: SQLite page cache during a build, in KiB: the unique token and ID-hash indexes take rows in
#: random order, and with the default 2 MiB cache every insert reads pages back from disk.
SQLITE_BUILD_CACHE_KIB = 256 * 1024

REGION_COLUMNS = ["code", "parent_code", "level", "name_zh", "name_en", "population"]
BUILDING_COLUMNS = ["id", "region_code", "name", "address"]
HOUSEHOLD_COLUMNS = ["id", "region_code", "household_no", "building_id", "address"]

Progress = Callable[[int, int], None]
"""Called with (persons written so far, persons planned) after every bulk write."""
