"""Pure rules for pooled sampling (混采): pool sizes by zone, and what pooling costs.

A tube holds 1 (单采), one household, 5, 10 or 20 people, never more than 20; a pooled tube is
never pooled again in the lab. Defaults by zone: lockdown → single (or one tube per household),
control → 5, elsewhere → 10 (20 where configured).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

MAX_POOL: Final = 20
#: Pool sizes a tube may be planned with; "household" means one tube per household (≤ 20).
ALLOWED_SIZES: Final = (1, 5, 10, 20)
HOUSEHOLD: Final = "household"

PoolSize = int | Literal["household"]


class PoolPolicyError(ValueError):
    def __init__(self, field: str, reason: str, **params: object) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.params = params


def check_size(field: str, value: PoolSize) -> PoolSize:
    if value == HOUSEHOLD:
        return value
    if not isinstance(value, int) or isinstance(value, bool) or value not in ALLOWED_SIZES:
        raise PoolPolicyError(
            field, "pool.bad_size", value=value, allowed="1, 5, 10, 20, household"
        )
    return value


@dataclass(frozen=True)
class PoolPolicy:
    """Pool size per zone kind. High/medium/low risk areas follow lockdown/control/elsewhere."""

    lockdown: PoolSize = 1
    control: PoolSize = 5
    elsewhere: PoolSize = 10

    def __post_init__(self) -> None:
        check_size("lockdown", self.lockdown)
        check_size("control", self.control)
        check_size("elsewhere", self.elsewhere)

    def size_for(self, zone_kind: str | None) -> PoolSize:
        """The planned pool size for a person living in a zone of ``zone_kind`` (None: no zone)."""
        if zone_kind in ("lockdown", "high"):
            return self.lockdown
        if zone_kind in ("control", "medium"):
            return self.control
        return self.elsewhere

    def to_dict(self) -> dict[str, PoolSize]:
        return {"lockdown": self.lockdown, "control": self.control, "elsewhere": self.elsewhere}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PoolPolicy:
        unknown = set(data) - {"lockdown", "control", "elsewhere"}
        if unknown:
            raise PoolPolicyError(sorted(unknown)[0], "pool.unknown_zone")
        values: dict[str, PoolSize] = {}
        for key in ("lockdown", "control", "elsewhere"):
            if key in data:
                raw = data[key]
                if isinstance(raw, str) and raw.isdigit():
                    raw = int(raw)
                if isinstance(raw, bool) or not (isinstance(raw, int) or raw == HOUSEHOLD):
                    raise PoolPolicyError(
                        key, "pool.bad_size", value=raw, allowed="1, 5, 10, 20, household"
                    )
                values[key] = check_size(key, HOUSEHOLD if raw == HOUSEHOLD else int(str(raw)))
        return cls(
            lockdown=values.get("lockdown", 1),
            control=values.get("control", 5),
            elsewhere=values.get("elsewhere", 10),
        )


def capacity(size: PoolSize, household_size: int | None = None) -> int:
    """How many people a tube planned with ``size`` may hold."""
    if size == HOUSEHOLD:
        return min(household_size or MAX_POOL, MAX_POOL)
    return size


def expected_tests_per_person(prevalence: float, k: int) -> float:
    """Dorfman two-stage pooling: 1/k tests for the pool, plus k retests when it is positive.

    Per person: 1/k + 1 − (1 − p)^k (for k = 1, exactly one test).
    """
    if not 0.0 <= prevalence <= 1.0:
        raise ValueError("prevalence must lie in [0, 1]")
    if k < 1:
        raise ValueError("pool size must be at least 1")
    if k == 1:
        return 1.0
    return 1.0 / k + 1.0 - (1.0 - prevalence) ** k


def cheapest_pool_size(prevalence: float, sizes: tuple[int, ...] = ALLOWED_SIZES) -> int:
    """The allowed pool size with the fewest expected tests per person at ``prevalence``."""
    return min(sizes, key=lambda k: (expected_tests_per_person(prevalence, k), k))
