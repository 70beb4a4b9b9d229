"""Pure rules: protocol profile → a placement's planned end and test days, and release readiness.

Days are counted from 1 (a placement's first day is day 1), as the profiles count them. A
contact's main period comes from the profile's :class:`ContactRule`; the home monitoring that
follows a centralised period is a placement of its own (``home_monitoring``), planned from the
day after the main period ends. A case (treatment in a hospital or makeshift hospital) is tested
for discharge from day :data:`CASE_FIRST_TEST_DAY` on, on ``profile.discharge_tests``
consecutive days, and its planned end is the last of those days: the earliest day discharge can
happen if every test is negative (Ct at or above the profile's threshold).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from bastion.protocols.profiles import ContactLevel, Profile

#: The treatment day on which discharge testing starts (8th/9th editions: from day 7 on).
CASE_FIRST_TEST_DAY = 7

#: Where each need's destination places the person.
SETTING_OF_DESTINATION = {
    "hospital": "hospital",
    "makeshift": "makeshift",
    "centralised": "centralised",
    "home": "home",
}

#: Which destinations fit which reason: cases are treated, contacts isolated.
DESTINATIONS_FOR = {
    "case": ("hospital", "makeshift"),
    "close_contact": ("centralised", "home"),
    "secondary_contact": ("centralised", "home"),
}

_LEVEL = {"close_contact": ContactLevel.close, "secondary_contact": ContactLevel.secondary}


@dataclass(frozen=True)
class Plan:
    """A period: its last day and its test days (day numbers, 1-based)."""

    starts_on: date
    planned_end_on: date
    test_days: tuple[int, ...]

    def due_on(self, day_no: int) -> date:
        return day_on(self.starts_on, day_no)


def day_on(starts_on: date, day_no: int) -> date:
    """The calendar date of day ``day_no`` of a period starting on ``starts_on``."""
    return starts_on + timedelta(days=day_no - 1)


def day_no_of(starts_on: date, day: date) -> int:
    """Which day of the period ``day`` is (1 on ``starts_on``)."""
    return (day - starts_on).days + 1


def plan_main(profile: Profile, reason: str, starts_on: date) -> Plan:
    """The main period of a placement made under ``profile`` for ``reason``."""
    if reason == "case":
        first = CASE_FIRST_TEST_DAY
        days = tuple(range(first, first + max(profile.discharge_tests, 1)))
        return Plan(starts_on, day_on(starts_on, days[-1]), days)
    rule = profile.rule(_LEVEL[reason])
    length = max(rule.days, 1)
    tests = tuple(d for d in rule.test_days if 1 <= d <= length)
    return Plan(starts_on, day_on(starts_on, length), tests)


def plan_monitoring(profile: Profile, reason: str, main_end_on: date) -> Plan | None:
    """The home health monitoring after a contact's main period (None when the profile has
    none): from the day after the main period's last day."""
    if reason == "case":
        return None
    rule = profile.rule(_LEVEL[reason])
    if rule.monitoring_days <= 0:
        return None
    starts = main_end_on + timedelta(days=1)
    tests = tuple(d for d in rule.monitoring_test_days if 1 <= d <= rule.monitoring_days)
    return Plan(starts, day_on(starts, rule.monitoring_days), tests)


def is_traced(profile: Profile, reason: str) -> bool:
    """Whether the profile manages this kind of contact at all (cases always)."""
    return reason == "case" or profile.rule(_LEVEL[reason]).traced


@dataclass(frozen=True)
class Missing:
    """Why a release is refused: a test not done (or invalid), a positive test, or the planned
    end not reached. ``day_no``/``due_on`` name the test day; ``planned_end_on`` the end."""

    kind: str  # "test_missing" | "test_positive" | "before_planned_end"
    day_no: int | None = None
    due_on: date | None = None

    @property
    def key(self) -> str:
        return f"placement.release_{self.kind}"


def release_blockers(
    *,
    starts_on: date,
    planned_end_on: date,
    test_days: tuple[int, ...],
    results: Mapping[int, str | None],
    on: date,
) -> list[Missing]:
    """Everything that stands between a placement and its release on ``on``: each required test
    not done or invalid (missing), each positive test, and an early release. Empty: ready.

    Only the test days of the period count; a test day after ``on`` is missing too (it has not
    happened), which an early release must override along with the planned end."""
    blockers: list[Missing] = []
    for day_no in sorted(set(test_days)):
        result = results.get(day_no)
        due = day_on(starts_on, day_no)
        if result == "positive":
            blockers.append(Missing("test_positive", day_no, due))
        elif result != "negative":
            blockers.append(Missing("test_missing", day_no, due))
    if on < planned_end_on:
        blockers.append(Missing("before_planned_end", None, planned_end_on))
    return blockers


def overridable(blockers: list[Missing]) -> bool:
    """An authorised override may release early and without the tests not yet due; it never
    releases over a positive test (that person is a case now)."""
    return not any(b.kind == "test_positive" for b in blockers)
