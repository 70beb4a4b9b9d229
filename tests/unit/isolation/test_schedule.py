"""Protocol → planned end and test days; release readiness (what is missing)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.isolation import schedule
from bastion.protocols.profiles import PROFILES, get_profile

D = date(2022, 3, 25)


@pytest.mark.parametrize(
    ("profile", "reason", "end_day", "tests"),
    [
        ("jilin-2022-03", "close_contact", 14, (1, 4, 7, 10, 14)),
        ("jilin-2022-03", "secondary_contact", 7, (1, 4, 7)),
        ("national-9", "close_contact", 7, (1, 2, 3, 5, 7)),
        ("national-9", "secondary_contact", 7, (1, 4, 7)),
        ("national-2022-11", "close_contact", 5, (1, 2, 3, 5)),
        ("jilin-2022-03", "case", 8, (7, 8)),
        ("national-9", "case", 8, (7, 8)),
    ],
)
def test_main_periods(profile, reason, end_day, tests):
    plan = schedule.plan_main(get_profile(profile), reason, D)
    assert plan.planned_end_on == D + timedelta(days=end_day - 1)
    assert plan.test_days == tests
    assert plan.due_on(1) == D


@pytest.mark.parametrize(
    ("profile", "reason", "days", "tests"),
    [
        ("jilin-2022-03", "close_contact", 7, (2, 7)),
        ("national-9", "close_contact", 3, (3,)),
        ("national-2022-11", "close_contact", 3, (3,)),
        ("jilin-2022-03", "secondary_contact", None, None),
        ("national-9", "case", None, None),
    ],
)
def test_home_monitoring_follows_the_main_period(profile, reason, days, tests):
    plan = schedule.plan_monitoring(get_profile(profile), reason, D)
    if days is None:
        assert plan is None
        return
    assert plan is not None
    assert plan.starts_on == D + timedelta(days=1)
    assert plan.planned_end_on == D + timedelta(days=days)
    assert plan.test_days == tests


def test_secondary_contacts_are_not_managed_from_november_2022():
    assert not schedule.is_traced(get_profile("national-2022-11"), "secondary_contact")
    assert schedule.is_traced(get_profile("national-2022-11"), "case")


START = date(2022, 3, 1)
END = date(2022, 3, 7)


@pytest.mark.parametrize(
    ("results", "on", "expected"),
    [
        ({1: "negative", 4: "negative", 7: "negative"}, END, []),
        ({1: "negative", 4: "negative", 7: "negative"}, END + timedelta(days=3), []),
        ({1: "negative", 7: "negative"}, END, [("test_missing", 4)]),
        ({1: "negative", 4: "invalid", 7: "negative"}, END, [("test_missing", 4)]),
        ({1: "negative", 4: "positive", 7: "negative"}, END, [("test_positive", 4)]),
        (
            {1: "negative", 4: "negative"},
            END - timedelta(days=1),
            [("test_missing", 7), ("before_planned_end", None)],
        ),
        (
            {},
            START,
            [
                ("test_missing", 1),
                ("test_missing", 4),
                ("test_missing", 7),
                ("before_planned_end", None),
            ],
        ),
    ],
)
def test_release_blockers(results, on, expected):
    blockers = schedule.release_blockers(
        starts_on=START, planned_end_on=END, test_days=(1, 4, 7), results=results, on=on
    )
    assert [(b.kind, b.day_no) for b in blockers] == expected


def test_an_override_never_releases_over_a_positive_test():
    missing = [schedule.Missing("test_missing", 4), schedule.Missing("before_planned_end")]
    assert schedule.overridable(missing)
    assert not schedule.overridable([*missing, schedule.Missing("test_positive", 7)])


profiles = st.sampled_from(sorted(PROFILES))
reasons = st.sampled_from(["case", "close_contact", "secondary_contact"])
days = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1))


@given(profiles, reasons, days)
def test_every_test_day_lies_inside_its_period(key, reason, start):
    profile = get_profile(key)
    plan = schedule.plan_main(profile, reason, start)
    assert plan.planned_end_on >= start
    for d in plan.test_days:
        assert start <= plan.due_on(d) <= plan.planned_end_on
    follow = schedule.plan_monitoring(profile, reason, plan.planned_end_on)
    if follow is not None:
        assert follow.starts_on == plan.planned_end_on + timedelta(days=1)
        assert all(
            follow.starts_on <= follow.due_on(d) <= follow.planned_end_on for d in follow.test_days
        )


@given(
    st.dictionaries(
        st.sampled_from([1, 4, 7]), st.sampled_from(["negative", "positive", "invalid", None])
    ),
    st.integers(min_value=0, max_value=20),
)
def test_ready_exactly_when_every_test_is_negative_and_the_end_is_reached(results, offset):
    on = START + timedelta(days=offset)
    blockers = schedule.release_blockers(
        starts_on=START, planned_end_on=END, test_days=(1, 4, 7), results=results, on=on
    )
    ready = all(results.get(d) == "negative" for d in (1, 4, 7)) and on >= END
    assert (not blockers) == ready
    # Each test day is named at most once, and only test days are named.
    named = [b.day_no for b in blockers if b.day_no is not None]
    assert len(named) == len(set(named))
    assert set(named) <= {1, 4, 7}


@given(days, st.integers(min_value=1, max_value=60))
def test_day_numbers_and_dates_round_trip(start, n):
    assert schedule.day_no_of(start, schedule.day_on(start, n)) == n
