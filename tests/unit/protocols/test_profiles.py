"""The profiles hold the numbers DOMAIN.md gives, and refuse what is not a profile."""

from __future__ import annotations

import pytest

from bastion.core.errors import InvalidInput
from bastion.protocols.profiles import PROFILES, ContactLevel, get_profile


@pytest.mark.parametrize(
    ("key", "close_days", "monitoring", "secondary_traced", "secondary_days"),
    [
        ("jilin-2022-03", 14, 7, True, 7),
        ("national-9", 7, 3, True, 7),
        ("national-2022-11", 5, 3, False, 0),
    ],
)
def test_contact_periods(key, close_days, monitoring, secondary_traced, secondary_days):
    profile = get_profile(key)
    assert (profile.close.days, profile.close.monitoring_days) == (close_days, monitoring)
    assert profile.close.total_days == close_days + monitoring
    assert profile.secondary.traced is secondary_traced
    assert profile.rule(ContactLevel.secondary).days == secondary_days


def test_test_days_fall_inside_their_periods():
    for profile in PROFILES.values():
        for rule in (profile.close, profile.secondary):
            assert all(1 <= d <= rule.days for d in rule.test_days), profile.key
            assert all(1 <= d <= rule.monitoring_days for d in rule.monitoring_test_days)
            assert list(rule.test_days) == sorted(set(rule.test_days))


def test_the_documented_test_days():
    assert get_profile("jilin-2022-03").close.test_days == (1, 4, 7, 10, 14)
    assert get_profile("national-9").close.test_days == (1, 2, 3, 5, 7)
    assert get_profile("national-9").close.monitoring_test_days == (3,)
    assert get_profile("national-9").secondary.setting == "home"


def test_every_zone_kind_has_a_lifting_rule():
    for profile in PROFILES.values():
        assert set(profile.zone_kinds) == set(profile.zone_lift_days)


def test_an_unknown_profile_is_refused_naming_the_field():
    with pytest.raises(InvalidInput) as caught:
        get_profile("national-10", field_name="profile")
    problem = caught.value.problems[0]
    assert (problem.field, problem.reason) == ("profile", "error.protocol_unknown")
