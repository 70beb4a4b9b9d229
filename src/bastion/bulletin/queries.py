"""The figures, computed from the record: a few aggregate statements per day, each reading only
what the day (or the region) selects. Every function here takes the bulletin's place and day
and returns a section model; none writes."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from bastion.bulletin.place import Place
from bastion.bulletin.records import CASES, CONTACTS, PLACEMENTS
from bastion.bulletin.rules import Counted, count_events, largest_first
from bastion.bulletin.schemas import (
    CLINICAL_TYPES,
    CasesFigures,
    CityCount,
    ContactsFigures,
    IsolationFigures,
    RecoveriesFigures,
    RoundProgress,
    RoundsFigures,
    ScreeningFigures,
)
from bastion.core import clock


def _sum_if(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _cities(place: Place, counts: dict[str, int]) -> list[CityCount]:
    rows = []
    for code, count in largest_first(counts):
        zh, en = place.names(code)
        rows.append(CityCount(code=code, name_zh=zh, name_en=en, count=count))
    return rows


# Cases ---------------------------------------------------------------------------------------

_c = CASES
#: The SQL words of rules.count_events: confirmed on ``day`` …
_LATER = and_(_c.c.reclassified_on.is_not(None), _c.c.reclassified_on > _c.c.reported_on)


def _confirmed_on(day: date) -> Any:
    return and_(
        _c.c.classification == "confirmed",
        or_(
            and_(_LATER, _c.c.reclassified_on == day),
            and_(~_LATER, _c.c.reported_on == day),
        ),
    )


def _reclassified_on(day: date) -> Any:
    return and_(_c.c.classification == "confirmed", _LATER, _c.c.reclassified_on == day)


def _asymptomatic_on(day: date) -> Any:
    return and_(
        _c.c.reported_on == day,
        or_(
            _c.c.classification == "asymptomatic", and_(_c.c.classification == "confirmed", _LATER)
        ),
    )


def cases(db_session: Session, place: Place, day: date) -> CasesFigures:
    """New local confirmed (by clinical type and reporting city, of which reclassified) and new
    local asymptomatic infections (by reporting city) of ``day``. Reads the cases reported or
    reclassified that day only."""
    stmt = (
        select(
            _c.c.reporting_city,
            _c.c.clinical_type,
            _sum_if(_confirmed_on(day)),
            _sum_if(_reclassified_on(day)),
            _sum_if(_asymptomatic_on(day)),
        )
        .where(
            or_(_c.c.reported_on == day, _c.c.reclassified_on == day),
            _c.c.origin == "local",
            place.scope.clause(_c.c.reporting_city),
        )
        .group_by(_c.c.reporting_city, _c.c.clinical_type)
    )
    confirmed: dict[str, int] = defaultdict(int)
    asymptomatic: dict[str, int] = defaultdict(int)
    by_type: dict[str, int] = defaultdict(int)
    reclassified = 0
    for city, ctype, conf, recl, asym in db_session.execute(stmt):
        code = place.city_of(city)
        confirmed[code] += int(conf or 0)
        asymptomatic[code] += int(asym or 0)
        reclassified += int(recl or 0)
        if conf:
            by_type[ctype or "unknown"] += int(conf)
    order = [*CLINICAL_TYPES, *sorted(set(by_type) - set(CLINICAL_TYPES))]
    return CasesFigures(
        confirmed=sum(confirmed.values()),
        by_type={t: by_type[t] for t in order if by_type.get(t)},
        confirmed_by_city=_cities(place, confirmed),
        reclassified=reclassified,
        asymptomatic=sum(asymptomatic.values()),
        asymptomatic_by_city=_cities(place, asymptomatic),
    )


def recoveries(db_session: Session, place: Place, day: date) -> RecoveriesFigures:
    """Discharges (confirmed) and releases from medical observation (asymptomatic) of local
    cases on ``day`` by reporting city, and all of them up to the end of ``day``."""
    closed = and_(
        _c.c.status.in_(("discharged", "released")),
        _c.c.origin == "local",
        place.scope.clause(_c.c.reporting_city),
    )
    rows = db_session.execute(
        select(_c.c.reporting_city, _c.c.status, func.count())
        .where(closed, _c.c.closed_on == day)
        .group_by(_c.c.reporting_city, _c.c.status)
    ).all()
    by_city: dict[str, int] = defaultdict(int)
    by_status: dict[str, int] = defaultdict(int)
    for city, status, count in rows:
        by_city[place.city_of(city)] += int(count)
        by_status[status] += int(count)
    cumulative = db_session.execute(
        select(func.count()).select_from(_c).where(closed, _c.c.closed_on <= day)
    ).scalar_one()
    return RecoveriesFigures(
        day=sum(by_status.values()),
        discharged=by_status["discharged"],
        released=by_status["released"],
        by_city=_cities(place, by_city),
        cumulative=int(cumulative or 0),
    )


def curve(db_session: Session, place: Place, day: date, days: int = 30) -> list[dict[str, Any]]:
    """New local confirmed and asymptomatic per day over the ``days`` days ending ``day``, by
    the same rule as the day's figures (for the epidemic-curve chart)."""
    first = day - timedelta(days=days - 1)
    rows = db_session.execute(
        select(_c.c.classification, _c.c.reported_on, _c.c.reclassified_on, func.count())
        .where(
            or_(
                _c.c.reported_on.between(first, day),
                _c.c.reclassified_on.between(first, day),
            ),
            _c.c.origin == "local",
            place.scope.clause(_c.c.reporting_city),
        )
        .group_by(_c.c.classification, _c.c.reported_on, _c.c.reclassified_on)
    ).all()
    per_day = {first + timedelta(days=i): [0, 0] for i in range(days)}
    for classification, reported_on, reclassified_on, count in rows:
        for event in count_events(
            classification=classification,
            reported_on=reported_on,
            reclassified_on=reclassified_on,
        ):
            if event.day in per_day:
                per_day[event.day][0 if event.kind == Counted.confirmed else 1] += int(count)
    return [{"day": d, "confirmed": c, "asymptomatic": a} for d, (c, a) in sorted(per_day.items())]


