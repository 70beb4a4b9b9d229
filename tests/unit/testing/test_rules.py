"""Tube and result rules: barcodes, forward-only states, Ct values, the order of a result's
times, and the green/yellow/red rating of a lab."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.testing import rules
from bastion.testing.rules import ResultCheck

SAMPLED = datetime(2022, 3, 25, 1, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return SAMPLED + timedelta(hours=hours)


# Barcodes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "valid"),
    [
        ("TB30000001", True),
        ("12345678", True),  # 8 characters: the shortest
        ("A" * 24, True),  # 24: the longest
        ("TB-3000-01", True),
        ("1234567", False),  # 7
        ("A" * 25, False),  # 25
        ("-TB300001", False),  # starts with a dash
        ("TB300001-", False),  # ends with a dash
        ("tb30000001", False),  # lower case is normalised first, never matched as is
        ("TB3000 001", False),
        ("TB30000_01", False),
        ("混管30000001", False),
        ("", False),
    ],
)
def test_a_barcode_is_8_to_24_capitals_digits_or_inner_dashes(raw, valid):
    assert rules.is_valid_barcode(raw) is valid


@pytest.mark.parametrize(
    ("raw", "normal"),
    [(" tb30000001 ", "TB30000001"), ("Tb-3000-01\n", "TB-3000-01"), ("TB1", "TB1")],
)
def test_a_barcode_is_trimmed_and_upper_cased(raw, normal):
    assert rules.normalise_barcode(raw) == normal


# States --------------------------------------------------------------------------------------

ALLOWED_MOVES = {
    ("open", "sealed"),
    ("open", "boxed"),
    ("sealed", "boxed"),
    ("boxed", "in_transit"),
    ("boxed", "received"),
    ("in_transit", "received"),
    ("received", "resulted"),
}


@pytest.mark.parametrize("state", rules.TUBE_STATES)
@pytest.mark.parametrize("to", rules.TUBE_STATES)
def test_a_tube_moves_only_along_its_allowed_steps(state, to):
    assert rules.can_move(state, to) is ((state, to) in ALLOWED_MOVES)


@pytest.mark.parametrize(
    ("state", "to"),
    [("resulted", "received"), ("received", "boxed"), ("lost", "received"), ("open", "lost")],
)
def test_states_never_move_back_and_unknown_states_go_nowhere(state, to):
    assert not rules.can_move(state, to)


def test_a_resulted_tube_is_final():
    assert not any(rules.can_move("resulted", to) for to in rules.TUBE_STATES)


# Ct values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (None, True),
        (0.01, True),
        (28.5, True),
        (45.0, True),
        (0.0, False),
        (-1.0, False),
        (45.01, False),
        (60.0, False),
    ],
)
def test_a_ct_value_lies_in_0_to_45_or_is_absent(value, ok):
    assert rules.ct_value_ok(value) is ok


# Result times --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sampled", "received", "tested", "uploaded", "check"),
    [
        (at(0), at(2), at(4), at(5), ResultCheck(True)),
        (None, at(2), at(4), at(5), ResultCheck(True)),  # sampling time unknown
        (at(0), at(0), at(0), at(0), ResultCheck(True)),  # all at once is in order
        (at(0), at(2), at(2), at(2), ResultCheck(True)),
        (at(0), None, at(4), at(5), ResultCheck(False, "received_at", "result.not_received")),
        (None, None, at(4), at(5), ResultCheck(False, "received_at", "result.not_received")),
        (
            at(3),
            at(2),
            at(4),
            at(5),
            ResultCheck(False, "received_at", "result.received_before_sampling"),
        ),
        (
            at(0),
            at(2),
            at(1.5),
            at(5),
            ResultCheck(False, "tested_at", "result.tested_before_receipt"),
        ),
        (
            None,
            at(2),
            at(1),
            at(5),
            ResultCheck(False, "tested_at", "result.tested_before_receipt"),
        ),
        (at(0), at(2), at(6), at(5), ResultCheck(False, "tested_at", "result.in_the_future")),
        # The first broken step is the one named.
        (
            at(3),
            at(2),
            at(1),
            at(0),
            ResultCheck(False, "received_at", "result.received_before_sampling"),
        ),
    ],
)
def test_a_results_times_run_sample_receipt_test_upload(sampled, received, tested, uploaded, check):
    got = rules.check_result_times(
        sampled_at=sampled, received_at=received, tested_at=tested, uploaded_at=uploaded
    )
    assert got == check


@given(st.lists(st.integers(0, 10_000), min_size=4, max_size=4))
def test_times_in_order_always_pass_and_out_of_order_never_do(minutes):
    sampled, received, tested, uploaded = (SAMPLED + timedelta(minutes=m) for m in minutes)
    in_order = sampled <= received <= tested <= uploaded
    got = rules.check_result_times(
        sampled_at=sampled, received_at=received, tested_at=tested, uploaded_at=uploaded
    )
    assert got.ok is in_order
    assert (got.field == "") is in_order


# Lab ratings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reversal", "overload", "late", "rating"),
    [
        (0.0, 0.0, 0.0, "green"),
        (0.10, 1.0, 0.05, "green"),  # every threshold reached, none passed
        (0.1001, 0.5, 0.0, "yellow"),
        (0.0, 1.01, 0.0, "yellow"),
        (0.0, 0.5, 0.051, "yellow"),
        (0.30, 1.2, 0.20, "yellow"),  # the red thresholds reached, not passed
        (0.3001, 0.5, 0.0, "red"),
        (0.0, 1.21, 0.0, "red"),
        (0.0, 0.5, 0.2001, "red"),
        (0.5, 0.0, 0.0, "red"),
        (0.2, 1.5, 0.01, "red"),  # the worst figure decides
        (0.05, 0.9, 0.10, "yellow"),
    ],
)
def test_a_lab_is_rated_by_its_worst_figure(reversal, overload, late, rating):
    assert rules.lab_rating(reversal_rate=reversal, overload=overload, late_share=late) == rating


@given(st.floats(0, 1), st.floats(0, 3), st.floats(0, 1), st.floats(0, 1), st.floats(0, 3))
def test_a_worse_figure_never_improves_the_rating(reversal, overload, late, more, more_load):
    order = {"green": 0, "yellow": 1, "red": 2}
    base = rules.lab_rating(reversal_rate=reversal, overload=overload, late_share=late)
    worse = rules.lab_rating(
        reversal_rate=min(1.0, reversal + more), overload=overload + more_load, late_share=late
    )
    assert order[worse] >= order[base]


@pytest.mark.parametrize(
    ("reversal", "late", "pools", "tubes", "rating"),
    [
        (1.0, 0.0, 1, 500, "green"),  # one reversed pool of one: too few to judge
        (1.0, 0.0, 2, 500, "red"),  # two decided pools: the rate counts
        (0.2, 0.0, 2, 500, "yellow"),
        (0.0, 1.0, 10, 4, "green"),  # four tubes: lateness not judged
        (0.0, 1.0, 10, 5, "red"),
        (0.0, 0.1, 10, 5, "yellow"),
    ],
)
def test_a_rate_resting_on_too_few_pools_or_tubes_plays_no_part(
    reversal, late, pools, tubes, rating
):
    assert (
        rules.lab_rating(
            reversal_rate=reversal,
            overload=0.5,
            late_share=late,
            pools_decided=pools,
            tubes_received=tubes,
        )
        == rating
    )


def test_overload_is_judged_whatever_the_counts():
    assert (
        rules.lab_rating(
            reversal_rate=0.0, overload=1.5, late_share=0.0, pools_decided=0, tubes_received=0
        )
        == "red"
    )
