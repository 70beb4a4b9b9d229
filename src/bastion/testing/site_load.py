"""A round's load per sampling site and local hour: scans sampled against the site's capacity
per hour, the hours over capacity, and the scans recorded outside the site's opening hours.

A scan is one person bound to a tube (a tube member, retests included: each is a swab someone
took), counted at the site of its tube, in the hour of its ``scanned_at`` in local time
(``BASTION_TIMEZONE``, Asia/Shanghai by default). Outside opening hours means before
``opens_at`` or at or after ``closes_at``, local time of day.

Everything is counted by one statement: the round's tube members grouped by tube and local
minute (a tube's members are scanned within a minute or two, so millions of rows fold into about
one per tube before any join), joined to their tubes and sites, grouped by site and local hour,
then joined to the sites for their names. A city round has millions of members and no index can
spare reading them all; the statement reads them once (docs/testing.md, "Site load", has its
plan and cost on PostgreSQL). On PostgreSQL the local
time honours the zone's rules (``AT TIME ZONE``); SQLite has no zone data, so there the local
time is UTC plus the zone's offset at the round's start (exact for zones without daylight
saving, such as China's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, or_, select, text
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.config import get_settings
from bastion.core.db import is_postgres
from bastion.testing import service as testing_service
from bastion.testing.models import Site, Tube, TubeMember


@dataclass(frozen=True)
class HourLoad:
    """One site's scans in one local hour."""

    hour: datetime
    scans: int
    outside_hours: int
    over_capacity: bool


@dataclass(frozen=True)
class SiteLoad:
    """One site's load over the round."""

    code: str
    name: str
    region_code: str
    capacity_per_hour: int
    opens_at: time
    closes_at: time
    scans: int
    outside_hours: int
    peak_scans: int
    hours_over_capacity: int
    hours: list[HourLoad] = field(default_factory=list)


@dataclass(frozen=True)
class RoundSiteLoad:
    round_code: str
    region_code: str
    sites: list[SiteLoad]


def _minute(db_session: Session, rnd_start: datetime) -> Any:
    """The scan's local minute as an SQL expression, in the dialect's own arithmetic."""
    if is_postgres(db_session):
        local = func.timezone(literal(get_settings().timezone), TubeMember.scanned_at)
        return func.date_trunc("minute", local)
    offset = clock.to_local(rnd_start).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    return func.strftime("%Y-%m-%d %H:%M:00", TubeMember.scanned_at, f"{minutes:+d} minutes")


def _hour_and_time(db_session: Session, minute: Any) -> tuple[Any, Any, Any, Any]:
    """(the local hour, the local time of day, the site's opening and closing times), all
    comparable in the dialect at hand."""
    if is_postgres(db_session):
        return (
            func.date_trunc("hour", minute),
            cast(minute, Site.opens_at.type),
            Site.opens_at,
            Site.closes_at,
        )
    # SQLite: text. Times are kept with microseconds; whole seconds compare.
    return (
        func.substr(minute, 1, 13).concat(":00:00"),
        func.substr(minute, 12, 8),
        func.substr(Site.opens_at, 1, 8),
        func.substr(Site.closes_at, 1, 8),
    )


def _as_local(value: datetime | str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=clock.local_tz())


def site_load(
    *,
    db_session: Session,
    principal: Principal,
    ref: str | int,
    region_code: str | None = None,
) -> RoundSiteLoad:
    """Per site of the caller's subtree (or of ``region_code``'s, which must lie inside it) and
    per local hour: the round's scans against the site's capacity per hour and those recorded
    outside its opening hours. Sites without a scan in the round are not listed. A round the
    caller cannot see is not found."""
    principal.require(Perm.testing_read)
    rnd = testing_service.get_round(db_session=db_session, principal=principal, ref=ref)
    conds: list[Any] = [
        Tube.round_id == rnd.id,
        principal.scope.clause(Site.region_code),
    ]
    if region_code is not None:
        scope = testing_service.region_scope(db_session, principal, region_code)
        conds.append(scope.clause(Site.region_code))
    # First the round's members per tube and local minute (a tube's members are scanned
    # within a minute or two, so this folds millions of rows into about one per tube before
    # any join), then per site and hour.
    minute = _minute(db_session, rnd.starts_at)
    per_minute = (
        select(
            TubeMember.tube_id.label("tube_id"),
            minute.label("minute"),
            func.count().label("n"),
        )
        .where(TubeMember.round_id == rnd.id)
        .group_by(TubeMember.tube_id, minute)
        .subquery()
    )
    hour, time_of_day, opens, closes = _hour_and_time(db_session, per_minute.c.minute)
    outside = or_(time_of_day < opens, time_of_day >= closes)
    counted = (
        select(
            Tube.site_id.label("site_id"),
            hour.label("hour"),
            func.sum(per_minute.c.n).label("scans"),
            func.sum(case((outside, per_minute.c.n), else_=0)).label("outside"),
        )
        .select_from(per_minute)
        .join(Tube, Tube.id == per_minute.c.tube_id)
        .join(Site, Site.id == Tube.site_id)
        .where(and_(*conds))
        .group_by(Tube.site_id, hour)
        .subquery()
    )
    if is_postgres(db_session):
        # Local to this transaction: room for the hash tables of a city round in memory, and
        # no JIT compilation (it cost more than it saved here).
        db_session.execute(
            text("SELECT set_config('work_mem', '128MB', true), set_config('jit', 'off', true)")
        )
    rows = db_session.execute(
        select(
            Site.code,
            Site.name,
            Site.region_code,
            Site.capacity_per_hour,
            Site.opens_at,
            Site.closes_at,
            counted.c.hour,
            counted.c.scans,
            cast(counted.c.outside, Integer).label("outside"),
        )
        .join(counted, counted.c.site_id == Site.id)
        .order_by(Site.code, counted.c.hour)
    ).all()

    sites: list[SiteLoad] = []
    hours: list[HourLoad] = []
    for i, row in enumerate(rows):
        scans = int(row.scans)
        hours.append(
            HourLoad(
                hour=_as_local(row.hour),
                scans=scans,
                outside_hours=int(row.outside or 0),
                over_capacity=scans > row.capacity_per_hour,
            )
        )
        if i + 1 == len(rows) or rows[i + 1].code != row.code:
            sites.append(
                SiteLoad(
                    code=row.code,
                    name=row.name,
                    region_code=row.region_code,
                    capacity_per_hour=row.capacity_per_hour,
                    opens_at=row.opens_at,
                    closes_at=row.closes_at,
                    scans=sum(h.scans for h in hours),
                    outside_hours=sum(h.outside_hours for h in hours),
                    peak_scans=max(h.scans for h in hours),
                    hours_over_capacity=sum(1 for h in hours if h.over_capacity),
                    hours=hours,
                )
            )
            hours = []
    return RoundSiteLoad(round_code=rnd.code, region_code=rnd.region_code, sites=sites)
