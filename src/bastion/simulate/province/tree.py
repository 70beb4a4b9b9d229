"""Pure rules for a district's shape: the scale, household sizes drawn from the census, and
the streets → communities → grids tree."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from bastion.core.errors import InvalidInput
from bastion.simulate.province.params import (
    COMMUNITIES_PER_STREET,
    COMMUNITY_HOUSEHOLDS,
    GRID_HOUSEHOLDS,
    HOUSEHOLD_SIZES,
    MAX_CHILDREN,
)


def check_scale(scale: float) -> None:
    """Refuse a scale outside (0, 1] (1 is the whole province, 24,073,453 people)."""
    if not (isinstance(scale, int | float) and math.isfinite(scale) and 0 < scale <= 1):
        raise InvalidInput.one("scale", "simulate.bad_scale", value=scale)


def split(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights``, summing exactly (largest remainder)."""
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    parts = [int(x) for x in exact]
    short = total - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[:short]:
        parts[i] += 1
    return parts


def household_sizes(rng: random.Random, persons: int) -> list[int]:
    """Household sizes drawn from the census shares until they hold exactly ``persons``
    (the last household is cut to fit)."""
    cumulative: list[float] = []
    acc = 0.0
    for _, share in HOUSEHOLD_SIZES:
        acc += share
        cumulative.append(acc)
    sizes: list[int] = []
    left = persons
    rand = rng.random
    while left > 0:
        u = rand() * acc
        size = HOUSEHOLD_SIZES[-1][0]
        for i, c in enumerate(cumulative):
            if u < c:
                size = HOUSEHOLD_SIZES[i][0]
                break
        size = min(size, left)
        sizes.append(size)
        left -= size
    return sizes


def plan_tree(
    rng: random.Random, households: int, *, max_streets: int = MAX_CHILDREN
) -> list[list[list[int]]]:
    """Streets → communities → grid household counts for a district of ``households``.

    Communities hold about 1,000–3,000 households, grids about 300, streets 4–12 communities;
    every level has at least one child, even for an empty district. No level has more than 999
    children (three code digits), streets no more than ``max_streets``.
    """
    low, high = COMMUNITY_HOUSEHOLDS
    n_communities = max(1, round(households * 2 / (low + high)))
    weights = [rng.uniform(low, high) for _ in range(n_communities)]
    community_sizes = split(households, weights)
    at_least = math.ceil(n_communities / max_streets)
    streets: list[list[list[int]]] = []
    i = 0
    while i < n_communities:
        take = max(at_least, rng.randint(*COMMUNITIES_PER_STREET))
        streets.append([_grids(h) for h in community_sizes[i : i + take]])
        i += take
    return streets


def _grids(households: int) -> list[int]:
    n = min(MAX_CHILDREN, max(1, round(households / GRID_HOUSEHOLDS)))
    base, extra = divmod(households, n)
    return [base + (1 if j < extra else 0) for j in range(n)]
