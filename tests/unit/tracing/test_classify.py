"""The pure rules of tracing, table by table, and their properties."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.errors import InvalidInput, InvalidTransition
from bastion.protocols.profiles import PROFILES
from bastion.tracing import classify

D = date(2022, 3, 25)


@pytest.mark.parametrize(
    ("classification", "clinical_type", "ok"),
    [
        ("confirmed", "mild", True),
        ("confirmed", "critical", True),
        ("confirmed", None, False),
        ("confirmed", "moderate", False),
        ("asymptomatic", None, True),
        ("asymptomatic", "mild", False),
        ("suspected", None, False),
    ],
)
def test_kind(classification, clinical_type, ok):
    if ok:
        classify.check_kind(classification, clinical_type)
    else:
        with pytest.raises(InvalidInput):
            classify.check_kind(classification, clinical_type)


@pytest.mark.parametrize(
    ("onset", "sampled", "reported", "field"),
    [
        (D - timedelta(days=2), D - timedelta(days=1), D, None),
        (None, None, D, None),
        (D + timedelta(days=1), None, D, "onset_on"),
        (None, D + timedelta(days=1), D, "sampled_on"),
        (None, None, D + timedelta(days=1), "reported_on"),
        (D, None, D - timedelta(days=1), "onset_on"),
    ],
)
def test_case_dates(onset, sampled, reported, field):
    if field is None:
        classify.check_case_dates(onset_on=onset, sampled_on=sampled, reported_on=reported, today=D)
    else:
        with pytest.raises(InvalidInput) as caught:
            classify.check_case_dates(
                onset_on=onset, sampled_on=sampled, reported_on=reported, today=D
            )
        assert caught.value.problems[0].field == field


@pytest.mark.parametrize(
    ("action", "classification", "status", "result"),
    [
        ("discharge", "confirmed", "open", "discharged"),
        ("release", "asymptomatic", "open", "released"),
        ("death", "confirmed", "open", "died"),
        ("death", "asymptomatic", "open", "died"),
        ("discharge", "asymptomatic", "open", InvalidTransition),
        ("release", "confirmed", "open", InvalidTransition),
        ("death", "confirmed", "died", InvalidTransition),
        ("release", "asymptomatic", "released", InvalidTransition),
        ("recover", "confirmed", "open", InvalidInput),
    ],
)
def test_closing(action, classification, status, result):
    call = {
        "action": action,
        "classification": classification,
        "status": status,
        "reported_on": D,
        "day": D,
    }
    if isinstance(result, str):
        assert classify.closing(**call) == result
    else:
        with pytest.raises(result):
            classify.closing(**call)


@pytest.mark.parametrize(
    ("classification", "status", "day", "error"),
    [
        ("asymptomatic", "open", D, None),
        ("confirmed", "open", D, InvalidTransition),
        ("asymptomatic", "released", D, InvalidTransition),
        ("asymptomatic", "open", D - timedelta(days=1), InvalidInput),
    ],
)
def test_reclassification(classification, status, day, error):
    call = {"classification": classification, "status": status, "reported_on": D, "day": day}
    if error is None:
        classify.reclassification(**call)
    else:
        with pytest.raises(error):
            classify.reclassification(**call)


@pytest.mark.parametrize(
    ("profile", "source", "level"),
    [
        ("jilin-2022-03", "case", "close"),
        ("jilin-2022-03", "close", "secondary"),
        ("national-9", "close", "secondary"),
        ("national-2022-11", "case", "close"),
        ("national-2022-11", "close", None),
        ("jilin-2022-03", "secondary", None),
    ],
)
def test_contact_level_by_profile(profile, source, level):
    assert classify.contact_level(source=source, profile=PROFILES[profile]) == level


@pytest.mark.parametrize(
    ("code", "city"),
    [
        ("220102001001001", "220100"),
        ("220202001001001", "220200"),
        ("220581001001001", "220581"),
        ("220523", "220500"),
        ("222401001", "222400"),
    ],
)
def test_reporting_city(code, city):
    cities = frozenset({"220100", "220200", "220500", "220581", "222400"})
    assert classify.reporting_city(code, cities) == city


@pytest.mark.parametrize(
    ("profile", "classification", "clinical_type", "where"),
    [
        ("jilin-2022-03", "asymptomatic", None, "makeshift"),
        ("jilin-2022-03", "confirmed", "mild", "makeshift"),
        ("national-9", "confirmed", "severe", "hospital"),
    ],
)
def test_case_destination(profile, classification, clinical_type, where):
    assert classify.case_destination(PROFILES[profile], classification, clinical_type) == where


days = st.dates(min_value=date(2020, 1, 1), max_value=date(2024, 12, 31))


@given(
    onset=st.none() | days,
    sampled=st.none() | days,
    reported=days,
    profile=st.sampled_from(sorted(PROFILES)),
)
def test_lookback_starts_the_profiles_days_before_the_first_known_anchor(
    onset, sampled, reported, profile
):
    lookback = PROFILES[profile].lookback_days
    start = classify.lookback_start(
        onset_on=onset, sampled_on=sampled, reported_on=reported, lookback_days=lookback
    )
    anchor = onset or sampled or reported
    assert start == anchor - timedelta(days=lookback)
    # An exposure counts exactly when it falls on or after the start.
    assert classify.exposure_counts(source="case", exposed_on=start, since=start)
    assert not classify.exposure_counts(
        source="case", exposed_on=start - timedelta(days=1), since=start
    )


@given(
    source=st.sampled_from(["case", "close", "secondary"]),
    profile=st.sampled_from(sorted(PROFILES)),
)
def test_a_secondary_contact_only_ever_comes_from_a_close_contact(source, profile):
    level = classify.contact_level(source=source, profile=PROFILES[profile])
    if level == "secondary":
        assert source == "close"
        assert PROFILES[profile].secondary.traced
    if source == "case":
        assert level == "close"
