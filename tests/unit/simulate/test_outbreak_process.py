"""The outbreak process (pure): determinism for a seed, fan-out by setting, the clinical mix,
reclassification counted once, and an epidemic curve that turns down once contacts are isolated."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.simulate import outbreak_process as op
from bastion.simulate.outbreak_world import CLASS_SIZE, WORKPLACE_SIZE, Resident, World

HOUSEHOLD_SIZES = (1, 1, 2, 2, 2, 3, 3, 4, 5)


def population(
    communities: int = 12, people: int = 2_500, seed: int = 0
) -> dict[str, list[Resident]]:
    """Synthetic communities of two districts: households of census-like sizes, ages 0–90."""
    rng = random.Random(seed)
    out: dict[str, list[Resident]] = {}
    person = household = 1
    for c in range(communities):
        code = f"2201{2 + c % 2:02d}001{c + 1:03d}"
        residents: list[Resident] = []
        while len(residents) < people:
            for _ in range(rng.choice(HOUSEHOLD_SIZES)):
                grid = f"{code}{1 + len(residents) // 500:03d}"
                residents.append(Resident(person, household, rng.randint(0, 90), grid))
                person += 1
            household += 1
        out[code] = residents
    return out


POPULATION = population()


def world(pop: dict[str, list[Resident]] = POPULATION) -> World:
    return World({c: len(r) for c, r in pop.items()}, lambda code: pop.get(code, []))


def known(seed: int, n: int = 10) -> list[tuple[int, str]]:
    first = next(iter(POPULATION.values()))
    return [(r.person_id, r.grid) for r in random.Random(seed).sample(first, n)]


def simulate(seed: int, days: int = 14, **kw: object) -> tuple[op.Outbreak, list[op.DayEvents]]:
    outbreak = op.Outbreak(world(), seed)
    outbreak.seed_known(known(seed))
    outbreak.seed_hidden(10)
    return outbreak, [outbreak.step() for _ in range(days)]


def signature(events: Sequence[op.DayEvents]) -> list[object]:
    return [
        (e.day, e.infections, e.cases, e.exposures, e.secondary, e.reclassified, e.closed)
        for e in events
    ]


# Determinism ----------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_outbreak():
    _, first = simulate(4)
    _, second = simulate(4)
    assert signature(first) == signature(second)
    _, other = simulate(5)
    assert signature(other) != signature(first)


def test_the_order_communities_are_loaded_in_changes_nothing():
    pop = POPULATION
    reversed_pop = {c: list(reversed(r)) for c, r in reversed(list(pop.items()))}
    a = op.Outbreak(world(pop), 3)
    b = op.Outbreak(world(reversed_pop), 3)
    # Touch the communities in another order first.
    for code in reversed(list(pop)):
        b.world.community(code)
    for outbreak in (a, b):
        outbreak.seed_known(known(3))
        outbreak.seed_hidden(10)
    assert signature([a.step() for _ in range(8)]) == signature([b.step() for _ in range(8)])


def test_replaying_the_first_days_gives_the_state_a_later_run_continues_from():
    _, whole = simulate(9, days=10)
    replay = op.Outbreak(world(), 9)
    replay.seed_known(known(9))
    replay.seed_hidden(10)
    for _ in range(6):
        replay.step()
    assert signature([replay.step() for _ in range(4)]) == signature(whole[6:])


# Fan-out by setting ----------------------------------------------------------------------------


def test_an_investigation_names_the_whole_household_and_a_handful_elsewhere():
    outbreak, events = simulate(2, days=10)
    w = outbreak.world
    checked = 0
    for day in events:
        cases_before = {
            p for p, inf in outbreak.infections.items() if inf.found_on and inf.found_on < day.day
        }
        today = {c.person_id for c in day.cases}
        by_case: dict[int, Counter[str]] = {}
        named: dict[int, set[int]] = {}
        for exposure in day.exposures:
            by_case.setdefault(exposure.case_person, Counter())[exposure.setting] += 1
            named.setdefault(exposure.case_person, set()).add(exposure.person_id)
            assert exposure.on == day.day
        for case in day.cases:
            household = set(w.household(case.person_id)) - {case.person_id}
            expected = household - cases_before - today
            assert expected <= named.get(case.person_id, set())
            counts = by_case.get(case.person_id, Counter())
            setting, _group = w.group(case.person_id)
            infected = outbreak.infections[case.person_id].infected
            if setting:
                _low, high = op.WORKPLACE_NAMED if setting == "workplace" else op.SCHOOL_NAMED
                assert counts[setting] <= high + len(infected.get(setting, []))
            assert counts["sampling_queue"] <= op.QUEUE_NAMED[1] + len(
                infected.get("sampling_queue", [])
            )
            assert counts["transport"] <= op.TRANSPORT_NAMED[1] + len(infected.get("transport", []))
            checked += 1
    assert checked > 50


def test_secondary_contacts_are_household_members_of_close_contacts_named_outside_home():
    outbreak, events = simulate(6, days=8)
    seen = 0
    for day in events:
        close = {(e.person_id): e for e in day.exposures}
        for s in day.secondary:
            assert s.close_person in close
            assert close[s.close_person].setting != "household"
            assert s.person_id in outbreak.world.household(s.close_person)
            assert s.person_id not in close
            seen += 1
    assert seen > 0


def test_every_setting_carries_infections():
    _, events = simulate(1, days=10)
    settings_seen: Counter[str] = Counter()
    for day in events:
        settings_seen.update(day.infections_by_setting)
    assert set(settings_seen) == set(op.SETTINGS)


# Courses ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("u", "kind"),
    [(0.0, "mild"), (0.977, "mild"), (0.979, "ordinary"), (0.9975, "severe"), (0.9999, "critical")],
)
def test_the_clinical_type_follows_the_march_2022_mix(u, kind):
    class Fixed(random.Random):
        def random(self) -> float:
            return u

    assert op.clinical_type(Fixed()) == kind


def test_almost_every_confirmed_case_is_mild():
    kinds = Counter(op.clinical_type(random.Random(i)) for i in range(20_000))
    assert kinds["mild"] / 20_000 == pytest.approx(0.978, abs=0.006)
    assert set(kinds) <= {"mild", "ordinary", "severe", "critical"}


@given(st.integers(min_value=0, max_value=10_000), st.floats(min_value=0, max_value=5))
@settings(max_examples=50)
def test_poisson_draws_are_never_negative(seed, mean):
    assert op.poisson(random.Random(seed), mean) >= 0


def test_poisson_draws_have_the_mean_asked_for():
    rng = random.Random(1)
    draws = [op.poisson(rng, 0.5) for _ in range(20_000)]
    assert sum(draws) / len(draws) == pytest.approx(0.5, abs=0.03)


def test_cases_are_reported_once_reclassified_once_and_closed_after_their_report():
    outbreak, events = simulate(3, days=30)
    reported = Counter(c.person_id for e in events for c in e.cases)
    assert reported
    assert max(reported.values()) == 1
    first_class = {c.person_id: c.classification for e in events for c in e.cases}
    mild = total = 0
    for e in events:
        for c in e.cases:
            if c.classification == "confirmed":
                assert c.clinical_type in {"mild", "ordinary", "severe", "critical"}
                assert c.onset_on is not None
                assert c.onset_on <= e.day
                total += 1
                mild += c.clinical_type == "mild"
            else:
                assert c.clinical_type is None
    reclassified = Counter(p for e in events for p, _ in e.reclassified)
    assert reclassified
    assert max(reclassified.values()) == 1
    assert all(first_class[p] == "asymptomatic" for p in reclassified)
    closed = {p: (e.day, how) for e in events for p, how in e.closed}
    assert closed
    for person, (day, how) in closed.items():
        inf = outbreak.infections[person]
        assert inf.found_on is not None
        assert day > inf.found_on
        if how == "released":
            assert inf.onset_on is None
    assert mild / total > 0.9


def test_the_known_positives_are_reported_on_the_first_day_by_screening():
    _, events = simulate(7, days=1)
    found = {c.person_id: c for c in events[0].cases}
    for person, _grid in known(7):
        assert found[person].found_by == "community_screening"
        assert found[person].known


def test_fever_clinic_reports_open_the_outbreak_with_confirmed_cases_on_day_one():
    outbreak = op.Outbreak(world(), 11)
    reported = outbreak.seed_reported(5)
    assert len(reported) == 5
    day1 = {c.person_id: c for c in outbreak.step().cases}
    for person in reported:
        case = day1[person]
        assert (case.found_by, case.classification, case.known) == (
            "fever_clinic",
            "confirmed",
            False,
        )
        assert case.clinical_type in {"mild", "ordinary", "severe", "critical"}
        assert case.onset_on is not None
        assert case.onset_on <= 1


# The curve -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_curve_grows_then_declines_once_contacts_are_isolated(seed):
    _, events = simulate(seed, days=18)
    curve = [len(e.cases) for e in events]
    peak = max(range(len(curve)), key=curve.__getitem__)
    assert 2 < peak < 14, curve
    assert curve[peak] > 2 * max(curve[0], 1) or curve[peak] > 30, curve
    assert sum(curve[-3:]) < 3 * curve[peak] * 0.6, curve
    # Infections fall away after control: the last days infect far fewer than the peak days.
    infections = [e.infections for e in events]
    assert sum(infections[-4:]) < max(infections), infections


def test_isolated_contacts_are_mostly_found_in_isolation_late_in_the_outbreak():
    _, events = simulate(2, days=16)
    late = Counter(c.found_by for e in events[8:] for c in e.cases)
    assert late["isolation"] > late["community_screening"], late


# The world ------------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 95)), min_size=1, max_size=80))
@settings(max_examples=40)
def test_every_resident_is_in_one_household_and_at_most_one_group(households):
    residents: list[Resident] = []
    person = 1
    for h, (size, age) in enumerate(households, start=1):
        for k in range(size):
            residents.append(Resident(person, h, (age + 7 * k) % 96, "220102001001001"))
            person += 1
    w = World({"220102001001": len(residents)}, lambda _code: residents)
    ids = w.community("220102001001")
    assert ids == sorted(r.person_id for r in residents)
    for r in residents:
        assert r.person_id in w.household(r.person_id)
        assert all(w.residents[m].household_id == r.household_id for m in w.household(r.person_id))
        setting, others = w.group(r.person_id)
        assert r.person_id not in others
        if 18 <= r.age <= 59:
            assert setting == "workplace"
            assert all(18 <= w.residents[o].age <= 59 for o in others)
            assert len(others) < 2 * WORKPLACE_SIZE
        elif 6 <= r.age <= 17:
            assert setting == "school"
            assert all(w.residents[o].age == r.age for o in others)
            assert len(others) < 2 * CLASS_SIZE
        else:
            assert (setting, others) == ("", ())
