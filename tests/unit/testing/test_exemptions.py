"""A round's exemption rules: parsing, refusals, and the age boundary."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.errors import InvalidInput
from bastion.registry.service import age_on
from bastion.testing import exemptions
from bastion.testing.exemptions import Exemption

DAY = date(2022, 3, 25)


def under(code: str, region: str) -> bool:
    return region.startswith(code)


def exempt(rule: Exemption, *, born: date = date(1985, 1, 1), groups: int = 0, region: str = ""):
    return exemptions.exempts(
        rule, born=born, groups=groups, region_code=region, on=DAY, region_contains=under
    )


def test_it_parses_each_kind_from_a_list_or_its_json():
    rules = exemptions.parse(
        '[{"kind": "age_under", "years": 3}, {"kind": "age_over", "years": 80},'
        ' {"kind": "special_group", "group": "bedridden"},'
        ' {"kind": "region", "code": "220102001001001"}]'
    )
    assert rules == [
        Exemption("age_under", years=3),
        Exemption("age_over", years=80),
        Exemption("special_group", group="bedridden"),
        Exemption("region", code="220102001001001"),
    ]
    assert exemptions.parse([]) == exemptions.parse("") == []


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("not json", "exemptions"),
        ({"kind": "age_under"}, "exemptions"),
        ([42], "exemptions.0"),
        ([{"kind": "astrology"}], "exemptions.0.kind"),
        ([{}], "exemptions.0.kind"),
        ([{"kind": "age_under", "years": "3"}], "exemptions.0.years"),
        ([{"kind": "age_under", "years": True}], "exemptions.0.years"),
        ([{"kind": "age_over", "years": 151}], "exemptions.0.years"),
        ([{"kind": "special_group", "group": "Bedridden"}], "exemptions.0.group"),
        ([{"kind": "region", "code": "2201"}], "exemptions.0.code"),
        ([{"kind": "region", "code": 220100}], "exemptions.0.code"),
        ([{"kind": "age_under", "years": 3}] * 51, "exemptions"),
    ],
)
def test_it_refuses_a_malformed_rule_naming_it(raw, field):
    with pytest.raises(InvalidInput) as caught:
        exemptions.parse(raw)
    assert [p.field for p in caught.value.problems] == [field]


def test_under_three_means_not_yet_three_on_the_rounds_first_day():
    rule = Exemption("age_under", years=3)
    assert exempt(rule, born=date(2019, 3, 26))
    assert not exempt(rule, born=date(2019, 3, 25))


def test_over_eighty_means_eighty_one_or_more():
    rule = Exemption("age_over", years=80)
    assert not exempt(rule, born=date(1942, 3, 25))  # 80 today
    assert exempt(rule, born=date(1941, 3, 25))  # 81 today


def test_groups_and_regions_exempt_only_their_own():
    bedridden = Exemption("special_group", group="bedridden")
    assert exempt(bedridden, groups=2 | 4)
    assert not exempt(bedridden, groups=4)
    compound = Exemption("region", code="220102001001002")
    assert exempt(compound, region="220102001001002")
    assert not exempt(compound, region="220102001001001")


def test_a_leap_day_birthday_counts_from_the_first_of_march():
    assert exemptions.born_on_or_before(date(2023, 2, 28), 3) == date(2020, 2, 28)
    assert exemptions.born_on_or_before(date(2024, 2, 29), 3) == date(2021, 2, 28)


@given(
    born=st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31)),
    day=st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31)),
    years=st.integers(min_value=0, max_value=120),
)
def test_the_birth_date_bound_agrees_with_the_registrys_age(born, day, years):
    assert (age_on(born, day) >= years) == (born <= exemptions.born_on_or_before(day, years))
