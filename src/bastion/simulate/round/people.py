"""Who of a community comes, when, to which site, and who is infected."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.regions import codes
from bastion.registry.models import Person
from bastion.simulate.round.layout import SitePlan
from bastion.simulate.round.params import OFF_GRID
from bastion.simulate.round.window import Window

Member = tuple[int, str, bool]
"""(person id, personal token, infected)."""


@dataclass(frozen=True)
class Visit:
    """The members of one household who come, arriving together at a site."""

    arrival: float
    home: str
    members: tuple[Member, ...]


@dataclass
class CommunityVisits:
    #: Site code → the visits of the households whose grid it serves.
    by_site: dict[str, list[Visit]] = field(default_factory=dict)
    #: Site code → visits of its households who go to the next site instead (off-grid).
    away: dict[str, list[Visit]] = field(default_factory=dict)


def residents_of(db_session: Session, scope: codes.Scope, community: str) -> list[Any]:
    """(id, token, household, home) of the residents of one community in the round, by
    household: one range query over the persons' region index."""
    return list(
        db_session.execute(
            select(Person.id, Person.token, Person.household_id, Person.region_code)
            .where(
                codes.Scope(prefix=community).clause(Person.region_code),
                scope.clause(Person.region_code),
                func.length(Person.region_code) >= 12,
            )
            .order_by(Person.household_id, Person.id)
        ).all()
    )


def _households(people: Sequence[Any]) -> Iterator[list[Any]]:
    current: list[Any] = []
    for row in people:
        if current and (row.household_id is None or row.household_id != current[0].household_id):
            yield current
            current = []
        current.append(row)
    if current:
        yield current


def plan_community(
    rng: random.Random,
    people: Sequence[Any],
    *,
    window: Window,
    attendance: float,
    household_rate: float,
    attack: float,
    site_of_grid: Mapping[str, SitePlan],
    fallback: SitePlan,
) -> CommunityVisits:
    """Who of one community comes, when, to which site, and who is infected. Every household
    takes the same number of draws whatever it decides, so one household's fate never shifts
    another's."""
    plan = CommunityVisits()
    rand = rng.random
    for household in _households(people):
        infected_household = rand() < household_rate
        away = rand() < OFF_GRID
        arrival = window.arrival(rand(), rand())
        members: list[Member] = []
        for person in household:
            comes = rand() < attendance
            infected = infected_household and rand() < attack
            if comes:
                members.append((int(person.id), str(person.token), infected))
        if not members:
            continue
        home = str(household[0].region_code)
        site = site_of_grid.get(home, fallback)
        visit = Visit(arrival, home, tuple(members))
        (plan.away if away else plan.by_site).setdefault(site.code, []).append(visit)
    return plan
