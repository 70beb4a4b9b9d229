"""When people come: the open hours inside the round, weighted by the daily arrival curve."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from bastion.core import clock
from bastion.core.errors import InvalidInput
from bastion.simulate.round.params import ARRIVALS_BY_HOUR


@dataclass(frozen=True)
class Window:
    """The hours sites are open inside the round, weighted by how many people come then."""

    starts: tuple[float, ...]
    ends: tuple[float, ...]
    cumulative: tuple[float, ...]

    def arrival(self, u_slot: float, u_at: float) -> float:
        """An arrival time (epoch seconds) from two uniform draws."""
        i = min(
            bisect.bisect_right(self.cumulative, u_slot * self.cumulative[-1]), len(self.starts) - 1
        )
        return self.starts[i] + u_at * (self.ends[i] - self.starts[i])


def arrival_window(starts_at: datetime, deadline_at: datetime) -> Window:
    """The open hours (local 07:00–22:00) between ``starts_at`` and ``deadline_at``."""
    tz = clock.local_tz()
    day: date = clock.to_local(starts_at).date()
    last = clock.to_local(deadline_at).date()
    starts: list[float] = []
    ends: list[float] = []
    cumulative: list[float] = []
    acc = 0.0
    while day <= last:
        for hour, weight in sorted(ARRIVALS_BY_HOUR.items()):
            begin = datetime.combine(day, time(hour), tzinfo=tz)
            lo, hi = max(begin, starts_at), min(begin + timedelta(hours=1), deadline_at)
            if hi <= lo:
                continue
            acc += weight * (hi - lo).total_seconds() / 3600
            starts.append(lo.timestamp())
            ends.append(hi.timestamp())
            cumulative.append(acc)
        day += timedelta(days=1)
    if not starts:
        raise InvalidInput.one("start", "simulate.no_open_hours")
    return Window(tuple(starts), tuple(ends), tuple(cumulative))


def utc_moment(seconds: float) -> datetime:
    """Epoch seconds as an aware UTC time, to the whole second (as scanners record it)."""
    return datetime.fromtimestamp(round(seconds), UTC)
