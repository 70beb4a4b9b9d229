"""Coverage and timeliness of a round: every figure on hand-built rounds, the incremental
counters against a rebuild from the record, roll-ups, the people not yet tested, the bulletin's
screening figures, and who may see what."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from bastion.regions import service as region_service
from bastion.registry.enums import SpecialGroup
from bastion.testing import coverage, exemptions, ingest
from bastion.testing import service as testing_service
from bastion.testing.coverage.counters import COUNTERS
from bastion.testing.ingest import RawScan
from bastion.testing.models import RoundCoverage, RoundScreeningHour, Tube
from bastion.testing.schemas import RoundCreate
from tests.support import factories
from tests.support.world import (
    CHANGYI_GRID,
    MEIHEKOU_GRID,
    NANGUAN_COMMUNITY,
    NANGUAN_GRID,
    NANGUAN_GRID_2,
    NANGUAN_STREET,
)

#: 08:00 in Shanghai on 25 March 2022: the round's first local day is the 25th.
START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
DEADLINE = START + timedelta(hours=24)
AFTER_DEADLINE = START + timedelta(hours=26)

RULES = [
    {"kind": "age_under", "years": 3},
    {"kind": "age_over", "years": 80},
    {"kind": "special_group", "group": "bedridden"},
    {"kind": "region", "code": NANGUAN_GRID_2},
]

_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(AFTER_DEADLINE):
        yield


def open_round(db, *, code="R-COV-1", region="220100", rules=(), starts_at=START):
    rnd = testing_service.create_round(
        db_session=db,
        principal=system_principal(),
        data=RoundCreate(
            code=code,
            name=f"Round {code}",
            region_code=region,
            starts_at=starts_at,
            exemptions=list(rules),
        ),
    )
    # Idempotent: harmless if create_round already takes the snapshot.
    coverage.snapshot_required(db_session=db, round_id=rnd.id)
    return rnd


def resident(db, region=NANGUAN_GRID, *, born=date(1985, 6, 1), groups=0):
    person = factories.person(db, region_code=region, born=born)
    assert person.birth_date == born
    if groups:
        person.special_groups = groups
        db.flush()
    return person


def scan(db, rnd, site, tube, people, *, at, kind="pooled"):
    return ingest.ingest_scans(
        db_session=db,
        principal=system_principal(),
        key=f"coverage-{next(_keys):06d}",
        source="test",
        scans=[
            RawScan(
                row=i + 1,
                round=rnd.code,
                site=site.code,
                tube=tube,
                person=p.token,
                scanned_at=at + timedelta(seconds=i),
                kind=kind,
            )
            for i, p in enumerate(people)
        ],
    )


def record_result(db, barcode, value):
    tube = db.execute(select(Tube).where(Tube.barcode == barcode)).scalar_one()
    tube.result = value
    db.flush()
    coverage.add_results(db_session=db, tube_ids=[tube.id])
    return tube


def counters(db, round_id):
    rc = RoundCoverage
    rows = db.execute(
        select(rc.region_code, *(getattr(rc, c) for c in COUNTERS)).where(rc.round_id == round_id)
    ).all()
    return {code: tuple(rest) for code, *rest in rows if any(rest)}


def hours(db, round_id):
    h = RoundScreeningHour
    rows = db.execute(
        select(h.district_code, h.hour, h.scans).where(h.round_id == round_id, h.scans != 0)
    ).all()
    return {(d, hour): n for d, hour, n in rows}


def rebuilt(db, round_id):
    coverage.rebuild(db_session=db, round_id=round_id)
    return counters(db, round_id), hours(db, round_id)


def figures(row):
    return tuple(getattr(row, c) for c in COUNTERS)


# A hand-built round where every figure is known ---------------------------------------------------


@pytest.fixture
def known(db):
    """Grid 1: seven required (two on an age boundary), four exempt; grid 2 exempt by region;
    one person registered at community level; one Jilin City resident sampled here."""
    p = {
        "baby": resident(db, born=date(2021, 5, 1)),
        "turns_three_today": resident(db, born=date(2019, 3, 25)),
        "three_tomorrow": resident(db, born=date(2019, 3, 26)),
        "eighty": resident(db, born=date(1942, 3, 25)),
        "eighty_one": resident(db, born=date(1941, 3, 25)),
        "bedridden": resident(db, groups=SpecialGroup.bedridden.value),
        "in_grid_2": resident(db, NANGUAN_GRID_2),
        "grid_2_other": resident(db, NANGUAN_GRID_2),
        "community": resident(db, NANGUAN_COMMUNITY),
        "outsider": resident(db, CHANGYI_GRID),
    }
    adults = [resident(db) for _ in range(5)]
    rnd = open_round(db, rules=RULES)
    site = factories.site(db)
    # In time: three adults, the baby (exempt but sampled) and a grid-2 resident.
    scan(
        db,
        rnd,
        site,
        "TC00000001",
        [*adults[:3], p["baby"], p["in_grid_2"]],
        at=START + timedelta(hours=2),
    )
    # After the deadline: the fourth adult, then the outsider, in one tube.
    scan(db, rnd, site, "TC00000002", [adults[3], p["outsider"]], at=DEADLINE + timedelta(hours=1))
    record_result(db, "TC00000001", "negative")
    record_result(db, "TC00000002", "positive")
    return rnd, p, adults


def test_every_figure_of_a_hand_built_round_is_known(db, known):
    rnd, _, _ = known
    # required, sampled, sampled_required, on_time, resulted, positive_people, positive_tubes
    assert counters(db, rnd.id) == {
        NANGUAN_GRID: (7, 5, 4, 3, 5, 1, 1),
        NANGUAN_GRID_2: (0, 1, 0, 0, 1, 0, 0),
        NANGUAN_COMMUNITY: (1, 0, 0, 0, 0, 0, 0),
        CHANGYI_GRID: (0, 1, 0, 0, 1, 1, 0),
    }


def test_the_incremental_counters_of_the_hand_built_round_equal_a_rebuild(db, known):
    rnd, _, _ = known
    before = counters(db, rnd.id), hours(db, rnd.id)
    assert rebuilt(db, rnd.id) == before


def test_a_community_view_shows_its_grids_the_unassigned_and_what_is_late(db, known):
    rnd, _, _ = known
    view = coverage.view(
        db_session=db, principal=system_principal(), ref=rnd.code, region_code=NANGUAN_COMMUNITY
    )
    rows = {(r.code, r.unassigned): r for r in view.rows}
    assert set(rows) == {(NANGUAN_GRID, False), (NANGUAN_GRID_2, False), (NANGUAN_COMMUNITY, True)}
    grid = rows[(NANGUAN_GRID, False)]
    assert figures(grid) == (7, 5, 4, 3, 5, 1, 1)
    assert (grid.not_tested, grid.coverage, grid.on_time_share) == (3, 0.5714, 0.4286)
    assert grid.results_share == 1.0
    assert grid.late
    assert (grid.name_en, grid.level) == ("Grid 1", "grid")
    assert not rows[(NANGUAN_GRID_2, False)].late  # nobody required there
    assert rows[(NANGUAN_COMMUNITY, True)].late  # one required, not sampled
    assert figures(view.region) == (8, 6, 4, 3, 6, 1, 1)
    assert view.region.not_tested == 4
    assert view.region.code == NANGUAN_COMMUNITY


def test_grids_roll_up_to_street_district_and_city(db, known):
    rnd, _, _ = known
    system = system_principal()
    street = coverage.view(db_session=db, principal=system, ref=rnd.code, region_code="220102")
    assert [(r.code, figures(r)) for r in street.rows] == [(NANGUAN_STREET, (8, 6, 4, 3, 6, 1, 1))]
    city = coverage.view(db_session=db, principal=system, ref=str(rnd.id))
    assert city.region.code == "220100"
    assert len(city.rows) == 11  # every district, figures or not
    by_code = {r.code: r for r in city.rows}
    assert figures(by_code["220102"]) == (8, 6, 4, 3, 6, 1, 1)
    assert by_code["220102"].name_zh == "南关区"
    assert figures(by_code["220103"]) == (0,) * 7
    assert not by_code["220103"].late
    assert figures(city.region) == (8, 6, 4, 3, 6, 1, 1)


def test_a_province_view_shows_the_outsider_under_their_own_city(db, known):
    province = coverage.view(
        db_session=db, principal=system_principal(), ref="latest", region_code="220000"
    )
    by_code = {r.code: r for r in province.rows}
    assert figures(by_code["220100"]) == (8, 6, 4, 3, 6, 1, 1)
    assert figures(by_code["220200"]) == (0, 1, 0, 0, 1, 1, 0)
    assert figures(province.region) == (8, 7, 4, 3, 7, 2, 1)


def test_nothing_is_late_before_the_deadline(db, known):
    rnd, _, _ = known
    with clock.frozen(DEADLINE - timedelta(minutes=1)):
        view = coverage.view(db_session=db, principal=system_principal(), ref=rnd.code)
    assert not view.region.late
    assert not any(r.late for r in view.rows)


def test_round_status_lists_cities_largest_first_with_totals(db, known):
    rnd, _, _ = known
    status = coverage.round_status(db_session=db, principal=system_principal(), ref=rnd.code)
    assert [(c.code, c.required, c.sampled) for c in status.cities] == [
        ("220100", 8, 6),
        ("220200", 0, 1),
    ]
    assert figures(status.totals) == (8, 7, 4, 3, 7, 2, 1)
    assert status.totals.late


# Exemptions ---------------------------------------------------------------------------------------


def test_bedridden_people_are_required_unless_a_rule_exempts_them(db):
    resident(db, groups=SpecialGroup.bedridden.value)
    resident(db, groups=SpecialGroup.disabled.value)
    plain = open_round(db, code="R-COV-PLAIN")
    exempting = open_round(db, code="R-COV-BED", rules=[RULES[2]])
    assert counters(db, plain.id)[NANGUAN_GRID][0] == 2
    assert counters(db, exempting.id)[NANGUAN_GRID][0] == 1


def test_malformed_exemptions_are_refused_naming_each_rule(db):
    rnd = open_round(db, code="R-COV-OK")
    rnd.exemptions = (
        '[{"kind": "age_under", "years": -1}, {"kind": "moon_phase"},'
        ' {"kind": "special_group", "group": "giants"}, {"kind": "region", "code": "22x"}]'
    )
    db.flush()
    with pytest.raises(InvalidInput) as caught:
        coverage.snapshot_required(db_session=db, round_id=rnd.id)
    assert [p.field for p in caught.value.problems] == [
        "exemptions.0.years",
        "exemptions.1.kind",
        "exemptions.2.group",
        "exemptions.3.code",
    ]


# The people not yet tested ------------------------------------------------------------------------


def test_the_not_yet_tested_list_shrinks_as_people_are_scanned(db):
    people = [resident(db) for _ in range(5)]
    resident(db, born=date(2021, 1, 1))  # exempt: never on the list
    rnd = open_round(db, rules=RULES)
    site = factories.site(db)
    system = system_principal()

    def listed():
        page, total = coverage.not_tested(
            db_session=db, principal=system, ref=rnd.code, region_code=NANGUAN_GRID, limit=500
        )
        assert total == len(page)
        return {p.id for p in page}

    assert listed() == {p.id for p in people}
    scan(db, rnd, site, "TC00000011", people[:2], at=START + timedelta(hours=1))
    assert listed() == {p.id for p in people[2:]}
    scan(db, rnd, site, "TC00000012", people[2:3], at=START + timedelta(hours=2))
    assert listed() == {p.id for p in people[3:]}
    view = coverage.view(db_session=db, principal=system, ref=rnd.code, region_code=NANGUAN_GRID)
    assert view.region.not_tested == 2


def test_a_retest_does_not_take_anyone_off_the_list(db):
    people = [resident(db) for _ in range(2)]
    rnd = open_round(db)
    site = factories.site(db)
    scan(db, rnd, site, "TC00000021", people[:1], at=START + timedelta(hours=1), kind="retest")
    _, total = coverage.not_tested(
        db_session=db, principal=system_principal(), ref=rnd.code, region_code=NANGUAN_GRID
    )
    assert total == 2
    assert counters(db, rnd.id)[NANGUAN_GRID] == (2, 0, 0, 0, 0, 0, 0)


def test_the_list_is_paged_and_refuses_regions_above_a_community(db):
    for _ in range(3):
        resident(db)
    rnd = open_round(db)
    system = system_principal()
    first, total = coverage.not_tested(
        db_session=db, principal=system, ref=rnd.code, region_code=NANGUAN_GRID, limit=2
    )
    second, _ = coverage.not_tested(
        db_session=db, principal=system, ref=rnd.code, region_code=NANGUAN_GRID, offset=2
    )
    assert (total, len(first), len(second)) == (3, 2, 1)
    assert {p.id for p in first}.isdisjoint({p.id for p in second})
    with pytest.raises(InvalidInput):
        coverage.not_tested(db_session=db, principal=system, ref=rnd.code, region_code="220102")
    with pytest.raises(InvalidInput):
        coverage.not_tested(
            db_session=db, principal=system, ref=rnd.code, region_code=NANGUAN_GRID, limit=0
        )


# Results ------------------------------------------------------------------------------------------


def test_results_can_be_counted_from_a_query_and_taken_back(db):
    people = [resident(db) for _ in range(3)]
    rnd = open_round(db)
    site = factories.site(db)
    scan(db, rnd, site, "TC00000031", people, at=START + timedelta(hours=1))
    tube = db.execute(select(Tube).where(Tube.barcode == "TC00000031")).scalar_one()
    tube.result = "positive"
    db.flush()
    coverage.add_results(db_session=db, tube_ids=select(Tube.id).where(Tube.result.is_not(None)))
    assert counters(db, rnd.id)[NANGUAN_GRID] == (3, 3, 3, 3, 3, 3, 1)
    coverage.remove_results(db_session=db, tube_ids=[tube.id])
    tube.result = "negative"
    db.flush()
    coverage.add_results(db_session=db, tube_ids=[tube.id])
    assert counters(db, rnd.id)[NANGUAN_GRID] == (3, 3, 3, 3, 3, 0, 0)
    assert rebuilt(db, rnd.id)[0][NANGUAN_GRID] == (3, 3, 3, 3, 3, 0, 0)


# Incremental counters against the record ----------------------------------------------------------


def test_incremental_counters_equal_a_rebuild_after_many_ingests(db):
    rng = random.Random(20220325)
    homes = [NANGUAN_GRID, NANGUAN_GRID, NANGUAN_GRID_2, NANGUAN_COMMUNITY, CHANGYI_GRID]
    people = [
        resident(
            db,
            rng.choice(homes),
            born=date(rng.randint(1935, 2021), rng.randint(1, 12), rng.randint(1, 28)),
            groups=rng.choice([0, 0, 0, 2, 4, 6]),
        )
        for _ in range(60)
    ]
    rules = [RULES[0], RULES[1], {"kind": "special_group", "group": "disabled"}, RULES[3]]
    rnd = open_round(db, rules=rules)
    site = factories.site(db)
    parsed = exemptions.parse(rules)
    scope = region_service.scope_of(db_session=db, code="220100")

    def contains(code, region):
        return region_service.scope_of(db_session=db, code=code).contains(region)

    def required(p):
        return scope.contains(p.region_code) and not any(
            exemptions.exempts(
                r,
                born=p.birth_date,
                groups=p.special_groups,
                region_code=p.region_code,
                on=START.date(),
                region_contains=contains,
            )
            for r in parsed
        )

    expected_required = Counter(p.region_code for p in people if required(p))
    assert {c: v[0] for c, v in counters(db, rnd.id).items()} == dict(expected_required)

    barcodes = [f"TR{n:08d}" for n in range(16)]
    resulted: set[str] = set()
    for batch in range(24):
        group = rng.sample(people, rng.randint(1, 8))
        # Up to two hours after the deadline (and a few scans from the future, refused).
        at = START + timedelta(minutes=rng.randint(0, 26 * 60 + 20))
        kind = "retest" if batch % 4 == 3 else "pooled"
        tube = f"TX{batch:08d}" if kind == "retest" else rng.choice(barcodes)
        scan(db, rnd, site, tube, group[:1] if kind == "retest" else group, at=at, kind=kind)
        for barcode in rng.sample(barcodes, 2):
            found = db.execute(select(Tube).where(Tube.barcode == barcode)).scalar_one_or_none()
            if found is not None and barcode not in resulted:
                resulted.add(barcode)
                record_result(db, barcode, rng.choice(["negative", "positive", "invalid"]))
    incremental = counters(db, rnd.id), hours(db, rnd.id)
    assert sum(v[1] for v in incremental[0].values()) > 10  # the run did sample people
    assert rebuilt(db, rnd.id) == incremental

    # The list of people not yet tested agrees with the counters.
    for region in (NANGUAN_GRID, NANGUAN_GRID_2, NANGUAN_COMMUNITY):
        _, total = coverage.not_tested(
            db_session=db, principal=system_principal(), ref=rnd.code, region_code=region
        )
        view = coverage.view(
            db_session=db, principal=system_principal(), ref=rnd.code, region_code=region
        )
        assert total == view.region.not_tested, region


# Screening figures for the bulletin ---------------------------------------------------------------


def test_screened_on_splits_at_local_midnight_and_cumulates(db):
    people = [resident(db) for _ in range(4)]
    rnd = open_round(db)
    site = factories.site(db)
    shanghai = clock.local_tz()
    late_evening = datetime(2022, 3, 25, 23, 59, tzinfo=shanghai)
    after_midnight = datetime(2022, 3, 26, 0, 1, tzinfo=shanghai)
    scan(db, rnd, site, "TC00000041", people[:1], at=START + timedelta(hours=1))
    scan(db, rnd, site, "TC00000042", people[1:2], at=late_evening)
    scan(db, rnd, site, "TC00000043", people[2:4], at=after_midnight)
    scan(db, rnd, site, "TC00000044", people[:1], at=after_midnight, kind="retest")
    day1, day2 = date(2022, 3, 25), date(2022, 3, 26)
    for region in ("220000", "220100", "220102", NANGUAN_STREET, NANGUAN_GRID):
        assert coverage.screened_on(db_session=db, region_code=region, day=day1) == 2, region
        assert coverage.screened_on(db_session=db, region_code=region, day=day2) == 2, region
        assert coverage.screened_cumulative(db_session=db, region_code=region, day=day1) == 2
        assert coverage.screened_cumulative(db_session=db, region_code=region, day=day2) == 4
    assert coverage.screened_on(db_session=db, region_code="220200", day=day1) == 0
    assert (
        coverage.screened_cumulative(db_session=db, region_code="220100", day=date(2022, 3, 24))
        == 0
    )


def test_screening_across_rounds_counts_every_round(db):
    people = [resident(db) for _ in range(2)]
    first = open_round(db, code="R-COV-A")
    second = open_round(db, code="R-COV-B", starts_at=START + timedelta(hours=12))
    site = factories.site(db)
    scan(db, first, site, "TC00000051", people, at=START + timedelta(hours=1))
    scan(db, second, site, "TC00000052", people, at=START + timedelta(hours=13))
    assert coverage.screened_on(db_session=db, region_code="220100", day=date(2022, 3, 25)) == 4


# Meihekou sits under the province, not under Tonghua ---------------------------------------------


def test_meihekou_rolls_up_to_itself_not_to_tonghua(db):
    mei = [resident(db, MEIHEKOU_GRID) for _ in range(3)]
    resident(db)
    rnd = open_round(db, code="R-COV-PROV", region="220000")
    site = factories.site(
        db, code="SITE-MHK", region_code=MEIHEKOU_GRID[:12], grids=[MEIHEKOU_GRID]
    )
    scan(db, rnd, site, "TC00000061", mei[:2], at=START + timedelta(hours=1))
    system = system_principal()
    status = coverage.round_status(db_session=db, principal=system, ref=rnd.code)
    assert [(c.code, c.required, c.sampled) for c in status.cities] == [
        ("220581", 3, 2),
        ("220100", 1, 0),
    ]
    province = coverage.view(db_session=db, principal=system, ref=rnd.code)
    by_code = {r.code: r for r in province.rows}
    assert figures(by_code["220581"])[:2] == (3, 2)
    assert figures(by_code["220500"]) == (0,) * 7
    tonghua = coverage.view(db_session=db, principal=system, ref=rnd.code, region_code="220500")
    assert figures(tonghua.region) == (0,) * 7
    meihekou = coverage.view(db_session=db, principal=system, ref=rnd.code, region_code="220581")
    assert figures(meihekou.region)[:2] == (3, 2)
    assert coverage.screened_on(db_session=db, region_code="220500", day=date(2022, 3, 25)) == 0
    assert coverage.screened_on(db_session=db, region_code="220581", day=date(2022, 3, 25)) == 2


# Who may see what ---------------------------------------------------------------------------------


def test_a_grid_worker_sees_only_their_own_grid(db, known, principal):
    rnd, _, _ = known
    worker = principal("grid_worker", "grid_worker_grid")
    mine = coverage.view(db_session=db, principal=worker, ref=rnd.code)
    assert mine.region.code == NANGUAN_GRID
    assert figures(mine.region) == (7, 5, 4, 3, 5, 1, 1)
    with pytest.raises(Forbidden):
        coverage.view(db_session=db, principal=worker, ref=rnd.code, region_code=NANGUAN_GRID_2)
    with pytest.raises(Forbidden):
        coverage.not_tested(
            db_session=db, principal=worker, ref=rnd.code, region_code=NANGUAN_GRID_2
        )
    _, total = coverage.not_tested(
        db_session=db, principal=worker, ref=rnd.code, region_code=NANGUAN_GRID
    )
    assert total == 3


def test_users_outside_the_round_see_nothing_of_it(db, known, principal):
    rnd, _, _ = known
    outsider = principal("analyst", "out")
    with pytest.raises(NotFound):
        coverage.view(db_session=db, principal=outsider, ref=rnd.code)
    with pytest.raises(NotFound):
        coverage.round_status(db_session=db, principal=outsider, ref=rnd.code)
    with pytest.raises(Forbidden):
        coverage.screened(
            db_session=db, principal=outsider, region_code="220100", day=date(2022, 3, 25)
        )


def test_a_province_round_shows_an_outside_user_only_their_city(db, principal):
    resident(db)
    resident(db, CHANGYI_GRID)
    rnd = open_round(db, code="R-COV-PROV2", region="220000")
    outsider = principal("analyst", "out")
    view = coverage.view(db_session=db, principal=outsider, ref=rnd.code)
    assert view.region.code == "220200"
    assert view.region.required == 1
    status = coverage.round_status(db_session=db, principal=outsider, ref=rnd.code)
    assert [c.code for c in status.cities] == ["220200"]


# The API ------------------------------------------------------------------------------------------


def test_the_api_serves_coverage_status_list_and_screening(client, headers, known):
    rnd, _, _ = known
    h = headers("analyst")
    view = client.get(f"/api/v1/rounds/{rnd.code}/coverage", headers=h)
    assert view.status_code == 200, view.text
    body = view.json()
    assert (body["region"]["code"], body["region"]["required"]) == ("220100", 8)
    assert len(body["rows"]) == 11
    status = client.get(f"/api/v1/rounds/{rnd.id}/status", headers=h)
    assert status.status_code == 200
    assert status.json()["cities"][0]["code"] == "220100"
    listed = client.get(
        f"/api/v1/rounds/{rnd.code}/not-tested",
        params={"region": NANGUAN_GRID},
        headers=headers("grid_worker", "grid_worker_grid"),
    )
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["total"] == 3
    assert all(p["masked"] and p["birth_date"] is None for p in page["items"])
    screening = client.get(
        "/api/v1/screening", params={"region": "220100", "day": "2022-03-25"}, headers=h
    )
    assert screening.status_code == 200
    assert screening.json() == {
        "region_code": "220100",
        "day": "2022-03-25",
        "screened": 5,
        "cumulative": 5,
    }


@pytest.mark.parametrize(
    ("who", "path", "params", "status"),
    [
        (("grid_worker", "grid_worker_grid"), "not-tested", {"region": NANGUAN_GRID_2}, 403),
        (("grid_worker", "grid_worker_grid"), "coverage", {"region": NANGUAN_COMMUNITY}, 403),
        (("analyst", "out"), "coverage", {}, 404),
        (("analyst", "out"), "not-tested", {"region": NANGUAN_GRID}, 404),
        (("lab", "in"), "not-tested", {"region": NANGUAN_GRID}, 403),
        (("resident", "in"), "coverage", {}, 403),
    ],
)
def test_the_api_refuses_what_a_user_may_not_see(client, headers, known, who, path, params, status):
    rnd, _, _ = known
    response = client.get(f"/api/v1/rounds/{rnd.code}/{path}", params=params, headers=headers(*who))
    assert response.status_code == status, response.text


def test_the_api_needs_a_login(client, known):
    rnd, _, _ = known
    assert client.get(f"/api/v1/rounds/{rnd.code}/coverage").status_code == 401


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/rounds/%00/coverage", {}),
        ("/api/v1/rounds/99999999999999999999/coverage", {}),
        ("/api/v1/rounds/2147483648/status", {}),
        ("/api/v1/rounds/%C2%B2/coverage", {}),
        ("/api/v1/rounds/latest/coverage", {"region": "abc"}),
        ("/api/v1/rounds/latest/coverage", {"region": "2201'--"}),
        ("/api/v1/rounds/latest/coverage", {"region": "\x00"}),
        ("/api/v1/rounds/latest/coverage", {"region": "1" * 200}),
        ("/api/v1/rounds/latest/coverage", {"region": "999999"}),
        ("/api/v1/rounds/latest/not-tested", {}),
        ("/api/v1/rounds/latest/not-tested", {"region": NANGUAN_GRID, "limit": "0"}),
        ("/api/v1/rounds/latest/not-tested", {"region": NANGUAN_GRID, "offset": "-1"}),
        ("/api/v1/rounds/latest/not-tested", {"region": NANGUAN_GRID, "limit": "x"}),
        ("/api/v1/rounds/latest/not-tested", {"region": "220100"}),
        ("/api/v1/screening", {"region": "220100", "day": "2022-02-30"}),
        ("/api/v1/screening", {"region": "220100", "day": "9999-12-31"}),
        ("/api/v1/screening", {"region": "220100", "day": "0001-01-01"}),
        ("/api/v1/screening", {"region": "220100"}),
        ("/api/v1/screening", {"region": "%", "day": "2022-03-25"}),
    ],
)
def test_no_input_makes_a_server_error(client, headers, known, path, params):
    response = client.get(path, params=params, headers=headers("admin"))
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")


# The command line ---------------------------------------------------------------------------------


def test_round_status_prints_a_table_by_city_and_rebuild_coverage_repairs(cli_env, monkeypatch):
    from typer.testing import CliRunner

    from bastion.cli.main import app

    monkeypatch.setenv("COLUMNS", "200")  # Rich reads it when it prints
    from bastion.core.db import transaction
    from bastion.regions.models import Region

    with transaction() as session:
        region_service.load_base_regions(db_session=session)
        for code, parent, level in (
            (NANGUAN_STREET, "220102", "street"),
            (NANGUAN_COMMUNITY, NANGUAN_STREET, "community"),
            (NANGUAN_GRID, NANGUAN_COMMUNITY, "grid"),
        ):
            session.add(
                Region(code=code, parent_code=parent, level=level, name_zh=code, name_en=code)
            )
        session.flush()
        for _ in range(3):
            resident(session)
        rnd = open_round(session, code="R-CLI-1")
        session.execute(
            RoundCoverage.__table__.update()
            .where(RoundCoverage.round_id == rnd.id)
            .values(required=99)
        )
    runner = CliRunner()
    broken = runner.invoke(app, ["testing", "round-status", "latest"])
    assert broken.exit_code == 0, broken.output
    assert "99" in broken.output
    repaired = runner.invoke(app, ["testing", "rebuild-coverage", "R-CLI-1"])
    assert repaired.exit_code == 0, repaired.output
    shown = runner.invoke(app, ["testing", "round-status", "R-CLI-1"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "长春市 Changchun" in text
    assert "99" not in text
    assert "late" in text  # frozen after the deadline, nobody sampled
    unknown = runner.invoke(app, ["testing", "round-status", "R-NOPE"])
    assert unknown.exit_code == 1
    assert "No round 'R-NOPE'" in " ".join(unknown.output.split())


def test_taking_the_snapshot_again_changes_nothing_sampled(db):
    people = [resident(db) for _ in range(3)]
    rnd = open_round(db)
    scan(db, rnd, factories.site(db), "TC00000071", people[:2], at=START + timedelta(hours=1))
    before = counters(db, rnd.id)
    coverage.snapshot_required(db_session=db, round_id=rnd.id)
    assert counters(db, rnd.id) == before == {NANGUAN_GRID: (3, 2, 2, 2, 0, 0, 0)}


def test_a_newcomer_registered_during_the_round_is_required_too(db):
    # Registered after the round opened: the opening snapshot could not count them, so they are
    # counted when registered, and coverage never passes 100%.
    before = [resident(db) for _ in range(2)]
    rnd = open_round(db)
    newcomer = resident(db)
    site = factories.site(db)
    scan(db, rnd, site, "TC00000091", [*before, newcomer], at=START + timedelta(hours=1))
    required, sampled, sampled_required = counters(db, rnd.id)[NANGUAN_GRID][:3]
    assert (required, sampled, sampled_required) == (3, 3, 3)
    assert counters(db, rnd.id) == rebuilt(db, rnd.id)[0]


# People under isolation control or with an open case (ADR 0009) ----------------------------------


def _isolate(db, person, destination):
    """Place ``person`` as a close contact (centralised: pending, waiting for the transfer;
    home: active at once) through the isolation service; returns the placement id."""
    from bastion.isolation import service as isolation_service
    from bastion.isolation.needs import PlacementNeed

    report = isolation_service.place_needs(
        db_session=db,
        principal=system_principal(),
        needs=[
            PlacementNeed(
                person_id=person.id,
                region_code=person.region_code,
                reason="close_contact",
                source_type="contact",
                source_id=900_000 + person.id,
                destination=destination,
                starts_on=START.date(),
            )
        ],
    )
    [placement_id] = report.placement_ids
    assert placement_id is not None
    return placement_id


def _release_early(db, placement_id, **when):
    """Release a placement before its end (an authorised override)."""
    from bastion.isolation import service as isolation_service

    return isolation_service.release(
        db_session=db,
        principal=system_principal(),
        placement_id=placement_id,
        override_reason="提前解除",
        **when,
    )


def _open_case(db, person):
    from bastion.tracing import service as tracing_service
    from bastion.tracing.schemas import CaseCreate

    return tracing_service.create_case(
        db_session=db,
        principal=system_principal(),
        data=CaseCreate(
            person_id=person.id,
            classification="asymptomatic",
            reported_on=START.date(),
            found_by="community_screening",
        ),
    )


def _shown(db, rnd, region=NANGUAN_GRID):
    """What a grid worker sees: the grid's required / sampled_required / not-tested figures,
    the round's city total of required, and the ids on the not-tested list (which must agree
    with the figure)."""
    system = system_principal()
    grid = coverage.view(db_session=db, principal=system, ref=rnd.code, region_code=region).region
    status = coverage.round_status(db_session=db, principal=system, ref=rnd.code)
    page, total = coverage.not_tested(
        db_session=db, principal=system, ref=rnd.code, region_code=region, limit=500
    )
    assert total == len(page) == grid.not_tested
    return (
        (grid.required, grid.sampled_required, grid.not_tested),
        status.totals.required,
        {p.id for p in page},
    )


def test_people_in_isolation_or_with_an_open_case_are_neither_required_nor_listed(db):
    plain = [resident(db) for _ in range(2)]
    centralised, at_home, ill, sampled_first = (resident(db) for _ in range(4))
    _isolate(db, centralised, "centralised")  # pending: waiting for the transfer
    _isolate(db, at_home, "home")  # active at once
    _open_case(db, ill)
    rnd = open_round(db)
    scan(db, rnd, factories.site(db), "TC00000101", [sampled_first], at=START + timedelta(hours=1))
    # Placed after being sampled in the round: stays required and sampled (never above 100%).
    _isolate(db, sampled_first, "home")

    ids = {p.id for p in plain}
    assert _shown(db, rnd) == ((3, 1, 2), 3, ids)
    # The stored counters hold the rules' figure; the views take the excused away, so a
    # rebuild from the record still equals the incremental counters.
    assert counters(db, rnd.id) == {NANGUAN_GRID: (6, 1, 1, 1, 0, 0, 0)}
    assert counters(db, rnd.id) == rebuilt(db, rnd.id)[0]
    assert _shown(db, rnd) == ((3, 1, 2), 3, ids)


def test_a_person_released_or_discharged_mid_round_is_required_again(db):
    from bastion.tracing import service as tracing_service

    plain = resident(db)
    at_home, ill = resident(db), resident(db)
    placement_id = _isolate(db, at_home, "home")
    case = _open_case(db, ill)
    rnd = open_round(db)
    assert _shown(db, rnd) == ((1, 0, 1), 1, {plain.id})

    # Released early (authorised override): a close contact moves into home health monitoring,
    # which has test days of its own, so still not required.
    released = _release_early(db, placement_id, on=START.date())
    assert released.monitoring is not None
    assert released.monitoring.status == "active"
    assert _shown(db, rnd) == ((1, 0, 1), 1, {plain.id})
    # The monitoring ended too: on the list again at once.
    _release_early(db, released.monitoring.id)
    assert _shown(db, rnd) == ((2, 0, 2), 2, {plain.id, at_home.id})

    # The case closed: required again too.
    tracing_service.close_case(
        db_session=db, principal=system_principal(), ref=case.id, action="release"
    )
    assert _shown(db, rnd) == ((3, 0, 3), 3, {plain.id, at_home.id, ill.id})
    assert counters(db, rnd.id) == rebuilt(db, rnd.id)[0]


def test_a_closed_round_keeps_the_excused_it_had_when_it_closed(db):
    # Who was under control when the round closed is written down then: the closed round's
    # figures and list stand still when people are released or placed afterwards (ADR 0009),
    # while an open round's move at once.

    plain, at_home, later, late_scan = (resident(db) for _ in range(4))
    placement_id = _isolate(db, at_home, "home")
    _isolate(db, late_scan, "home")
    closing = open_round(db, code="R-COV-CLOSE")
    still_open = open_round(db, code="R-COV-OPEN")
    site = factories.site(db)
    with clock.frozen(START + timedelta(hours=2)):
        closed = testing_service.close_round(
            db_session=db, principal=system_principal(), ref=closing.code
        )
    assert closed.excused_frozen_at is not None
    everyone = {plain.id, later.id}
    assert _shown(db, closed) == ((2, 0, 2), 2, everyone)

    # Released for good, and someone else placed, after the close.
    released = _release_early(db, placement_id, on=START.date())
    if released.monitoring is not None:
        _release_early(db, released.monitoring.id)
    _isolate(db, later, "centralised")
    assert _shown(db, closed) == ((2, 0, 2), 2, everyone)  # as it was when it closed
    assert _shown(db, still_open) == ((2, 0, 2), 2, {plain.id, at_home.id})  # as of now

    # A scan made before the close arrives afterwards: the person was excused, now sampled.
    scan(db, closed, site, "TC00000150", [late_scan], at=START + timedelta(hours=1))
    assert _shown(db, closed) == ((3, 1, 2), 3, everyone)
    # Closing again is refused; the written-down people stay as they are.
    with pytest.raises(Conflict):
        testing_service.close_round(db_session=db, principal=system_principal(), ref=closed.code)
    assert _shown(db, closed) == ((3, 1, 2), 3, everyone)


def test_a_person_placed_mid_round_leaves_the_list_at_once(db):
    people = [resident(db) for _ in range(3)]
    rnd = open_round(db)
    assert _shown(db, rnd) == ((3, 0, 3), 3, {p.id for p in people})
    _isolate(db, people[0], "centralised")
    assert _shown(db, rnd) == ((2, 0, 2), 2, {p.id for p in people[1:]})
    # Exempt by the round's rules anyway: being isolated too takes nothing more away.
    baby = resident(db, born=date(2021, 5, 1))
    _isolate(db, baby, "home")
    exempting = open_round(db, code="R-COV-ISO-2", rules=RULES)
    assert _shown(db, exempting) == ((2, 0, 2), 2, {p.id for p in people[1:]})
