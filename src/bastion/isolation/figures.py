"""Isolation figures for the bulletin and the dashboard: people under isolation control
(centralised / at home) by city, releases for the day and cumulative, site occupancy.

"Under isolation control" follows docs/dev/shared-records.md: ``setting`` centralised or home
(home health monitoring is not isolation). For today it is ``status='active'``; for a past day
it is every placement that had begun by then (active or since released) and was not yet
released that day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.isolation.enums import PlacementStatus
from bastion.isolation.models import IsolationSite, Placement
from bastion.regions import service as region_service
from bastion.regions.models import Region

ISOLATION_SETTINGS = ("centralised", "home")
#: Releases counted: the end of an isolation or treatment period (not of home monitoring).
RELEASE_SETTINGS = ("centralised", "home", "hospital", "makeshift")


def city_resolver(db_session: Session) -> Callable[[str], str]:
    """A function giving the city (6-digit code) a region code belongs to; county-level cities
    run by the province (梅河口 220581) are cities of their own."""
    cities = set(
        db_session.execute(select(Region.code).where(Region.level == "city")).scalars().all()
    )

    def city(code: str) -> str:
        six = code[:6]
        return six if six in cities else six[:4] + "00"

    return city


@dataclass(frozen=True)
class SiteOccupancy:
    code: str
    name: str
    kind: str
    city: str
    beds: int
    occupied: int


@dataclass
class IsolationFigures:
    day: date
    region_code: str
    centralised: int = 0
    home: int = 0
    #: city → (centralised, home)
    by_city: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: reason (case, close_contact, secondary_contact) → released that day / cumulative
    released_day: dict[str, int] = field(default_factory=dict)
    released_total: dict[str, int] = field(default_factory=dict)
    #: city → released that day (all reasons)
    released_day_by_city: dict[str, int] = field(default_factory=dict)
    released_total_by_city: dict[str, int] = field(default_factory=dict)
    sites: list[SiteOccupancy] = field(default_factory=list)

    @property
    def under_isolation(self) -> int:
        return self.centralised + self.home


def figures(*, db_session: Session, day: date, region_code: str) -> IsolationFigures:
    """The isolation figures of ``day`` for the subtree of ``region_code`` (no permission check:
    callers — the bulletin, the API — check theirs)."""
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    city = city_resolver(db_session)
    out = IsolationFigures(day=day, region_code=region_code)
    six = func.substr(Placement.region_code, 1, 6)
    in_scope = scope.clause(Placement.region_code)
    if day >= clock.today():
        held = Placement.status == PlacementStatus.active
    else:
        held = (
            Placement.status.in_((PlacementStatus.active, PlacementStatus.released))
            & (Placement.starts_on <= day)
            & or_(Placement.released_on.is_(None), Placement.released_on > day)
        )
    rows = db_session.execute(
        select(six, Placement.setting, func.count())
        .where(in_scope, held, Placement.setting.in_(ISOLATION_SETTINGS))
        .group_by(six, Placement.setting)
    ).all()
    per_city: dict[str, list[int]] = {}
    for code, setting, n in rows:
        slot = per_city.setdefault(city(code), [0, 0])
        slot[0 if setting == "centralised" else 1] += int(n)
    out.by_city = {c: (v[0], v[1]) for c, v in sorted(per_city.items())}
    out.centralised = sum(v[0] for v in per_city.values())
    out.home = sum(v[1] for v in per_city.values())

    base = (
        select(six, Placement.reason, func.count())
        .where(
            in_scope,
            Placement.status == PlacementStatus.released,
            Placement.setting.in_(RELEASE_SETTINGS),
        )
        .group_by(six, Placement.reason)
    )
    day_reason: Counter[str] = Counter()
    total_reason: Counter[str] = Counter()
    day_city: Counter[str] = Counter()
    total_city: Counter[str] = Counter()
    for code, reason, n in db_session.execute(base.where(Placement.released_on <= day)).all():
        total_reason[reason] += int(n)
        total_city[city(code)] += int(n)
    for code, reason, n in db_session.execute(base.where(Placement.released_on == day)).all():
        day_reason[reason] += int(n)
        day_city[city(code)] += int(n)
    out.released_day, out.released_total = dict(day_reason), dict(total_reason)
    out.released_day_by_city, out.released_total_by_city = dict(day_city), dict(total_city)
    out.sites = site_occupancy(db_session=db_session, region_code=region_code)
    return out


def site_occupancy(*, db_session: Session, region_code: str) -> list[SiteOccupancy]:
    """Every active site in the subtree with its beds and how many are taken."""
    from bastion.isolation.sites import occupancy

    scope = region_service.scope_of(db_session=db_session, code=region_code)
    city = city_resolver(db_session)
    sites = (
        db_session.execute(
            select(IsolationSite)
            .where(scope.clause(IsolationSite.region_code), IsolationSite.active.is_(True))
            .order_by(IsolationSite.code)
        )
        .scalars()
        .all()
    )
    taken = occupancy(db_session, [s.id for s in sites])
    return [
        SiteOccupancy(s.code, s.name, s.kind, city(s.region_code), s.beds, taken[s.id])
        for s in sites
    ]
