"""Pure counting rules of the bulletin: which day a case is counted on, and as what.

The official convention (其中N例为无症状感染者转为确诊病例): a case is counted as new on the
day it is first reported, as confirmed or as asymptomatic. An asymptomatic infection later
reclassified as confirmed is counted again on the day of its reclassification, among that day's
new *confirmed* cases, and called out there ("of which N reclassified"); it is never counted
again as a new asymptomatic infection. One reclassified on the very day it was first reported
was never reported as asymptomatic: it is a plain new confirmed case of that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Counted(StrEnum):
    confirmed = "confirmed"
    asymptomatic = "asymptomatic"


@dataclass(frozen=True)
class CountEvent:
    """A case counted on ``day`` as ``kind``; ``reclassified`` for a confirmed case that had
    been counted as asymptomatic on an earlier day."""

    day: date
    kind: Counted
    reclassified: bool = False


def count_events(
    *, classification: str, reported_on: date, reclassified_on: date | None
) -> list[CountEvent]:
    """The days a case is counted, and as what, by the official convention (module docstring).
    ``classification`` is the case's current one; a reclassification date before the report
    date is treated as the report date (the case was confirmed when first counted)."""
    if classification == Counted.confirmed and reclassified_on is not None:
        if reclassified_on > reported_on:
            return [
                CountEvent(reported_on, Counted.asymptomatic),
                CountEvent(reclassified_on, Counted.confirmed, reclassified=True),
            ]
        return [CountEvent(reported_on, Counted.confirmed)]
    if classification == Counted.confirmed:
        return [CountEvent(reported_on, Counted.confirmed)]
    return [CountEvent(reported_on, Counted.asymptomatic)]


def zh_big(n: int) -> str:
    """A large count the way the releases print it: 8,660,000 → 866万, 131,000,000 → 1.31亿."""
    if n >= 100_000_000:
        return _trim(n / 100_000_000) + "亿"
    if n >= 100_000:
        return _trim(n / 10_000) + "万"
    return str(n)


def en_big(n: int) -> str:
    """8,660,000 → 8.66 million; below a million, digits with commas."""
    if n >= 1_000_000_000:
        return _trim(n / 1_000_000_000) + " billion"
    if n >= 1_000_000:
        return _trim(n / 1_000_000) + " million"
    return f"{n:,}"


def _trim(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def largest_first(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Cities with a count, largest first; ties in code order (a stable, reproducible text)."""
    return sorted(((c, n) for c, n in counts.items() if n), key=lambda kv: (-kv[1], kv[0]))
