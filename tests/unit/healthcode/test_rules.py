"""The health-code rules as data: table-driven cases and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.healthcode.rules import (
    EVIDENCE_TYPE,
    POPUPS,
    RED_EVIDENCE,
    RULE_SETS,
    SEVERITY,
    Evidence,
    Kind,
    decide,
    rule_set_for,
)

JILIN = rule_set_for("jilin-2022-03", date(2022, 3, 20))
NOV = rule_set_for("national-2022-11", date(2022, 12, 1))


@pytest.mark.parametrize(
    ("evidence", "colour", "rule", "etype", "popup"),
    [
        ([], "green", "default", None, None),
        ([Evidence(Kind.case, 7)], "red", "case", "case", "case"),
        ([Evidence(Kind.close_contact, 3)], "red", "close_contact", "contact", None),
        ([Evidence(Kind.placement_close, 3)], "red", "placement_close", "contact", None),
        ([Evidence(Kind.secondary_contact, 4)], "yellow", "secondary_contact", "contact", None),
        ([Evidence(Kind.pool_hold, 9)], "yellow", "pool_hold", "pool_hold", "pool_hold"),
        ([Evidence(Kind.antigen_positive, 2)], "yellow", "antigen_positive", "antigen", "antigen"),
        ([Evidence(Kind.missed_round_test, 1)], "yellow", "missed_round_test", "round", None),
        ([Evidence(Kind.zone_no_test, 5)], "yellow", "zone_no_test", "zone", None),
        ([Evidence(Kind.health_monitoring, 5)], "yellow", "health_monitoring", "placement", None),
        # Strictest wins; a yellow rule's pop-up still shows under red.
        (
            [Evidence(Kind.pool_hold, 9), Evidence(Kind.close_contact, 3)],
            "red",
            "close_contact",
            "contact",
            "pool_hold",
        ),
        # Same colour: the earlier rule in the table.
        (
            [Evidence(Kind.missed_round_test, 1), Evidence(Kind.pool_hold, 9)],
            "yellow",
            "pool_hold",
            "pool_hold",
            "pool_hold",
        ),
        (
            [Evidence(Kind.manual_red, 3, record_type="contact", request_id=12)],
            "red",
            "manual_red#12",
            "contact",
            None,
        ),
    ],
)
def test_rule_table(
    evidence: list[Evidence], colour: str, rule: str, etype: str | None, popup: str | None
) -> None:
    d = decide(evidence, JILIN)
    assert (d.colour, d.rule, d.evidence_type, d.popup) == (colour, f"jl22.1:{rule}", etype, popup)
    assert d.reason_key.startswith("healthcode.reason.")


def test_secondary_contacts_are_not_read_under_the_twenty_measures() -> None:
    assert decide([Evidence(Kind.secondary_contact, 4)], NOV).colour == "green"
    assert NOV.test_window_hours == 72
    assert JILIN.test_window_hours == 24


def test_rule_sets_are_dated_per_profile() -> None:
    for profile, sets in RULE_SETS.items():
        assert all(s.profile == profile for s in sets)
        assert [s.effective_from for s in sets] == sorted(s.effective_from for s in sets)
        assert rule_set_for(profile, date(2030, 1, 1)) == sets[-1]
        assert rule_set_for(profile, date(2000, 1, 1)) == sets[0]
    for s in (JILIN, NOV):
        for r in s.rules:
            assert r.popup is None or r.popup in POPUPS


_kinds = st.sampled_from([k for k in Kind if k not in (Kind.manual_red, Kind.manual_yellow)])


@st.composite
def evidence_item(draw: st.DrawFn) -> Evidence:
    kind = draw(st.sampled_from(list(Kind)))
    record_id = draw(st.integers(min_value=1, max_value=10_000))
    request = draw(st.integers(min_value=1, max_value=100))
    until = draw(
        st.none() | st.datetimes(min_value=datetime(2022, 1, 1), max_value=datetime(2023, 1, 1))
    )
    valid_until = until.replace(tzinfo=UTC) if until else None
    if kind is Kind.manual_red:
        return Evidence(kind, record_id, valid_until, draw(st.sampled_from(RED_EVIDENCE)), request)
    if kind is Kind.manual_yellow:
        return Evidence(kind, record_id, valid_until, "tube", request)
    return Evidence(kind, record_id, valid_until)


evidence_lists = st.lists(evidence_item(), max_size=8)
rule_sets = st.sampled_from([s for sets in RULE_SETS.values() for s in sets])


@given(evidence_lists, rule_sets)
def test_red_always_names_a_case_or_close_contact(items: list[Evidence], rules) -> None:  # type: ignore[no-untyped-def]
    d = decide(items, rules)
    if d.colour == "red":
        assert d.evidence_type in RED_EVIDENCE
        assert d.evidence_id is not None
        kinds = {i.kind for i in items}
        assert kinds & {
            Kind.case,
            Kind.close_contact,
            Kind.placement_case,
            Kind.placement_close,
            Kind.manual_red,
        }


@given(evidence_lists, rule_sets)
def test_non_green_always_names_its_evidence(items: list[Evidence], rules) -> None:  # type: ignore[no-untyped-def]
    d = decide(items, rules)
    if d.colour != "green":
        assert d.evidence_type
        assert d.evidence_id
        assert any(str(i.record_id) == d.evidence_id for i in items)
    else:
        assert d.evidence_type is None
        assert d.popup is None


@given(evidence_lists, rule_sets, st.randoms())
def test_pure_function_of_inputs_in_any_order(items: list[Evidence], rules, rnd) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert decide(items, rules) == decide(shuffled, rules)


@given(evidence_lists, rule_sets)
def test_strictest_colour_wins(items: list[Evidence], rules) -> None:  # type: ignore[no-untyped-def]
    d = decide(items, rules)
    colours = [r.colour for i in items if (r := rules.rule_for(i.kind)) is not None]
    assert SEVERITY[d.colour] == max((SEVERITY[c] for c in colours), default=0)


@given(evidence_lists, evidence_item(), rule_sets)
def test_more_evidence_never_makes_a_colour_milder(  # type: ignore[no-untyped-def]
    items: list[Evidence], extra: Evidence, rules
) -> None:
    assert SEVERITY[decide([*items, extra], rules).colour] >= SEVERITY[decide(items, rules).colour]


def test_every_kind_has_an_evidence_type() -> None:
    assert set(EVIDENCE_TYPE) == set(Kind)
