"""The demo province: a realistic, seeded population built from the 2020 census figures.

``build_province`` splits each city's census population (times ``scale``) among its districts,
lays streets, communities and grids below them, fills the grids with buildings and households,
and the households with people whose ages, sexes, names, ID numbers, phones and special-group
flags hang together. The same seed on the same day gives the same people (only the ID-number
ciphertexts differ, since every encryption draws a fresh nonce).

Everything goes in through the one bulk path (``core.db.bulk_insert``), district by district and
a few tens of thousands of persons at a time, so memory stays flat however large the province.
Each district draws from its own RNG seeded by (seed, district code): a district's people do
not depend on how many people the districts before it got.

Generating people costs about as much CPU as writing them, so a large build generates in a
second process while this one writes (:func:`batches_from_child`); both run the very same
generator, and the rows are the same either way.
"""

from __future__ import annotations

from bastion.simulate.province.background import batches_from_child
from bastion.simulate.province.build import ProvinceSummary, build_province, district_plans
from bastion.simulate.province.demo import DemoPlaces, demo_places
from bastion.simulate.province.generation import Batch, DistrictPlan, StartingPoint, generate
from bastion.simulate.province.params import (
    BACKGROUND_FROM,
    BUILDING_COLUMNS,
    COMMUNITIES_PER_STREET,
    COMMUNITY_HOUSEHOLDS,
    FLUSH_PERSONS,
    GRID_HOUSEHOLDS,
    HOUSEHOLD_COLUMNS,
    HOUSEHOLD_SIZES,
    KOREAN_SHARE,
    KOREAN_SHARE_ELSEWHERE,
    LOW_INCOME_HOUSEHOLDS,
    MAX_CHILDREN,
    PROVINCE,
    PROVINCE_POPULATION,
    REGION_COLUMNS,
    RURAL_SHARE,
    SEQUENCES_PER_DATE,
    SQLITE_BUILD_CACHE_KIB,
    Progress,
)
from bastion.simulate.province.residents import (
    ELDER_BANDS,
    PHONE_SHARE_BY_AGE,
    SINGLE_ADULT_BANDS,
    Member,
    ResidentIds,
    compose_household,
    phone_share,
    special_groups,
)
from bastion.simulate.province.tree import check_scale, household_sizes, plan_tree, split

__all__ = [
    "BACKGROUND_FROM",
    "BUILDING_COLUMNS",
    "COMMUNITIES_PER_STREET",
    "COMMUNITY_HOUSEHOLDS",
    "ELDER_BANDS",
    "FLUSH_PERSONS",
    "GRID_HOUSEHOLDS",
    "HOUSEHOLD_COLUMNS",
    "HOUSEHOLD_SIZES",
    "KOREAN_SHARE",
    "KOREAN_SHARE_ELSEWHERE",
    "LOW_INCOME_HOUSEHOLDS",
    "MAX_CHILDREN",
    "PHONE_SHARE_BY_AGE",
    "PROVINCE",
    "PROVINCE_POPULATION",
    "REGION_COLUMNS",
    "RURAL_SHARE",
    "SEQUENCES_PER_DATE",
    "SINGLE_ADULT_BANDS",
    "SQLITE_BUILD_CACHE_KIB",
    "Batch",
    "DemoPlaces",
    "DistrictPlan",
    "Member",
    "Progress",
    "ProvinceSummary",
    "ResidentIds",
    "StartingPoint",
    "batches_from_child",
    "build_province",
    "check_scale",
    "compose_household",
    "demo_places",
    "district_plans",
    "generate",
    "household_sizes",
    "phone_share",
    "plan_tree",
    "special_groups",
    "split",
]
