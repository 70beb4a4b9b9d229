"""Where the demo cast sits in a built province."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.regions import service as region_service
from bastion.registry.models import Person


@dataclass(frozen=True)
class DemoPlaces:
    """Where the demo cast sits in a built province: a district of Changchun, a grid in it
    that has people, and an adult living in that grid (None where the database has none)."""

    district: str
    grid: str
    person_id: int | None


def demo_places(*, db_session: Session, city: str = "220100") -> DemoPlaces:
    """The first district of ``city`` holding people, its first grid holding people and that
    grid's first adult. Falls back to the city itself when nobody lives there yet."""
    scope = region_service.scope_of(db_session=db_session, code=city)
    grid = db_session.execute(
        select(func.min(Person.region_code)).where(
            scope.clause(Person.region_code), func.length(Person.region_code) == 15
        )
    ).scalar_one_or_none()
    if grid is None:
        return DemoPlaces(district=city, grid=city, person_id=None)
    district = grid[:6]
    today = clock.today()
    adult_born_by = today.replace(year=today.year - 18, day=min(today.day, 28))
    person_id = db_session.execute(
        select(func.min(Person.id)).where(
            Person.region_code == grid, Person.birth_date <= adult_born_by
        )
    ).scalar_one_or_none()
    return DemoPlaces(district=district, grid=grid, person_id=person_id)
