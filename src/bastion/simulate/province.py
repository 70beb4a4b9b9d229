"""The demo province: a realistic, seeded population built from the 2020 census figures.

``build_province`` splits each city's census population (times ``scale``) among its districts,
lays streets, communities and grids below them, fills the grids with buildings and households,
and the households with people whose ages, sexes, names, ID numbers, phones and special-group
flags hang together. The same seed on the same day gives the same people (only the ID-number
ciphertexts differ, since every encryption draws a fresh nonce).

Everything goes in through the one bulk path (``core.db.bulk_insert``), district by district and
a few tens of thousands of persons at a time, so memory stays flat however large the province.
Each district draws from its own RNG seeded by (seed, district code): a district's people do
not depend on how many people the districts before it got.

Generating people costs about as much CPU as writing them, so a large build generates in a
second process while this one writes (:func:`_batches_from_child`); both run the very same
generator, and the rows are the same either way.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import queue
import random
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bastion.core import clock, crypto
from bastion.core.config import get_settings
from bastion.core.db import bulk_insert, is_postgres
from bastion.core.errors import Conflict, InvalidInput
from bastion.regions import service as region_service
from bastion.regions.enums import RegionLevel
from bastion.regions.models import Region
from bastion.registry.enums import IdType, SpecialGroup
from bastion.registry.idnumber import CHECK_CHARS, WEIGHTS, mask_id
from bastion.registry.importer import PERSON_COLUMNS
from bastion.registry.models import Building, Household, Person
from bastion.simulate import names

PROVINCE = "220000"
PROVINCE_POPULATION = 24_073_453

#: Household sizes (share of households), after the 2020 census: the mean is 2.34 people.
HOUSEHOLD_SIZES: tuple[tuple[int, float], ...] = (
    (1, 0.275),
    (2, 0.34),
    (3, 0.235),
    (4, 0.09),
    (5, 0.04),
    (6, 0.02),
)
COMMUNITY_HOUSEHOLDS = (1_000, 3_000)
GRID_HOUSEHOLDS = 300
COMMUNITIES_PER_STREET = (4, 12)
MAX_CHILDREN = 999  # three digits of code per level
LOW_INCOME_HOUSEHOLDS = 0.03  # 低保 is granted per household, so every member carries it
#: Share of towns (镇) with villages (村) among a district's streets, by kind of district.
RURAL_SHARE = {"urban": 0.15, "county": 0.7, "whole_city": 0.5}
KOREAN_SHARE = {"222400": 0.36}  # 延边: about a third of its people are Korean (朝鲜族)
KOREAN_SHARE_ELSEWHERE = 0.01
#: ID sequences per district, birth date and sex: odd 001–997 for men, even 002–998 for women.
SEQUENCES_PER_DATE = 499
#: Persons gathered before one bulk write: big enough that per-statement overhead vanishes,
#: small enough that memory stays flat.
FLUSH_PERSONS = 20_000
#: From this many persons on, generation runs in a second process (starting one costs about a
#: second; below this the build is quick anyway).
BACKGROUND_FROM = 150_000
#: SQLite page cache during a build, in KiB: the unique token and ID-hash indexes take rows in
#: random order, and with the default 2 MiB cache every insert reads pages back from disk.
SQLITE_BUILD_CACHE_KIB = 256 * 1024

REGION_COLUMNS = ["code", "parent_code", "level", "name_zh", "name_en", "population"]
BUILDING_COLUMNS = ["id", "region_code", "name", "address"]
HOUSEHOLD_COLUMNS = ["id", "region_code", "household_no", "building_id", "address"]

Progress = Callable[[int, int], None]
"""Called with (persons written so far, persons planned) after every bulk write."""


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


@dataclass(frozen=True)
class DistrictPlan:
    """One district (or county-level city) to fill, and how."""

    code: str
    city: str
    persons: int
    kind: str  # a key of RURAL_SHARE
    #: The first free street number below it (streets added by hand keep their codes).
    first_street: int = 1
    #: A region row to add first, when the district is not in the table yet (市辖区).
    new_region: tuple[str, str, str, str, str, None] | None = None


# Pure rules -----------------------------------------------------------------------------------


def check_scale(scale: float) -> None:
    """Refuse a scale outside (0, 1] (1 is the whole province, 24,073,453 people)."""
    if not (isinstance(scale, int | float) and math.isfinite(scale) and 0 < scale <= 1):
        raise InvalidInput.one("scale", "simulate.bad_scale", value=scale)


def split(total: int, weights: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``weights``, summing exactly (largest remainder)."""
    whole = sum(weights)
    exact = [total * w / whole for w in weights]
    parts = [int(x) for x in exact]
    short = total - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[:short]:
        parts[i] += 1
    return parts


