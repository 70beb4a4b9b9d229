"""One hour's scans into tubes, and the results drawn for them."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from bastion.simulate.round.params import CT_MODE, CT_RANGE, CT_WEAK, FALSE_POSITIVE, INVALID
from bastion.simulate.round.people import Member, Visit
from bastion.testing import pooling
from bastion.testing.enums import TubeKind

Value = tuple[str, float | None, float | None]
"""A result: (negative / positive / invalid, Ct ORF1ab, Ct N)."""


@dataclass
class FilledTube:
    barcode: str
    kind: str
    capacity: int | None
    #: (scan time, member) in scan order.
    scans: list[tuple[float, Member]] = field(default_factory=list)


def fill_tubes(
    visits: Sequence[tuple[float, Visit, list[float]]],
    size: pooling.PoolSize,
    barcodes: Iterator[str],
) -> list[FilledTube]:
    """One hour's scans at a site into tubes, in scan order: ``size`` people a pooled tube
    (one a single tube), or one tube per household (at most 20 people) under "household"."""
    tubes: list[FilledTube] = []
    if size == pooling.HOUSEHOLD:
        for _, visit, times in visits:
            pairs = list(zip(times, visit.members, strict=True))
            for i in range(0, len(pairs), pooling.MAX_POOL):
                part = pairs[i : i + pooling.MAX_POOL]
                tubes.append(FilledTube(next(barcodes), TubeKind.household.value, len(part), part))
        return tubes
    k = pooling.capacity(size)
    kind = TubeKind.single.value if k == 1 else TubeKind.pooled.value
    current: FilledTube | None = None
    for _, visit, times in visits:
        for moment, member in zip(times, visit.members, strict=True):
            if current is None or len(current.scans) >= k:
                current = FilledTube(next(barcodes), kind, k)
                tubes.append(current)
            current.scans.append((moment, member))
    return tubes


def ct_pair(rng: random.Random, *, weak: bool) -> tuple[float, float]:
    """Ct values (ORF1ab, N) of a positive: 18–35, late for a weak (false) signal."""
    low, high = CT_RANGE
    orf = rng.triangular(CT_WEAK if weak else low, high, high - 1 if weak else CT_MODE)
    n = min(high, max(low, orf + rng.gauss(-0.8, 0.8)))
    return round(orf, 2), round(n, 2)


def tube_result(rng: random.Random, infected: bool, *, contamination: bool = True) -> Value:
    """A pooled or single tube's result: invalid now and then; positive when it holds an
    infected person, or (rarely, when the lab handles positive samples at all) falsely."""
    invalid = rng.random() < INVALID
    false_positive = rng.random() < FALSE_POSITIVE and contamination
    if invalid:
        return "invalid", None, None
    if infected or false_positive:
        orf, n = ct_pair(rng, weak=not infected)
        return "positive", orf, n
    return "negative", None, None
