"""Where the round is sampled and tested: the communities with residents in the region, their
sampling sites (each serving a run of grids) and one lab per city."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.regions import service as region_service
from bastion.regions.models import Region
from bastion.registry.models import Person
from bastion.simulate.round.params import (
    ARRIVALS_BY_HOUR,
    ATTENDANCE,
    RESIDENTS_PER_SITE,
    TEAM_PER_HOUR,
)
from bastion.testing import pooling


@dataclass
class SitePlan:
    number: int
    code: str
    name: str
    community: str
    grids: tuple[str, ...]
    residents: int
    teams: int
    capacity_per_hour: int
    lab_code: str
    #: The pool size planned for the site's zone (set once the round exists).
    size: pooling.PoolSize = 10


@dataclass
class CommunityPlan:
    code: str
    name: str
    city: str
    residents: int
    sites: list[SitePlan] = field(default_factory=list)


@dataclass
class Layout:
    communities: list[CommunityPlan]
    #: City code → (name, residents in the round's region).
    cities: dict[str, tuple[str, int]]
    site_of_grid: dict[str, SitePlan]

    @property
    def residents(self) -> int:
        return sum(c.residents for c in self.communities)

    @property
    def sites(self) -> list[SitePlan]:
        return [s for c in self.communities for s in c.sites]


def split_grids(grids: Sequence[tuple[str, int]], parts: int) -> list[list[tuple[str, int]]]:
    """``grids`` (code, residents) in order, cut into ``parts`` contiguous runs of about equal
    residents, none empty (``parts`` is capped at the number of grids)."""
    parts = max(1, min(parts, len(grids)))
    total = sum(n for _, n in grids)
    runs: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    acc = 0
    for i, (grid, n) in enumerate(grids):
        current.append((grid, n))
        acc += n
        left_runs = parts - len(runs) - 1
        left_grids = len(grids) - i - 1
        if left_runs > 0 and (acc * parts >= total * (len(runs) + 1) or left_grids == left_runs):
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def teams_for(residents: int) -> int:
    """Teams a site needs for its busiest hour, with a fifth to spare."""
    peak = max(ARRIVALS_BY_HOUR.values()) / sum(ARRIVALS_BY_HOUR.values())
    return max(1, math.ceil(residents * ATTENDANCE[1] * peak * 1.2 / TEAM_PER_HOUR))


def layout_of(db_session: Session, region_code: str) -> Layout:
    """Communities with residents in the region, their sites and cities: one GROUP BY over the
    persons, one read of the regions named."""
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    counts = db_session.execute(
        select(Person.region_code, func.count())
        .where(scope.clause(Person.region_code), func.length(Person.region_code) >= 12)
        .group_by(Person.region_code)
        .order_by(Person.region_code)
    ).all()
    by_community: dict[str, list[tuple[str, int]]] = {}
    for code, n in counts:
        by_community.setdefault(code[:12], []).append((code, int(n)))
    names = region_names(db_session, set(by_community))
    six = {
        r.code: r
        for r in db_session.execute(
            select(Region).where(Region.code.in_({c[:6] for c in by_community}))
        ).scalars()
    }
    city_of_six = {
        code: (code if r.level == "city" or r.parent_code is None else r.parent_code)
        for code, r in six.items()
    }
    city_names = region_names(db_session, set(city_of_six.values()))
    communities: list[CommunityPlan] = []
    cities: dict[str, tuple[str, int]] = {}
    site_of_grid: dict[str, SitePlan] = {}
    number = 0
    for code in sorted(by_community):
        grids = by_community[code]
        residents = sum(n for _, n in grids)
        city = city_of_six.get(code[:6], code[:6])
        name = names.get(code, code)
        community = CommunityPlan(code, name, city, residents)
        runs = split_grids(grids, round(residents / RESIDENTS_PER_SITE))
        for i, run in enumerate(runs, start=1):
            number += 1
            served = sum(n for _, n in run)
            teams = teams_for(served)
            site = SitePlan(
                number=number,
                code=f"SIM-{code}-{i}",
                name=f"{name}第{i}采样点" if len(runs) > 1 else f"{name}采样点",
                community=code,
                grids=tuple(g for g, _ in run),
                residents=served,
                teams=teams,
                capacity_per_hour=teams * TEAM_PER_HOUR,
                lab_code=f"SIMLAB-{city}-1",
            )
            community.sites.append(site)
            for grid in site.grids:
                site_of_grid[grid] = site
        communities.append(community)
        city_name, city_residents = cities.get(city, (city_names.get(city, city), 0))
        cities[city] = (city_name, city_residents + residents)
    return Layout(communities, cities, site_of_grid)


def region_names(db_session: Session, region_codes: set[str]) -> dict[str, str]:
    if not region_codes:
        return {}
    return dict(
        db_session.execute(
            select(Region.code, Region.name_zh).where(Region.code.in_(region_codes))
        ).all()
    )