def household_sizes(rng: random.Random, persons: int) -> list[int]:
    """Household sizes drawn from the census shares until they hold exactly ``persons``
    (the last household is cut to fit)."""
    cumulative: list[float] = []
    acc = 0.0
    for _, share in HOUSEHOLD_SIZES:
        acc += share
        cumulative.append(acc)
    sizes: list[int] = []
    left = persons
    rand = rng.random
    while left > 0:
        u = rand() * acc
        size = HOUSEHOLD_SIZES[-1][0]
        for i, c in enumerate(cumulative):
            if u < c:
                size = HOUSEHOLD_SIZES[i][0]
                break
        size = min(size, left)
        sizes.append(size)
        left -= size
    return sizes


def plan_tree(
    rng: random.Random, households: int, *, max_streets: int = MAX_CHILDREN
) -> list[list[list[int]]]:
    """Streets → communities → grid household counts for a district of ``households``.

    Communities hold about 1,000–3,000 households, grids about 300, streets 4–12 communities;
    every level has at least one child, even for an empty district. No level has more than 999
    children (three code digits), streets no more than ``max_streets``.
    """
    low, high = COMMUNITY_HOUSEHOLDS
    n_communities = max(1, round(households * 2 / (low + high)))
    weights = [rng.uniform(low, high) for _ in range(n_communities)]
    community_sizes = split(households, weights)
    at_least = math.ceil(n_communities / max_streets)
    streets: list[list[list[int]]] = []
    i = 0
    while i < n_communities:
        take = max(at_least, rng.randint(*COMMUNITIES_PER_STREET))
        streets.append([_grids(h) for h in community_sizes[i : i + take]])
        i += take
    return streets


def _grids(households: int) -> list[int]:
    n = min(MAX_CHILDREN, max(1, round(households / GRID_HOUSEHOLDS)))
    base, extra = divmod(households, n)
    return [base + (1 if j < extra else 0) for j in range(n)]


#: Age bands (low, high exclusive, weight) for the people the household rules draw.
ELDER_BANDS = ((60, 70, 0.55), (70, 80, 0.30), (80, 90, 0.12), (90, 100, 0.03))
SINGLE_ADULT_BANDS = ((18, 25, 0.18), (25, 35, 0.37), (35, 50, 0.25), (50, 60, 0.20))


def _band_age(rng: random.Random, bands: tuple[tuple[int, int, float], ...]) -> int:
    u = rng.random()
    for low, high, weight in bands:
        if u < weight:
            return low + int(rng.random() * (high - low))
        u -= weight
    low, high, _ = bands[-1]
    return low + int(rng.random() * (high - low))


Member = tuple[int, str, bool]
"""(age in years, sex "M"/"F", carries a surname of their own rather than the family's)."""


def _couple(rng: random.Random, husband_age: int) -> list[Member]:
    wife = max(18, husband_age - int(rng.random() * 5))
    return [(husband_age, "M", False), (wife, "F", True)]


def _sex(rng: random.Random) -> str:
    return "M" if rng.random() < 0.51 else "F"


def _children(rng: random.Random, count: int, oldest_max: int) -> list[Member]:
    oldest = int(rng.random() * (oldest_max + 1))
    kids = [(oldest, _sex(rng), False)]
    for _ in range(count - 1):
        gap = 1 + int(rng.random() * 7)
        kids.append((max(0, kids[-1][0] - gap), _sex(rng), False))
    return kids


