"""The bulletin's pure rules: when a case is counted and as what, big numbers, city order,
figure-by-figure differences."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.bulletin.diff import changes, flatten
from bastion.bulletin.rules import Counted, CountEvent, count_events, en_big, largest_first, zh_big

D = date(2022, 3, 25)
D1 = D + timedelta(days=1)


@pytest.mark.parametrize(
    ("classification", "reported", "reclassified", "events"),
    [
        ("confirmed", D, None, [CountEvent(D, Counted.confirmed)]),
        ("asymptomatic", D, None, [CountEvent(D, Counted.asymptomatic)]),
        # Reclassified on a later day: asymptomatic first, then confirmed "of which reclassified".
        (
            "confirmed",
            D,
            D1,
            [CountEvent(D, Counted.asymptomatic), CountEvent(D1, Counted.confirmed, True)],
        ),
        # Reclassified the day it was reported: never reported as asymptomatic.
        ("confirmed", D, D, [CountEvent(D, Counted.confirmed)]),
    ],
)
def test_count_events(classification, reported, reclassified, events):
    assert (
        count_events(
            classification=classification, reported_on=reported, reclassified_on=reclassified
        )
        == events
    )


@given(
    classification=st.sampled_from(["confirmed", "asymptomatic"]),
    reported=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)),
    later=st.one_of(st.none(), st.integers(min_value=-3, max_value=30)),
)
def test_every_case_is_counted_once_as_new_and_at_most_once_as_confirmed(
    classification, reported, later
):
    reclassified = None if later is None else reported + timedelta(days=later)
    events = count_events(
        classification=classification, reported_on=reported, reclassified_on=reclassified
    )
    firsts = [e for e in events if not e.reclassified]
    assert len(firsts) == 1
    assert firsts[0].day == reported
    confirmed = [e for e in events if e.kind == Counted.confirmed]
    assert len(confirmed) == (1 if classification == "confirmed" else 0)
    assert all(e.kind == Counted.confirmed for e in events if e.reclassified)
    # Events are in time order, never on the same day twice.
    assert len({e.day for e in events}) == len(events)
    assert [e.day for e in events] == sorted(e.day for e in events)


@pytest.mark.parametrize(
    ("n", "zh", "en"),
    [
        (0, "0", "0"),
        (96607, "96607", "96,607"),
        (186169, "18.62万", "186,169"),
        (8_660_000, "866万", "8.66 million"),
        (131_000_000, "1.31亿", "131 million"),
        (1_000_000_000, "10亿", "1 billion"),
    ],
)
def test_big_numbers_the_way_the_releases_print_them(n, zh, en):
    assert zh_big(n) == zh
    assert en_big(n) == en


def test_largest_first_drops_zeros_and_breaks_ties_by_code():
    assert largest_first({"220581": 1, "220100": 403, "220200": 967, "220300": 1, "x": 0}) == [
        ("220200", 967),
        ("220100", 403),
        ("220300", 1),
        ("220581", 1),
    ]


def test_changes_name_each_city_and_figure():
    before = {
        "sections": {
            "cases": {
                "confirmed": 4,
                "confirmed_by_city": [
                    {"code": "220100", "name_zh": "长春市", "name_en": "Changchun", "count": 4}
                ],
            },
            "rounds": {"rounds": [{"code": "R1", "name": "一轮", "required": 9, "coverage": 0.5}]},
        }
    }
    after = {
        "sections": {
            "cases": {
                "confirmed": 5,
                "confirmed_by_city": [
                    {"code": "220100", "name_zh": "长春市", "name_en": "Changchun", "count": 4},
                    {"code": "220200", "name_zh": "吉林市", "name_en": "Jilin City", "count": 1},
                ],
            },
            "rounds": {"rounds": [{"code": "R1", "name": "一轮", "required": 9, "coverage": 0.6}]},
            "appeals": {"counts": {"received": 3}},
        }
    }
    assert flatten(before) == {
        "cases.confirmed": 4,
        "cases.confirmed_by_city.220100": 4,
        "rounds.rounds.R1.required": 9,
        "rounds.rounds.R1.coverage": 0.5,
    }
    assert changes(before, after) == [
        ("appeals.counts.received", None, 3),
        ("cases.confirmed", 4, 5),
        ("cases.confirmed_by_city.220200", None, 1),
        ("rounds.rounds.R1.coverage", 0.5, 0.6),
    ]
    assert changes(after, after) == []
