"""Pooled sampling rules: pool sizes by zone, never more than 20, what a policy refuses, and
Dorfman's expected tests per person (the figures DOMAIN.md quotes under "Pooling")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.testing import pooling
from bastion.testing.pooling import HOUSEHOLD, MAX_POOL, PoolPolicy, PoolPolicyError

# Sizes by zone -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone_kind", "size"),
    [
        ("lockdown", 1),
        ("high", 1),
        ("control", 5),
        ("medium", 5),
        ("precaution", 10),
        ("low", 10),
        (None, 10),
        ("no-such-kind", 10),
    ],
)
def test_the_default_policy_pools_by_zone(zone_kind, size):
    assert PoolPolicy().size_for(zone_kind) == size


@pytest.mark.parametrize(
    ("zone_kind", "size"),
    [("lockdown", HOUSEHOLD), ("high", HOUSEHOLD), ("control", 10), ("low", 20), (None, 20)],
)
def test_a_configured_policy_pools_by_its_own_sizes(zone_kind, size):
    policy = PoolPolicy(lockdown=HOUSEHOLD, control=10, elsewhere=20)
    assert policy.size_for(zone_kind) == size


@pytest.mark.parametrize(
    ("size", "household", "capacity"),
    [
        (1, None, 1),
        (5, None, 5),
        (10, None, 10),
        (20, None, 20),
        (HOUSEHOLD, 3, 3),
        (HOUSEHOLD, 20, 20),
        (HOUSEHOLD, 27, MAX_POOL),  # a household of 27 still fills no tube past 20
        (HOUSEHOLD, None, MAX_POOL),
        (HOUSEHOLD, 0, MAX_POOL),
    ],
)
def test_a_tube_holds_its_size_and_never_more_than_20(size, household, capacity):
    assert pooling.capacity(size, household) == capacity


@given(st.sampled_from([*pooling.ALLOWED_SIZES, HOUSEHOLD]), st.none() | st.integers(0, 500))
def test_no_allowed_size_holds_more_than_20(size, household):
    assert 1 <= pooling.capacity(size, household) <= MAX_POOL


# Policies from stored or typed values ---------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, {"lockdown": 1, "control": 5, "elsewhere": 10}),
        ({"elsewhere": 20}, {"lockdown": 1, "control": 5, "elsewhere": 20}),
        ({"elsewhere": "20"}, {"lockdown": 1, "control": 5, "elsewhere": 20}),
        ({"lockdown": "household"}, {"lockdown": HOUSEHOLD, "control": 5, "elsewhere": 10}),
        (
            {"lockdown": 1, "control": 10, "elsewhere": 20},
            {"lockdown": 1, "control": 10, "elsewhere": 20},
        ),
    ],
)
def test_a_policy_reads_from_a_dict_and_round_trips(data, expected):
    policy = PoolPolicy.from_dict(data)
    assert policy.to_dict() == expected
    assert PoolPolicy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"elsewhere": 21}, "elsewhere", "pool.bad_size"),
        ({"elsewhere": 30}, "elsewhere", "pool.bad_size"),
        ({"elsewhere": "40"}, "elsewhere", "pool.bad_size"),
        ({"control": 8}, "control", "pool.bad_size"),
        ({"control": 0}, "control", "pool.bad_size"),
        ({"lockdown": -5}, "lockdown", "pool.bad_size"),
        ({"lockdown": True}, "lockdown", "pool.bad_size"),
        ({"lockdown": 5.0}, "lockdown", "pool.bad_size"),
        ({"lockdown": None}, "lockdown", "pool.bad_size"),
        ({"control": "five"}, "control", "pool.bad_size"),
        ({"control": "Household"}, "control", "pool.bad_size"),
        ({"lowrisk": 10}, "lowrisk", "pool.unknown_zone"),
        ({"b": 5, "a": 5}, "a", "pool.unknown_zone"),  # the first unknown key, in order
    ],
)
def test_a_policy_refuses_sizes_it_does_not_know_naming_the_zone(data, field, reason):
    with pytest.raises(PoolPolicyError) as refused:
        PoolPolicy.from_dict(data)
    assert (refused.value.field, refused.value.reason) == (field, reason)


def test_a_refused_size_says_what_is_allowed():
    with pytest.raises(PoolPolicyError) as refused:
        PoolPolicy.from_dict({"elsewhere": 25})
    assert refused.value.params == {"value": 25, "allowed": "1, 5, 10, 20, household"}


@pytest.mark.parametrize("bad", [2, 15, 21, 50, 100])
def test_a_policy_built_directly_refuses_a_size_too(bad):
    with pytest.raises(PoolPolicyError) as refused:
        PoolPolicy(elsewhere=bad)
    assert refused.value.field == "elsewhere"


@given(st.integers(-1000, 1000).filter(lambda n: n not in pooling.ALLOWED_SIZES))
def test_no_size_outside_1_5_10_20_is_ever_accepted(n):
    with pytest.raises(PoolPolicyError):
        PoolPolicy.from_dict({"elsewhere": n})


# Dorfman -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prevalence", "k", "tests"),
    [
        (0.001, 10, 0.110),  # DOMAIN.md: at p = 0.1%, 0.110 for k = 10
        (0.001, 20, 0.070),  # … and 0.070 for k = 20
        (0.01, 10, 0.196),  # at p = 1%, 0.196
        (0.01, 20, 0.232),  # … and 0.232: big pools lose in an outbreak
        (0.0, 5, 0.200),
        (0.0, 20, 0.050),
        (1.0, 10, 1.100),
        (0.3, 1, 1.000),
        (1.0, 1, 1.000),
    ],
)
def test_expected_tests_per_person_match_the_domain_figures(prevalence, k, tests):
    assert pooling.expected_tests_per_person(prevalence, k) == pytest.approx(tests, abs=5e-4)


def test_at_one_percent_ten_to_a_tube_beats_twenty():
    p = 0.01
    ten = pooling.expected_tests_per_person(p, 10)
    twenty = pooling.expected_tests_per_person(p, 20)
    assert ten < twenty


@pytest.mark.parametrize(
    ("prevalence", "k", "reason"),
    [
        (-0.01, 10, "prevalence"),
        (1.01, 10, "prevalence"),
        (2.0, 1, "prevalence"),
        (0.01, 0, "pool size"),
        (0.01, -3, "pool size"),
    ],
)
def test_expected_tests_refuse_a_prevalence_or_size_out_of_range(prevalence, k, reason):
    with pytest.raises(ValueError, match=reason):
        pooling.expected_tests_per_person(prevalence, k)


@pytest.mark.parametrize(
    ("prevalence", "best"),
    [(0.0, 20), (0.001, 20), (0.01, 10), (0.05, 5), (0.5, 1), (1.0, 1)],
)
def test_the_cheapest_pool_size_shrinks_as_prevalence_rises(prevalence, best):
    assert pooling.cheapest_pool_size(prevalence) == best


@given(st.floats(0.0, 1.0), st.integers(2, MAX_POOL))
def test_a_pool_costs_at_least_one_test_per_pool_and_at_most_one_more_per_person(p, k):
    tests = pooling.expected_tests_per_person(p, k)
    assert 1 / k - 1e-12 <= tests <= 1 / k + 1 + 1e-12