def _parents_of(rng: random.Random, kids: list[Member]) -> list[Member]:
    father = min(75, kids[0][0] + 23 + int(rng.random() * 12))
    return _couple(rng, father)


def _grandparents_of(rng: random.Random, father_age: int, count: int) -> list[Member]:
    elder = min(99, father_age + 24 + int(rng.random() * 10))
    if count == 2:
        # The husband's parents: the grandfather carries the family surname.
        wife = max(18, elder - int(rng.random() * 5))
        return [(elder, "M", False), (wife, "F", True)]
    return [(elder, "F" if rng.random() < 0.65 else "M", True)]


def compose_household(rng: random.Random, size: int) -> list[Member]:
    """The members of one household of ``size``: coherent ages and sexes (couples of opposite
    sex and similar age, children 23–35 years younger than their father, grandparents older
    again). Tuned so that a province of them matches the census: 0–14 12.1%, 15–59 67.0%,
    60+ 20.9%, with the elderly living alone 29% of single households."""
    u = rng.random()
    if size == 1:
        if u < 0.29:
            return [(_band_age(rng, ELDER_BANDS), "F" if rng.random() < 0.62 else "M", False)]
        return [(_band_age(rng, SINGLE_ADULT_BANDS), "M" if rng.random() < 0.55 else "F", False)]
    if size == 2:
        if u < 0.28:
            return _couple(rng, _band_age(rng, ELDER_BANDS))
        if u < 0.62:
            return _couple(rng, 40 + int(rng.random() * 20))
        if u < 0.85:
            return _couple(rng, 22 + int(rng.random() * 18))
        if u < 0.93:
            kid = _children(rng, 1, 17)
            return [(kid[0][0] + 23 + int(rng.random() * 12), _sex(rng), False), *kid]
        adult = 30 + int(rng.random() * 26)
        return [(adult, _sex(rng), False), *_grandparents_of(rng, adult, 1)]
    if size == 3:
        if u < 0.14:
            elder = _couple(rng, _band_age(rng, ELDER_BANDS))
            return [*elder, (max(18, elder[0][0] - 24 - int(rng.random() * 12)), _sex(rng), False)]
        kids = _children(rng, 1, 32)
        return [*_parents_of(rng, kids), *kids]
    if size == 4:
        if u < 0.55:
            kids = _children(rng, 2, 28)
            return [*_parents_of(rng, kids), *kids]
        kids = _children(rng, 1, 16)
        parents = _parents_of(rng, kids)
        return [*_grandparents_of(rng, parents[0][0], 1), *parents, *kids]
    kids = _children(rng, size - 4, 16)
    parents = _parents_of(rng, kids)
    return [*_grandparents_of(rng, parents[0][0], 2), *parents, *kids]


def _rates(age: int) -> tuple[float, float]:
    """(disabled, bedridden) shares at ``age``: about 6% disabled overall, as in the 2006
    national disability survey, rising steeply with age; bedridden mostly among the old."""
    if age >= 80:
        return 0.20, 0.07
    if age >= 60:
        return 0.12, 0.015
    if age >= 15:
        return 0.045, 0.001
    return 0.012, 0.001


_RATES = [_rates(age) for age in range(130)]


def special_groups(rng: random.Random, age: int, sex: str, *, alone: bool) -> int:
    """Special-group bits for one person (低保 is set per household by the caller)."""
    rand = rng.random
    disabled, bedridden = _RATES[age]
    flags = 1 if alone and age >= 60 else 0  # SpecialGroup.living_alone
    if rand() < disabled:
        flags |= 4  # SpecialGroup.disabled
    if rand() < bedridden:
        flags |= 2  # SpecialGroup.bedridden
    if age >= 20 and rand() < (0.05 if sex == "M" else 0.004):
        flags |= 16  # SpecialGroup.veteran
    return flags


