"""Pure rules for who lives in a household: ages and sexes that hang together, special groups,
who has a phone on record, and resident ID numbers."""

from __future__ import annotations

import random
from datetime import date

from bastion.registry.idnumber import CHECK_CHARS, WEIGHTS

#: Age bands (low, high exclusive, weight) for the people the household rules draw.
ELDER_BANDS = ((60, 70, 0.55), (70, 80, 0.30), (80, 90, 0.12), (90, 100, 0.03))
SINGLE_ADULT_BANDS = ((18, 25, 0.18), (25, 35, 0.37), (35, 50, 0.25), (50, 60, 0.20))


def _band_age(rng: random.Random, bands: tuple[tuple[int, int, float], ...]) -> int:
    u = rng.random()
    for low, high, weight in bands:
        if u < weight:
            return low + int(rng.random() * (high - low))
        u -= weight
    low, high, _ = bands[-1]
    return low + int(rng.random() * (high - low))


Member = tuple[int, str, bool]
"""(age in years, sex "M"/"F", carries a surname of their own rather than the family's)."""


def _couple(rng: random.Random, husband_age: int) -> list[Member]:
    wife = max(18, husband_age - int(rng.random() * 5))
    return [(husband_age, "M", False), (wife, "F", True)]


def _sex(rng: random.Random) -> str:
    return "M" if rng.random() < 0.51 else "F"


def _children(rng: random.Random, count: int, oldest_max: int) -> list[Member]:
    oldest = int(rng.random() * (oldest_max + 1))
    kids = [(oldest, _sex(rng), False)]
    for _ in range(count - 1):
        gap = 1 + int(rng.random() * 7)
        kids.append((max(0, kids[-1][0] - gap), _sex(rng), False))
    return kids


def _parents_of(rng: random.Random, kids: list[Member]) -> list[Member]:
    father = min(75, kids[0][0] + 23 + int(rng.random() * 12))
    return _couple(rng, father)


def _grandparents_of(rng: random.Random, father_age: int, count: int) -> list[Member]:
    elder = min(99, father_age + 24 + int(rng.random() * 10))
    if count == 2:
        # The husband's parents: the grandfather carries the family surname.
        wife = max(18, elder - int(rng.random() * 5))
        return [(elder, "M", False), (wife, "F", True)]
    return [(elder, "F" if rng.random() < 0.65 else "M", True)]


def compose_household(rng: random.Random, size: int) -> list[Member]:
    """The members of one household of ``size``: coherent ages and sexes (couples of opposite
    sex and similar age, children 23–35 years younger than their father, grandparents older
    again). Tuned so that a province of them matches the census: 0–14 12.1%, 15–59 67.0%,
    60+ 20.9%, with the elderly living alone 29% of single households."""
    u = rng.random()
    if size == 1:
        if u < 0.29:
            return [(_band_age(rng, ELDER_BANDS), "F" if rng.random() < 0.62 else "M", False)]
        return [(_band_age(rng, SINGLE_ADULT_BANDS), "M" if rng.random() < 0.55 else "F", False)]
    if size == 2:
        if u < 0.28:
            return _couple(rng, _band_age(rng, ELDER_BANDS))
        if u < 0.62:
            return _couple(rng, 40 + int(rng.random() * 20))
        if u < 0.85:
            return _couple(rng, 22 + int(rng.random() * 18))
        if u < 0.93:
            kid = _children(rng, 1, 17)
            return [(kid[0][0] + 23 + int(rng.random() * 12), _sex(rng), False), *kid]
        adult = 30 + int(rng.random() * 26)
        return [(adult, _sex(rng), False), *_grandparents_of(rng, adult, 1)]
    if size == 3:
        if u < 0.14:
            elder = _couple(rng, _band_age(rng, ELDER_BANDS))
            return [*elder, (max(18, elder[0][0] - 24 - int(rng.random() * 12)), _sex(rng), False)]
        kids = _children(rng, 1, 32)
        return [*_parents_of(rng, kids), *kids]
    if size == 4:
        if u < 0.55:
            kids = _children(rng, 2, 28)
            return [*_parents_of(rng, kids), *kids]
        kids = _children(rng, 1, 16)
        parents = _parents_of(rng, kids)
        return [*_grandparents_of(rng, parents[0][0], 1), *parents, *kids]
    kids = _children(rng, size - 4, 16)
    parents = _parents_of(rng, kids)
    return [*_grandparents_of(rng, parents[0][0], 2), *parents, *kids]


def _rates(age: int) -> tuple[float, float]:
    """(disabled, bedridden) shares at ``age``: about 6% disabled overall, as in the 2006
    national disability survey, rising steeply with age; bedridden mostly among the old."""
    if age >= 80:
        return 0.20, 0.07
    if age >= 60:
        return 0.12, 0.015
    if age >= 15:
        return 0.045, 0.001
    return 0.012, 0.001


_RATES = [_rates(age) for age in range(130)]


def special_groups(rng: random.Random, age: int, sex: str, *, alone: bool) -> int:
    """Special-group bits for one person (低保 is set per household by the caller)."""
    rand = rng.random
    disabled, bedridden = _RATES[age]
    flags = 1 if alone and age >= 60 else 0  # SpecialGroup.living_alone
    if rand() < disabled:
        flags |= 4  # SpecialGroup.disabled
    if rand() < bedridden:
        flags |= 2  # SpecialGroup.bedridden
    if age >= 20 and rand() < (0.05 if sex == "M" else 0.004):
        flags |= 16  # SpecialGroup.veteran
    return flags


def phone_share(age: int) -> float:
    """How likely a person of ``age`` has a mobile number on record."""
    if age < 12:
        return 0.0
    if age < 18:
        return 0.6
    if age < 70:
        return 0.97
    return 0.85 if age < 80 else 0.6


PHONE_SHARE_BY_AGE = [phone_share(age) for age in range(130)]


class ResidentIds:
    """``idnumber.make_resident_id`` for one district, memoised per birth date: the weighted
    sum of the region and date digits is computed once per date, and only the sequence's
    three digits per number (the bulk build makes millions of them)."""

    def __init__(self, region6: str) -> None:
        self.region6 = region6
        self._dates: dict[int, tuple[date, str, int]] = {}

    def number(self, born_ordinal: int, sequence: int) -> tuple[date, str]:
        """(birth date, ID number) for a birth date given as a proleptic ordinal."""
        found = self._dates.get(born_ordinal)
        if found is None:
            born = date.fromordinal(born_ordinal)
            first14 = f"{self.region6}{born:%Y%m%d}"
            partial = sum(int(d) * w for d, w in zip(first14, WEIGHTS, strict=False))
            found = self._dates[born_ordinal] = (born, first14, partial)
        born, first14, partial = found
        check = CHECK_CHARS[(partial + _SEQUENCE_SUMS[sequence]) % 11]
        return born, f"{first14}{_SEQUENCES[sequence]}{check}"


_SEQUENCES = [f"{n:03d}" for n in range(1000)]
_SEQUENCE_SUMS = [sum(int(d) * w for d, w in zip(s, WEIGHTS[14:], strict=True)) for s in _SEQUENCES]
