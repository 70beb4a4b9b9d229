"""The build: plan the districts, then write what generation yields through the bulk path."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.db import bulk_insert, is_postgres
from bastion.core.errors import Conflict
from bastion.regions import service as region_service
from bastion.regions.enums import RegionLevel
from bastion.regions.models import Region
from bastion.registry.importer import PERSON_COLUMNS
from bastion.registry.models import Building, Household, Person
from bastion.simulate.province.background import batches_from_child
from bastion.simulate.province.generation import Batch, DistrictPlan, StartingPoint, generate
from bastion.simulate.province.params import (
    BACKGROUND_FROM,
    BUILDING_COLUMNS,
    HOUSEHOLD_COLUMNS,
    MAX_CHILDREN,
    PROVINCE,
    REGION_COLUMNS,
    SQLITE_BUILD_CACHE_KIB,
    Progress,
)
from bastion.simulate.province.tree import check_scale, split


@dataclass(frozen=True)
class ProvinceSummary:
    """What a build added."""

    scale: float
    seed: int
    persons: int
    households: int
    buildings: int
    #: Regions added, by level (district, street, community, grid).
    regions: dict[str, int]
    #: Persons by city code.
    persons_by_city: dict[str, int]


def build_province(
    *,
    db_session: Session,
    scale: float,
    seed: int,
    progress: Progress | None = None,
    background: bool | None = None,
) -> ProvinceSummary:
    """Build the demo province at ``scale`` (1.0 = all 24,073,453 people) from ``seed``, in the
    caller's transaction, reporting to ``progress`` as it goes. Loads the base regions first
    if they are missing. ``background`` forces generation into a second process (True) or
    keeps it here (False); by default large builds use one. That process is spawned, not
    forked, so a script calling this must guard its entry point (``if __name__ ==
    "__main__":``), as multiprocessing requires.

    Refuses a scale outside (0, 1] and a database that already holds persons (the demo
    province is built into an empty registry, never mixed into a real one).
    """
    check_scale(scale)
    if db_session.execute(select(Person.id).limit(1)).first() is not None:
        raise Conflict("simulate.population_exists")
    region_service.load_base_regions(db_session=db_session)
    plans = district_plans(db_session=db_session, scale=scale, seed=seed)
    total = sum(p.persons for p in plans)
    start = StartingPoint(
        seed=seed,
        today=clock.today(),
        created_at=_stored_timestamp(db_session, clock.now()),
        next_building=_next_id(db_session, Building),
        next_household=_next_id(db_session, Household),
    )
    if background is None:
        background = total >= BACKGROUND_FROM
    batches = batches_from_child(start, plans) if background else generate(start, plans)
    writer = _Writer(db_session, total=total, progress=progress)
    with _sqlite_build_cache(db_session):
        for batch in batches:
            writer.write(batch)
    writer.finish()
    by_city: dict[str, int] = {}
    for plan in plans:
        by_city[plan.city] = by_city.get(plan.city, 0) + plan.persons
    return ProvinceSummary(
        scale=scale,
        seed=seed,
        persons=writer.persons,
        households=writer.households,
        buildings=writer.buildings,
        regions=dict(writer.regions),
        persons_by_city=by_city,
    )


def district_plans(*, db_session: Session, scale: float, seed: int) -> list[DistrictPlan]:
    """Each city's share of the population (its census figure × ``scale``) split among its
    districts: the listed ones with seeded weights; a county-level city (梅河口) takes its
    streets itself; any other city gets one 市辖区 district coded XXYY01.

    Refuses (Conflict) a district whose 999 street codes are all taken already.
    """
    cities = db_session.execute(
        select(Region.code, Region.population)
        .where(Region.parent_code == PROVINCE, Region.level == RegionLevel.city)
        .order_by(Region.code)
    ).all()
    districts: dict[str, list[tuple[str, str]]] = {}
    for code, parent, name in db_session.execute(
        select(Region.code, Region.parent_code, Region.name_zh)
        .where(Region.level == RegionLevel.district)
        .order_by(Region.code)
    ):
        if parent is not None:
            districts.setdefault(parent, []).append((code, name))
    last_street = dict(
        db_session.execute(
            select(Region.parent_code, func.max(Region.code))
            .where(Region.level == RegionLevel.street)
            .group_by(Region.parent_code)
        ).all()
    )

    def plan(code: str, city: str, persons: int, kind: str, new: Any = None) -> DistrictPlan:
        last = last_street.get(code)
        first = int(last[-3:]) + 1 if last else 1
        if first > MAX_CHILDREN:
            raise Conflict("simulate.codes_exhausted", region=code)
        return DistrictPlan(code, city, persons, kind, first_street=first, new_region=new)

    plans: list[DistrictPlan] = []
    for city, population in cities:
        persons = round((population or 0) * scale)
        listed = districts.get(city, [])
        if listed:
            rng = random.Random(f"bastion/province/{seed}/{city}/weights")
            shares = split(persons, [rng.uniform(0.6, 1.4) for _ in listed])
            for (code, name), share in zip(listed, shares, strict=True):
                kind = "county" if name.endswith(("县", "市", "旗")) else "urban"
                plans.append(plan(code, city, share, kind))
        elif not city.endswith("00"):
            # A county-level city run by the province (梅河口): streets sit directly below it.
            plans.append(plan(city, city, persons, "county"))
        else:
            code = f"{city[:4]}01"
            row = (code, city, RegionLevel.district.value, "市辖区", "City districts", None)
            new = None if db_session.get(Region, code) is not None else row
            plans.append(plan(code, city, persons, "whole_city", new))
    return plans


def _stored_timestamp(session: Session, instant: datetime) -> datetime | str:
    """``instant`` as the persons table stores it. On SQLite that is text, which the bulk path
    would otherwise format twice per person (created_at and updated_at: a third of the
    writer's time); the column type's own bind processor makes it once, so the text is
    exactly what any other write of that column produces. PostgreSQL takes the datetime."""
    if is_postgres(session):
        return instant
    dialect = session.get_bind().dialect
    processor = Person.__table__.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    stored: datetime | str = processor(instant) if processor is not None else instant
    return stored


def _next_id(session: Session, model: type[Building] | type[Household]) -> int:
    current = session.execute(select(func.max(model.id))).scalar_one_or_none()
    return (current or 0) + 1


class _Writer:
    """Writes batches through the bulk path, counting what it wrote."""

    def __init__(self, session: Session, *, total: int, progress: Progress | None) -> None:
        self.session = session
        self.total = total
        self.progress = progress
        self.persons = self.households = self.buildings = 0
        self.regions: dict[str, int] = {}

    def write(self, batch: Batch) -> None:
        session = self.session
        if batch.regions:
            bulk_insert(session, Region, REGION_COLUMNS, batch.regions)
            for row in batch.regions:
                self.regions[row[2]] = self.regions.get(row[2], 0) + 1
        if batch.buildings:
            self.buildings += bulk_insert(session, Building, BUILDING_COLUMNS, batch.buildings)
        if batch.households:
            self.households += bulk_insert(session, Household, HOUSEHOLD_COLUMNS, batch.households)
        if batch.persons:
            self.persons += bulk_insert(session, Person, PERSON_COLUMNS, batch.persons)
        if self.progress is not None:
            self.progress(self.persons, self.total)

    def finish(self) -> None:
        if is_postgres(self.session):
            # Ids were given explicitly, which leaves the serial sequences behind: move them
            # past the new rows so the next ordinary insert does not collide.
            for table in ("households", "buildings"):
                self.session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - our names
                        f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
                    )
                )


@contextmanager
def _sqlite_build_cache(session: Session) -> Iterator[None]:
    """A large SQLite page cache for the duration of the build, then the previous one."""
    if is_postgres(session):
        yield
        return
    # On the driver's connection: the setting is the connection's, and restoring it must work
    # even when a failed build has left the session needing a rollback.
    raw = session.connection().connection.driver_connection
    assert raw is not None
    previous = int(raw.execute("PRAGMA cache_size").fetchone()[0])
    raw.execute(f"PRAGMA cache_size = -{SQLITE_BUILD_CACHE_KIB}")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA cache_size = {previous}")