def phone_share(age: int) -> float:
    """How likely a person of ``age`` has a mobile number on record."""
    if age < 12:
        return 0.0
    if age < 18:
        return 0.6
    if age < 70:
        return 0.97
    return 0.85 if age < 80 else 0.6


_PHONE_SHARE = [phone_share(age) for age in range(130)]


class ResidentIds:
    """``idnumber.make_resident_id`` for one district, memoised per birth date: the weighted
    sum of the region and date digits is computed once per date, and only the sequence's
    three digits per number (the bulk build makes millions of them)."""

    def __init__(self, region6: str) -> None:
        self.region6 = region6
        self._dates: dict[int, tuple[date, str, int]] = {}

    def number(self, born_ordinal: int, sequence: int) -> tuple[date, str]:
        """(birth date, ID number) for a birth date given as a proleptic ordinal."""
        found = self._dates.get(born_ordinal)
        if found is None:
            born = date.fromordinal(born_ordinal)
            first14 = f"{self.region6}{born:%Y%m%d}"
            partial = sum(int(d) * w for d, w in zip(first14, WEIGHTS, strict=False))
            found = self._dates[born_ordinal] = (born, first14, partial)
        born, first14, partial = found
        check = CHECK_CHARS[(partial + _SEQUENCE_SUMS[sequence]) % 11]
        return born, f"{first14}{_SEQUENCES[sequence]}{check}"


_SEQUENCES = [f"{n:03d}" for n in range(1000)]
_SEQUENCE_SUMS = [sum(int(d) * w for d, w in zip(s, WEIGHTS[14:], strict=True)) for s in _SEQUENCES]


# The build -----------------------------------------------------------------------------------


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
    batches = _batches_from_child(start, plans) if background else generate(start, plans)
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


@dataclass(frozen=True)
class StartingPoint:
    """Everything generation needs besides the plans (picklable, for the second process)."""

    seed: int
    today: date
    #: The persons' created_at / updated_at, as the database stores it (see _stored_timestamp).
    created_at: datetime | str
    next_building: int
    next_household: int


@dataclass
class Batch:
    """Rows for one bulk write, in the order the foreign keys need them."""

    regions: list[tuple[Any, ...]] = field(default_factory=list)
    buildings: list[tuple[Any, ...]] = field(default_factory=list)
    households: list[tuple[Any, ...]] = field(default_factory=list)
    persons: list[tuple[Any, ...]] = field(default_factory=list)


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


# Generation (pure: no database) ----------------------------------------------------------------


def generate(start: StartingPoint, plans: Sequence[DistrictPlan]) -> Iterator[Batch]:
    """The province's rows, district by district, in batches of about FLUSH_PERSONS persons."""
    state = _Ids(start.next_building, start.next_household)
    for plan in plans:
        rng = random.Random(f"bastion/province/{start.seed}/{plan.code}")
        yield from _district(plan, rng, start, state)


@dataclass
class _Ids:
    next_building: int
    next_household: int