# Contacts and isolation -------------------------------------------------------------------------


def contacts(db_session: Session, place: Place, day: date) -> ContactsFigures:
    """Close and secondary contacts living in the region, traced up to the end of ``day``, and
    of them released by then. A district or larger sums the daily counters
    (``contact_day_counts``, kept by tracing: a few rows per district and day); a smaller place
    makes one pass over its contacts."""
    if len(place.code) <= DISTRICT_DIGITS:
        return contacts_from_counters(db_session, place, day)
    return contacts_by_scan(db_session, place, day)


def contacts_by_scan(db_session: Session, place: Place, day: date) -> ContactsFigures:
    """The contact figures from one pass over the region's contacts (places below a
    district; the benchmark's comparison)."""
    k = CONTACTS.c
    rows = db_session.execute(
        select(
            k.level,
            func.count(),
            func.count().filter(and_(k.status == "released", k.released_on <= day)),
        )
        .where(k.identified_on <= day, place.scope.clause(k.region_code))
        .group_by(k.level)
    ).all()
    got = {level: (int(n), int(r or 0)) for level, n, r in rows}
    close, secondary = got.get("close", (0, 0)), got.get("secondary", (0, 0))
    return ContactsFigures(
        close=close[0],
        close_released=close[1],
        secondary=secondary[0],
        secondary_released=secondary[1],
    )


DISTRICT_DIGITS = 6


def contacts_from_counters(db_session: Session, place: Place, day: date) -> ContactsFigures:
    from bastion.tracing.models import ContactDayCount as n

    rows = db_session.execute(
        select(n.level, func.sum(n.identified), func.sum(n.released))
        .where(n.day <= day, place.scope.clause(n.district))
        .group_by(n.level)
    ).all()
    got = {level: (int(i or 0), int(r or 0)) for level, i, r in rows}
    close, secondary = got.get("close", (0, 0)), got.get("secondary", (0, 0))
    return ContactsFigures(
        close=close[0],
        close_released=close[1],
        secondary=secondary[0],
        secondary_released=secondary[1],
    )


def isolation(db_session: Session, place: Place, day: date) -> IsolationFigures:
    """People living in the region under isolation control at the end of ``day``: placements
    centralised or at home, started by then and not released by then (home health monitoring,
    hospital and pending placements are not isolation control)."""
    p = PLACEMENTS.c
    rows = db_session.execute(
        select(p.setting, func.count())
        .where(
            p.setting.in_(("centralised", "home")),
            p.status.in_(("active", "released")),
            p.starts_on <= day,
            or_(p.released_on.is_(None), p.released_on > day),
            place.scope.clause(p.region_code),
        )
        .group_by(p.setting)
    ).all()
    got = {setting: int(n) for setting, n in rows}
    centralised, home = got.get("centralised", 0), got.get("home", 0)
    return IsolationFigures(total=centralised + home, centralised=centralised, home=home)


# Testing -----------------------------------------------------------------------------------------


def screening(db_session: Session, place: Place, day: date) -> ScreeningFigures:
    """Person-scans of residents that day and person-times in all (the testing domain's
    hourly counters)."""
    from bastion.testing import coverage

    return ScreeningFigures(
        screened=coverage.screened_on(db_session=db_session, region_code=place.code, day=day),
        cumulative=coverage.screened_cumulative(
            db_session=db_session, region_code=place.code, day=day
        ),
    )


def rounds(db_session: Session, place: Place, day: date) -> RoundsFigures:
    """Rounds running during ``day`` that concern the region, with their progress inside it:
    the figures the coverage view of the region shows, as they stand (``coverage.figures``:
    the counters, less the people excused now because they are under isolation control or
    have an open case; ADR 0009)."""
    from bastion.testing import coverage
    from bastion.testing.models import Round

    start, end = clock.local_day_bounds(day)
    running = db_session.execute(
        select(Round)
        .where(
            Round.starts_at < end,
            or_(Round.closed_at.is_(None), Round.closed_at >= start),
        )
        .order_by(Round.starts_at, Round.id)
    ).scalars()
    concerned = [
        r
        for r in running
        if place.scope.contains(r.region_code) or place.code.startswith(_prefix(r.region_code))
    ]
    out = []
    for r in concerned:
        f = coverage.figures(db_session=db_session, rnd=r, scopes=(place.scope,))
        if not (f.required or f.sampled):
            continue
        out.append(
            RoundProgress(
                code=r.code,
                name=r.name,
                required=f.required,
                sampled=f.sampled,
                sampled_required=f.sampled_required,
                resulted=f.resulted,
                positive_people=f.positive_people,
                coverage=f.coverage,
            )
        )
    return RoundsFigures(rounds=out)


def _prefix(code: str) -> str:
    from bastion.regions.codes import prefix

    return prefix(code)
