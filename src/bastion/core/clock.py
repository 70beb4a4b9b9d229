"""The one source of "now". Tests and simulations move time with :func:`frozen`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bastion.core.config import get_settings

_frozen: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware UTC."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def local_tz() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def today() -> date:
    """Today's date in the deployment's local time zone (Asia/Shanghai by default)."""
    return now().astimezone(local_tz()).date()


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants of local midnight starting ``day`` and the next local midnight."""
    start = datetime.combine(day, time.min, tzinfo=local_tz())
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def to_local(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(local_tz())


@contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Freeze "now" at ``at`` (aware) inside the block."""
    global _frozen
    if at.tzinfo is None:
        raise ValueError("frozen() needs an aware datetime")
    previous, _frozen = _frozen, at.astimezone(UTC)
    try:
        yield
    finally:
        _frozen = previous