def _district(
    plan: DistrictPlan, rng: random.Random, start: StartingPoint, ids: _Ids
) -> Iterator[Batch]:
    sizes = household_sizes(rng, plan.persons)
    tree = plan_tree(rng, len(sizes), max_streets=MAX_CHILDREN - plan.first_street + 1)
    urban_streets = math.ceil(len(tree) * (1 - RURAL_SHARE[plan.kind]))
    street_stems = names.distinct_stems(rng, len(tree))
    batch = Batch()
    if plan.new_region is not None:
        batch.regions.append(plan.new_region)
    layout: list[tuple[bool, list[tuple[str, list[tuple[str, int]]]]]] = []
    for s, communities in enumerate(tree):
        number = plan.first_street + s
        street = f"{plan.code}{number:03d}"
        rural = s >= urban_streets
        zh, en = ("镇", "Town") if rural else ("街道", "Street")
        batch.regions.append(
            (street, plan.code, "street", f"{street_stems[s]}{zh}", f"{en} {number}", None)
        )
        community_stems = names.distinct_stems(rng, len(communities))
        laid: list[tuple[str, list[tuple[str, int]]]] = []
        for c, grids in enumerate(communities, start=1):
            community = f"{street}{c:03d}"
            zh, en = ("村", "Village") if rural else ("社区", "Community")
            name = f"{community_stems[c - 1]}{zh}"
            batch.regions.append((community, street, "community", name, f"{en} {c}", None))
            grid_codes: list[tuple[str, int]] = []
            for g, households in enumerate(grids, start=1):
                grid = f"{community}{g:03d}"
                batch.regions.append((grid, community, "grid", f"第{g}网格", f"Grid {g}", None))
                grid_codes.append((grid, households))
            laid.append((name, grid_codes))
        layout.append((rural, laid))

    people = _People(plan, rng, start, ids)
    cursor = 0
    for rural, laid in layout:
        for community_name, grid_codes in laid:
            addresses = _Addresses(rng, community_name, rural=rural)
            for grid, count in grid_codes:
                people.grid(batch, grid, sizes[cursor : cursor + count], addresses)
                cursor += count
            if len(batch.persons) >= FLUSH_PERSONS:
                yield batch
                batch = Batch()
    yield batch


class _Addresses:
    """Buildings of one community: urban compounds, one per grid (「新华路12号3栋2单元501」),
    or village groups numbered across the village's grids (「新华村3组27号」)."""

    def __init__(self, rng: random.Random, community_name: str, *, rural: bool) -> None:
        self.rng = rng
        self.rural = rural
        self.village = community_name
        stem = names.PLACE_STEMS[int(rng.random() * len(names.PLACE_STEMS))]
        suffix = names.ROAD_SUFFIXES[int(rng.random() * len(names.ROAD_SUFFIXES))]
        self.road = f"{stem}{suffix}"
        self.number = 1 + int(rng.random() * 40)
        self.building = 0

    def next_grid(self) -> None:
        """An urban grid is its own compound: the next number along the road, buildings
        numbered from 1 again."""
        if not self.rural:
            self.number += 2 + 2 * int(self.rng.random() * 5)
            self.building = 0

    def building_slots(self) -> tuple[str, str, list[tuple[str, str]]]:
        """The next building: its name, its address, and its (household number, address)s."""
        self.building += 1
        b = self.building
        rand = self.rng.random
        if self.rural:
            name = f"{b}组"
            address = f"{self.village}{b}组"
            count = 20 + int(rand() * 41)
            return name, address, [(f"{b}-{h}", f"{address}{h}号") for h in range(1, count + 1)]
        name = f"{b}栋"
        address = f"{self.road}{self.number}号{b}栋"
        units = 2 + int(rand() * 3)
        floors = 5 + int(rand() * 3)
        slots = [
            (f"{b}-{u}-{f}0{d}", f"{address}{u}单元{f}0{d}")
            for u in range(1, units + 1)
            for f in range(1, floors + 1)
            for d in (1, 2)
        ]
        return name, address, slots


