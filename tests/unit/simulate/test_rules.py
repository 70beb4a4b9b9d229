"""The pure rules behind the demo province: sizes, trees, households, IDs, names."""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core import crypto
from bastion.core.errors import InvalidInput
from bastion.registry.idnumber import make_resident_id, parse_resident_id
from bastion.registry.rules import MOBILE_RE
from bastion.simulate import names
from bastion.simulate.province import (
    COMMUNITY_HOUSEHOLDS,
    DistrictPlan,
    ResidentIds,
    StartingPoint,
    check_scale,
    compose_household,
    generate,
    generation,
    household_sizes,
    plan_tree,
    special_groups,
    split,
)


@pytest.mark.parametrize("scale", [0, -0.5, 1.000001, 2, math.nan, math.inf])
def test_it_refuses_a_scale_outside_zero_to_one(scale):
    with pytest.raises(InvalidInput) as refused:
        check_scale(scale)
    assert [p.field for p in refused.value.problems] == ["scale"]


@pytest.mark.parametrize("scale", [1, 1.0, 0.01, 1e-6])
def test_it_accepts_a_scale_in_zero_to_one(scale):
    check_scale(scale)


@given(
    st.integers(min_value=0, max_value=10_000_000),
    st.lists(st.floats(min_value=0.1, max_value=10), min_size=1, max_size=20),
)
def test_split_sums_exactly_and_stays_proportional(total, weights):
    parts = split(total, weights)
    assert sum(parts) == total
    whole = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - total * weight / whole) < 1


def test_household_sizes_hold_exactly_the_persons_asked_for_at_2_34_on_average():
    sizes = household_sizes(random.Random(7), 500_000)
    assert sum(sizes) == 500_000
    assert 2.32 < 500_000 / len(sizes) < 2.36
    shares = Counter(sizes)
    assert 0.26 < shares[1] / len(sizes) < 0.29
    assert max(sizes) == 6


def test_an_empty_district_still_gets_a_street_a_community_and_a_grid():
    assert plan_tree(random.Random(1), 0) == [[[0]]]


def test_a_large_district_gets_communities_of_1000_to_3000_and_grids_of_about_300():
    households = 400_000
    tree = plan_tree(random.Random(3), households)
    communities = [sum(grids) for street in tree for grids in street]
    grids = [g for street in tree for community in street for g in community]
    assert sum(grids) == households
    low, high = COMMUNITY_HOUSEHOLDS
    assert all(low * 0.9 <= c <= high * 1.1 for c in communities)
    assert all(150 <= g <= 450 for g in grids)
    assert 280 < households / len(grids) < 320
    assert all(1 <= len(street) <= 12 for street in tree)


def test_a_district_never_gets_more_streets_than_it_has_codes_left():
    tree = plan_tree(random.Random(3), 400_000, max_streets=5)
    assert len(tree) <= 5
    assert sum(g for street in tree for c in street for g in c) == 400_000


def test_households_hang_together():
    rng = random.Random(11)
    for size in [1, 2, 3, 4, 5, 6] * 2_000:
        members = compose_household(rng, size)
        assert len(members) == size
        ages = [age for age, _, _ in members]
        assert all(0 <= age < 100 for age in ages)
        if size == 1:
            assert ages[0] >= 18
        if size >= 3:
            # Someone old enough to head the household.
            assert max(ages) >= 18


def test_a_province_of_households_has_the_census_age_structure():
    rng = random.Random(5)
    bands: Counter[str] = Counter()
    for size in household_sizes(rng, 300_000):
        for age, _, _ in compose_household(rng, size):
            bands["0-14" if age < 15 else "15-59" if age < 60 else "60+"] += 1
    total = sum(bands.values())
    assert bands["0-14"] / total == pytest.approx(0.121, abs=0.01)
    assert bands["15-59"] / total == pytest.approx(0.670, abs=0.01)
    assert bands["60+"] / total == pytest.approx(0.209, abs=0.01)


def test_only_the_elderly_living_alone_are_flagged_living_alone():
    rng = random.Random(2)
    assert all(special_groups(rng, 70, "F", alone=True) & 1 for _ in range(100))
    assert not any(special_groups(rng, 70, "F", alone=False) & 1 for _ in range(100))
    assert not any(special_groups(rng, 45, "M", alone=True) & 1 for _ in range(100))
    assert not any(special_groups(rng, 10, "M", alone=False) & 16 for _ in range(100))


@given(
    st.sampled_from(["220102", "220581", "222401", "220301"]),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
    st.integers(min_value=0, max_value=999),
)
def test_resident_ids_are_make_resident_id_memoised(region, born, sequence):
    got_born, number = ResidentIds(region).number(born.toordinal(), sequence)
    assert got_born == born
    assert number == make_resident_id(region, born, sequence)
    assert parse_resident_id(number).region == region


def test_distinct_stems_never_repeat_even_beyond_the_list():
    count = len(names.PLACE_STEMS) * 2 + 5
    stems = names.distinct_stems(random.Random(1), count)
    assert len(stems) == len(set(stems)) == count


@pytest.mark.parametrize(
    ("n", "text"), [(1, "一"), (2, "二"), (10, "十"), (12, "十二"), (20, "二十"), (35, "三十五")]
)
def test_cn_number(n, text):
    assert names.cn_number(n) == text


def test_mobiles_are_valid_eleven_digit_numbers():
    rng = random.Random(4)
    assert all(MOBILE_RE.match(names.mobile(rng)) for _ in range(1_000))


def test_names_are_a_surname_and_one_or_two_given_characters():
    picker, rng = names.NamePicker(), random.Random(9)
    for _ in range(1_000):
        surname = picker.surname(rng)
        given_name = picker.given(rng, "F", 1995)
        assert 1 <= len(surname) <= 2
        assert 1 <= len(given_name) <= 2
    assert Counter(picker.surname(rng) for _ in range(10_000)).most_common(1)[0][0] == "王"
    korean = Counter(picker.surname(rng, korean=True) for _ in range(10_000))
    assert korean.most_common(1)[0][0] == "金"


def _generated(seed: int, persons: int = 3_000) -> list[tuple[object, ...]]:
    start = StartingPoint(
        seed=seed,
        today=date(2022, 3, 26),
        created_at=datetime(2022, 3, 26, 8, tzinfo=UTC),
        next_building=1,
        next_household=1,
    )
    plan = DistrictPlan(code="220102", city="220100", persons=persons, kind="urban")
    return [row for batch in generate(start, [plan]) for row in batch.persons]


def _people(seed: int) -> list[tuple[object, ...]]:
    # Ciphertexts carry a random nonce; everything else is the seed's.
    return [row[:3] + row[4:] for row in _generated(seed)]


def test_the_same_seed_generates_the_same_people_and_another_seed_others():
    first = _people(1)
    assert len(first) == 3_000
    assert first == _people(1)
    assert first != _people(2)


def test_id_numbers_stay_unique_when_a_birth_date_runs_out_of_sequences(monkeypatch):
    monkeypatch.setattr(generation, "SEQUENCES_PER_DATE", 1)
    rows = _generated(1, persons=5_000)
    numbers = [crypto.decrypt(row[3]) for row in rows]
    assert len(set(numbers)) == len(numbers) == 5_000
    for number, row in zip(numbers, rows, strict=True):
        parsed = parse_resident_id(number)
        assert (parsed.birth_date, parsed.sex) == (row[7], row[6])
