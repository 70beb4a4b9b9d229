"""The demo province on a real database: its shape, its people, its refusals, and the
``bastion simulate province`` and ``bastion demo`` commands."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bastion.accounts.models import User
from bastion.bulletin import service as bulletin_service
from bastion.cli.main import app
from bastion.core import clock, crypto, migrate
from bastion.core.auth import ROLES
from bastion.core.db import make_engine
from bastion.core.errors import Conflict, InvalidInput
from bastion.regions import service as region_service
from bastion.regions.models import Region
from bastion.registry import service as registry_service
from bastion.registry.idnumber import parse_resident_id
from bastion.registry.models import Building, Household, Person
from bastion.registry.rules import MOBILE_RE
from bastion.simulate import outbreak
from bastion.simulate.province import ProvinceSummary, build_province
from bastion.testing.models import Round
from bastion.tracing.models import Case
from tests.support import databases

SCALE = 0.002
#: Everyone's age is reckoned on one frozen day, so two builds give the same birth dates.
DAY = datetime(2022, 3, 26, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def province(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Engine, ProvinceSummary]]:
    """One province at scale 0.002 (about 48,000 people) in a database of its own, shared by
    the read-only checks of this module."""
    url, name = _new_database(backend, tmp_path_factory.mktemp("province"))
    engine = make_engine(url)
    with clock.frozen(DAY), Session(engine) as session, session.begin():
        summary = build_province(db_session=session, scale=SCALE, seed=7)
    yield engine, summary
    engine.dispose()
    if name:
        databases.drop_pg_database(name)


def _new_database(backend: str, directory: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        url, name = databases.sqlite_url(directory), None
    else:
        if databases.pg_reachable() is not None:
            pytest.skip("!!! PostgreSQL unreachable")
        name, url = databases.create_pg_database("bastion_province")
    migrate.upgrade(url)
    return url, name


@pytest.fixture
def session(province: tuple[Engine, ProvinceSummary]) -> Iterator[Session]:
    with Session(province[0]) as s:
        yield s


def _ids_by_person(session: Session) -> list[tuple[Any, ...]]:
    return [
        (crypto.decrypt(cipher), *rest)
        for cipher, *rest in session.execute(
            select(
                Person.id_cipher,
                Person.id_hash,
                Person.sex,
                Person.birth_date,
                Person.region_code,
                Person.special_groups,
                Person.household_id,
            )
        )
    ]


def test_each_city_gets_its_census_share(session, province):
    summary = province[1]
    cities = dict(
        session.execute(
            select(Region.code, Region.population).where(
                Region.level == "city", Region.parent_code == "220000"
            )
        ).all()
    )
    district_city = dict(
        session.execute(
            select(Region.code, Region.parent_code).where(Region.level == "district")
        ).all()
    )
    district_city["220581"] = "220581"  # streets sit directly below 梅河口
    counted: Counter[str] = Counter()
    for code, n in session.execute(
        select(Person.region_code, func.count()).group_by(Person.region_code)
    ):
        counted[district_city[code[:6]]] += n
    assert set(counted) == set(cities)
    for city, population in cities.items():
        assert counted[city] == round(population * SCALE), city
    assert (
        summary.persons
        == sum(counted.values())
        == session.execute(select(func.count()).select_from(Person)).scalar_one()
    )
    assert summary.persons_by_city == dict(counted)


def test_the_region_tree_is_complete_and_coded_below_its_parents(session):
    rows = session.execute(select(Region.code, Region.parent_code, Region.level)).all()
    by_code = {code: (parent, level) for code, parent, level in rows}
    children: dict[str, list[str]] = defaultdict(list)
    for code, parent, _ in rows:
        if parent:
            children[parent].append(code)
    length = {"street": 9, "community": 12, "grid": 15}
    for code, (parent, level) in by_code.items():
        if level in length:
            assert len(code) == length[level]
            assert code.startswith(parent)
    below = {"street": "community", "community": "grid"}
    for code, (_, level) in by_code.items():
        if level in below:
            assert any(by_code[c][1] == below[level] for c in children[code]), code
    # Every district (and 梅河口, run directly by the province) has streets.
    filled = [c for c, (_, level) in by_code.items() if level == "district"] + ["220581"]
    for code in filled:
        assert any(by_code[c][1] == "street" for c in children[code]), code
    # Cities without listed districts get one 市辖区, coded XXYY01.
    for city in ("220300", "220400", "220500", "220600", "220700", "220800", "222400"):
        district = session.get(Region, f"{city[:4]}01")
        assert district is not None
        assert (district.parent_code, district.name_zh) == (city, "市辖区")
    assert session.get(Region, "220101") is None  # Changchun's listed districts only


def test_every_id_number_is_valid_unique_and_matches_the_person(session):
    people = _ids_by_person(session)
    numbers = [p[0] for p in people]
    assert len(set(numbers)) == len(numbers)
    for number, id_hash, sex, born, region, _, _ in people[:: max(1, len(people) // 5_000)]:
        parsed = parse_resident_id(number, today=DAY.date())
        assert parsed.region == region[:6]
        assert (parsed.sex, parsed.birth_date) == (sex, born)
        assert id_hash == crypto.lookup_hash(number)
    masked = session.execute(select(Person.id_masked).limit(1)).scalar_one()
    assert masked.startswith("2")
    assert masked.count("*") == 16


def test_people_have_the_census_age_structure_and_households_2_34(session, province):
    today = DAY.date()
    bands: Counter[str] = Counter()
    for (born,) in session.execute(select(Person.birth_date)):
        age = registry_service.age_on(born, today)
        bands["0-14" if age < 15 else "15-59" if age < 60 else "60+"] += 1
    total = sum(bands.values())
    assert bands["0-14"] / total == pytest.approx(0.121, abs=0.015)
    assert bands["15-59"] / total == pytest.approx(0.670, abs=0.015)
    assert bands["60+"] / total == pytest.approx(0.209, abs=0.015)
    households = session.execute(select(func.count()).select_from(Household)).scalar_one()
    assert total / households == pytest.approx(2.34, abs=0.04)
    assert province[1].households == households


def test_households_live_in_buildings_in_grids_of_about_300(session):
    per_grid = Counter(
        dict(
            session.execute(
                select(Household.region_code, func.count()).group_by(Household.region_code)
            ).all()
        )
    )
    assert all(len(code) == 15 for code in per_grid)
    assert 250 <= sum(per_grid.values()) / len(per_grid) <= 400
    # A grid is small only where its whole district is.
    big = [n for n in per_grid.values() if n >= 150]
    assert len(big) >= 0.8 * len(per_grid)
    assert all(n <= 450 for n in per_grid.values())
    mismatched = session.execute(
        select(func.count())
        .select_from(Person)
        .join(Household, Household.id == Person.household_id)
        .where(
            (Person.region_code != Household.region_code) | (Person.address != Household.address)
        )
    ).scalar_one()
    assert mismatched == 0
    per_building = session.execute(
        select(func.count()).select_from(Household).where(Household.building_id.is_(None))
    ).scalar_one()
    assert per_building == 0
    buildings = session.execute(select(func.count()).select_from(Building)).scalar_one()
    assert 15 <= sum(per_grid.values()) / buildings <= 60
    address = session.execute(select(Household.address).limit(1)).scalar_one()
    assert "号" in address


def test_special_groups_come_at_plausible_rates_and_only_where_they_fit(session):
    today = DAY.date()
    sizes = Counter(session.execute(select(Person.household_id)).scalars())
    total = sum(sizes.values())
    flags: Counter[int] = Counter()
    for household_id, born, groups in session.execute(
        select(Person.household_id, Person.birth_date, Person.special_groups)
    ):
        for bit in (1, 2, 4, 8, 16):
            if groups & bit:
                flags[bit] += 1
        if groups & 1:  # living alone: elderly, on their own
            assert registry_service.age_on(born, today) >= 59
            assert sizes[household_id] == 1
    assert 0.045 <= flags[4] / total <= 0.075  # disabled, ~6%
    assert 0.015 <= flags[8] / total <= 0.045  # low income, ~3% of households
    assert 0.01 <= flags[1] / total <= 0.06
    assert 0.001 <= flags[2] / total <= 0.02
    assert 0.01 <= flags[16] / total <= 0.05


def test_names_and_phones_look_real(session):
    rows = session.execute(select(Person.name, Person.phone, Person.birth_date, Person.token)).all()
    today = DAY.date()
    assert all(2 <= len(name) <= 4 for name, _, _, _ in rows)
    assert Counter(name[0] for name, _, _, _ in rows).most_common(1)[0][0] in "王李张刘"
    adults = [p for _, p, born, _ in rows if registry_service.age_on(born, today) >= 18]
    assert sum(p is not None for p in adults) / len(adults) > 0.85
    assert all(MOBILE_RE.match(p) for _, p, _, _ in rows if p is not None)
    assert all(p is None for _, p, born, _ in rows if registry_service.age_on(born, today) < 12)
    assert all(len(token) == 24 and int(token, 16) >= 0 for _, _, _, token in rows)


def test_persons_are_stamped_with_the_build_time_readable_as_any_other_timestamp(session):
    stamps = session.execute(select(Person.created_at, Person.updated_at).distinct()).all()
    assert stamps == [(DAY, DAY)]
    later = session.execute(
        select(func.count()).select_from(Person).where(Person.created_at >= DAY)
    ).scalar_one()
    assert later == session.execute(select(func.count()).select_from(Person)).scalar_one()


def test_a_second_build_is_refused_and_new_rows_still_get_fresh_ids(session):
    with pytest.raises(Conflict) as refused:
        build_province(db_session=session, scale=SCALE, seed=7)
    assert refused.value.key == "simulate.population_exists"
    session.rollback()
    # Ids were assigned explicitly: the sequences must have been moved past them.
    highest = session.execute(select(func.max(Household.id))).scalar_one()
    grid = session.execute(select(func.min(Household.region_code))).scalar_one()
    try:
        household = registry_service.household_for(
            db_session=session, region_code=grid, household_no="new-1"
        )
        assert household.id > highest
    finally:
        session.rollback()


@pytest.mark.parametrize("scale", [0, -1, 1.5, math.nan])
def test_it_refuses_a_scale_outside_zero_to_one(db, scale):
    with pytest.raises(InvalidInput) as refused:
        build_province(db_session=db, scale=scale, seed=1)
    assert [p.field for p in refused.value.problems] == ["scale"]


def _snapshot(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    with Session(engine) as s:
        people = sorted(
            (crypto.decrypt(cipher), *rest)
            for cipher, *rest in s.execute(
                select(
                    Person.id_cipher,
                    Person.token,
                    Person.name,
                    Person.sex,
                    Person.birth_date,
                    Person.phone,
                    Person.region_code,
                    Person.address,
                    Person.special_groups,
                    Household.household_no,
                ).join(Household, Household.id == Person.household_id)
            )
        )
        regions = sorted(s.execute(select(Region.code, Region.name_zh)).all())
    engine.dispose()
    return {"people": people, "regions": regions}


def test_the_same_seed_builds_the_same_province_in_or_out_of_a_second_process(backend, tmp_path):
    snapshots, persons = [], []
    for i, background in enumerate((False, True)):
        url, name = _new_database(backend, tmp_path / str(i))
        engine = make_engine(url)
        with clock.frozen(DAY), Session(engine) as session, session.begin():
            summary = build_province(
                db_session=session, scale=0.0003, seed=3, background=background
            )
        persons.append(summary.persons)
        engine.dispose()
        snapshots.append(_snapshot(url))
        if name:
            databases.drop_pg_database(name)
    first, second = snapshots
    assert len(first["people"]) == persons[0] == persons[1]
    assert persons[0] == pytest.approx(24_073_453 * 0.0003, abs=5)
    assert first == second


def test_the_build_leaves_regions_added_by_hand_alone(db):
    # The shared test world already has streets 220102001, 220202001 and 220581001.
    before = db.get(Region, "220102001")
    assert before is not None
    with clock.frozen(DAY):
        summary = build_province(db_session=db, scale=0.0002, seed=1)
    assert db.get(Region, "220102001") is before
    assert db.get(Region, "220102002") is not None
    assert summary.persons == db.execute(select(func.count()).select_from(Person)).scalar_one()


# The commands -----------------------------------------------------------------------------------


def _run(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def test_simulate_province_builds_and_then_refuses_a_second_build(cli_env):
    built = _run("simulate", "province", "--scale", "0.0005", "--seed", "2")
    assert built.exit_code == 0, built.output
    assert "persons" in built.stdout
    again = _run("simulate", "province", "--scale", "0.0005")
    assert again.exit_code == 1
    assert "already holds persons" in " ".join(again.output.split())
    bad = _run("simulate", "province", "--scale", "2")
    assert bad.exit_code == 1
    assert "scale" in bad.output


def test_demo_builds_a_province_and_a_cast_and_is_idempotent(cli_env):
    first = _run("demo", "--no-serve", "--scale", "0.001", "--days", "3")
    assert first.exit_code == 0, first.output
    assert "bastion-demo" in first.stdout
    engine = make_engine(cli_env["BASTION_DATABASE_URL"])
    with Session(engine) as s:
        # The earlier simulations ran: a round over Changchun, three days of outbreak ending
        # yesterday; and the latest day's bulletin was printed in both languages, naming it.
        assert s.execute(select(Round.code)).scalars().all() == ["SIM-220100-1"]
        marked = outbreak.markers(s)
        yesterday = clock.today() - timedelta(days=1)
        assert [m.day for m in marked["220000"]] == [
            yesterday - timedelta(days=n) for n in (2, 1, 0)
        ]
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() > 0
        day = bulletin_service.latest_day(s)
        cases = s.execute(select(func.count()).select_from(Case)).scalar_one()
    out = " ".join(first.stdout.split())
    assert f"吉林省疫情通报（{day.year}年{day.month}月{day.day}日）" in out
    assert f"Jilin Province: epidemic bulletin, {day.day} {day:%B} {day.year}" in out
    assert out.index("吉林省疫情通报") < out.index("epidemic bulletin")
    with Session(engine) as s:
        persons = s.execute(select(func.count()).select_from(Person)).scalar_one()
        users = {u.username: u for u in s.execute(select(User)).scalars()}
        assert persons == pytest.approx(24_073, abs=5)
        assert set(users) == {f"demo_{role}" for role in ROLES}
        assert users["demo_admin"].region_code == "220000"
        assert users["demo_lab"].region_code == "220100"
        assert users["demo_courier"].region_code == "220100"
        district = users["demo_investigator"].region_code
        assert len(district) == 6
        assert district.startswith("2201")
        grid = users["demo_grid_worker"].region_code
        assert len(grid) == 15
        assert grid.startswith(district)
        assert users["demo_sampler"].region_code == grid
        resident = users["demo_resident"]
        assert resident.person_id is not None
        person = s.get(Person, resident.person_id)
        assert person is not None
        assert person.region_code == resident.region_code == grid
        assert registry_service.age_on(person.birth_date, date.today()) >= 18
        ids = {name: u.id for name, u in users.items()}

    second = _run("demo", "--no-serve", "--scale", "0.001", "--days", "3")
    assert second.exit_code == 0, second.output
    assert "already holds" in second.stdout
    assert "0 day(s) simulated, 3 already" in " ".join(second.stdout.split())
    with Session(engine) as s:
        assert s.execute(select(func.count()).select_from(Person)).scalar_one() == persons
        assert s.execute(select(func.count()).select_from(Case)).scalar_one() == cases
        assert {u.username: u.id for u in s.execute(select(User)).scalars()} == ids
        scope = region_service.scope_of(db_session=s, code=grid)
        assert scope.contains(grid)
    engine.dispose()


def test_demo_fresh_starts_over_on_sqlite_and_is_refused_on_postgresql(cli_env, backend):
    result = _run("demo", "--no-serve", "--scale", "0.0002", "--fresh")
    if backend == "postgresql":
        assert result.exit_code == 1
        assert "--fresh" in result.output
        return
    assert result.exit_code == 0, result.output
    again = _run("demo", "--no-serve", "--scale", "0.0003", "--fresh")
    assert again.exit_code == 0, again.output
    engine = make_engine(cli_env["BASTION_DATABASE_URL"])
    with Session(engine) as s:
        persons = s.execute(select(func.count()).select_from(Person)).scalar_one()
        assert persons == pytest.approx(24_073_453 * 0.0003, abs=3)
    engine.dispose()


def test_demo_refuses_to_run_in_production(cli_env, monkeypatch):
    from bastion.core.config import get_settings

    monkeypatch.setenv("BASTION_ENVIRONMENT", "production")
    monkeypatch.setenv("BASTION_SECRET_KEY", "a-real-secret-for-this-test")
    monkeypatch.setenv("BASTION_DATA_KEY", "cmVhbC1kYXRhLWtleS1mb3ItdGhpcy10ZXN0LTMyYiE=")
    get_settings.cache_clear()
    result = _run("demo", "--no-serve", "--scale", "0.0002")
    assert result.exit_code == 1
    assert "production" in result.output