class _People:
    """Fills one district's grids with buildings, households and persons."""

    def __init__(
        self, plan: DistrictPlan, rng: random.Random, start: StartingPoint, ids: _Ids
    ) -> None:
        self.rng = rng
        self.start = start
        self.ids = ids
        self.korean_share = KOREAN_SHARE.get(plan.city, KOREAN_SHARE_ELSEWHERE)
        self.picker = names.NamePicker()
        self.hasher = crypto.hasher()
        self.resident_ids = ResidentIds(plan.code)
        # Resident ID numbers are unique by (district, birth date, sequence): counting the
        # sequences used per birth date and sex within the district is enough, and the
        # counter goes with the district.
        self.used: dict[int, int] = {}

    def grid(self, batch: Batch, grid: str, sizes: list[int], addresses: _Addresses) -> None:
        rng, ids = self.rng, self.ids
        rand = rng.random
        getrandbits = rng.getrandbits
        surname_of, given_of = self.picker.surname, self.picker.given
        today_ord = self.start.today.toordinal()
        now = self.start.created_at
        resident_ids = self.resident_ids.number
        used = self.used
        per_date = SEQUENCES_PER_DATE
        base_hash = self.hasher
        encrypt = crypto.encrypt
        mobile = names.mobile
        phone_shares = _PHONE_SHARE
        resident_id = IdType.resident_id.value
        low_income_bit = int(SpecialGroup.low_income)
        korean_share = self.korean_share
        buildings, households, persons = batch.buildings, batch.households, batch.persons
        addresses.next_grid()
        slots: list[tuple[str, str]] = []
        building_id = 0
        for size in sizes:
            if not slots:
                name, address, slots = addresses.building_slots()
                slots.reverse()  # pop() from the end hands them out in order
                building_id = ids.next_building
                ids.next_building += 1
                buildings.append((building_id, grid, name, address))
            household_no, address = slots.pop()
            household_id = ids.next_household
            ids.next_household += 1
            households.append((household_id, grid, household_no, building_id, address))
            korean = rand() < korean_share
            low_income = low_income_bit if rand() < LOW_INCOME_HOUSEHOLDS else 0
            family = surname_of(rng, korean=korean)
            alone = size == 1
            for age, sex, own_surname in compose_household(rng, size):
                born_ord = today_ord - int((age + rand()) * 365.2425)
                key = born_ord * 2 + (sex == "M")
                k = used.get(key, 0)
                while k >= per_date:
                    # Every sequence of this sex on this birth date is taken here: a day older.
                    born_ord -= 1
                    key -= 2
                    k = used.get(key, 0)
                used[key] = k + 1
                born, number = resident_ids(born_ord, 2 * k + 1 if sex == "M" else 2 * k + 2)
                h = base_hash.copy()
                h.update(number.encode())
                surname = surname_of(rng, korean=korean) if own_surname else family
                persons.append(
                    (
                        f"{getrandbits(96):024x}",
                        surname + given_of(rng, sex, born.year, korean=korean),
                        resident_id,
                        encrypt(number),
                        h.hexdigest(),
                        mask_id(number),
                        sex,
                        born,
                        mobile(rng) if rand() < phone_shares[age] else None,
                        grid,
                        household_id,
                        address,
                        special_groups(rng, age, sex, alone=alone) | low_income,
                        now,
                        now,
                    )
                )


# The second process -----------------------------------------------------------------------------


def _batches_from_child(start: StartingPoint, plans: Sequence[DistrictPlan]) -> Iterator[Batch]:
    """Run :func:`generate` in a fresh process and hand its batches over as they come, at
    most a few ahead (so memory stays flat when writing is the slower half).

    A spawned process (not a fork) so no database connection or lock is shared with it; it
    gets the data key explicitly, since it encrypts the ID numbers."""
    ctx = multiprocessing.get_context("spawn")
    channel: Any = ctx.Queue(maxsize=3)
    child = ctx.Process(
        target=_generate_into,
        args=(channel, get_settings().data_key, start, list(plans)),
        name="bastion-province-generator",
        daemon=True,
    )
    child.start()
    try:
        while True:
            try:
                item = channel.get(timeout=1.0)
            except queue.Empty:
                if not child.is_alive():
                    raise RuntimeError(
                        f"the province generator died (exit code {child.exitcode})"
                    ) from None
                continue
            if item is None:
                break
            if isinstance(item, str):
                raise RuntimeError(f"the province generator failed:\n{item}")
            yield item
    finally:
        if child.is_alive():
            child.terminate()
        child.join()
        channel.close()
        channel.join_thread()


def _generate_into(
    channel: Any, data_key: str, start: StartingPoint, plans: list[DistrictPlan]
) -> None:
    """The second process's work: every batch into ``channel``, then None (or a traceback)."""
    os.environ["BASTION_DATA_KEY"] = data_key
    get_settings.cache_clear()
    try:
        for batch in generate(start, plans):
            channel.put(batch)
        channel.put(None)
    except Exception:  # noqa: BLE001 - any failure is reported to the parent, which raises it
        channel.put(traceback.format_exc())
