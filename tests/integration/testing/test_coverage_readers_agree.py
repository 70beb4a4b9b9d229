"""Every reader of a round's required figure shows the isolation-aware one (ADR 0009): the
coverage view at every level, the round status, the bulletin's round section and the
simulator's summary agree on a round with people under isolation control, an open case, and
people placed at a new home since the snapshot."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bastion.bulletin import service as bulletin_service
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.isolation import service as isolation_service
from bastion.isolation.needs import PlacementNeed
from bastion.registry.models import Person
from bastion.simulate.round import summarise
from bastion.testing import coverage
from bastion.testing import service as testing_service
from bastion.testing.ingest import RawScan, ingest_scans
from bastion.testing.schemas import RoundCreate
from bastion.tracing import service as tracing_service
from bastion.tracing.schemas import CaseCreate
from tests.support import factories
from tests.support.world import NANGUAN_COMMUNITY, NANGUAN_GRID, NANGUAN_GRID_2, NANGUAN_STREET

SYSTEM = system_principal()
#: 08:00 on 25 March 2022 in Shanghai; the clock is two hours past the deadline.
START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
NOW = START + timedelta(hours=26)
DAY = date(2022, 3, 25)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _isolate(db, person: Person, destination: str) -> None:
    report = isolation_service.place_needs(
        db_session=db,
        principal=SYSTEM,
        needs=[
            PlacementNeed(
                person_id=person.id,
                region_code=person.region_code,
                reason="close_contact",
                source_type="contact",
                source_id=700_000 + person.id,
                destination=destination,
                starts_on=DAY,
            )
        ],
    )
    assert report.created == 1


def _scan(db, rnd, people, tube) -> None:
    site = factories.site(db, code=f"SITE-{tube}")
    report = ingest_scans(
        db_session=db,
        principal=SYSTEM,
        key=f"agree-{tube}",
        source="test",
        scans=[
            RawScan(
                row=i + 1,
                round=rnd.code,
                site=site.code,
                tube=tube,
                person=p.token,
                scanned_at=START + timedelta(hours=1, seconds=i),
            )
            for i, p in enumerate(people)
        ],
    )
    assert report.refused == 0


@pytest.fixture
def round_with_isolated(db):
    """Nanguan grid 1: 12 on the rules' count; 3 of them excused now (isolated at home,
    pending a transfer, an open case); 2 sampled, one placed after being sampled (stays
    required); 2 moved to grid 2 since the snapshot and placed there. Grid 2: 1 on the rules'
    count, 2 excused at their new home (the grid's figure stops at zero)."""
    grid_1 = [factories.person(db, region_code=NANGUAN_GRID) for _ in range(12)]
    grid_2 = factories.person(db, region_code=NANGUAN_GRID_2)
    rnd = testing_service.create_round(
        db_session=db,
        principal=SYSTEM,
        data=RoundCreate(
            code="R-AGREE", name="Round R-AGREE", region_code="220100", starts_at=START
        ),
    )
    coverage.snapshot_required(db_session=db, round_id=rnd.id)
    plain, sampled = grid_1[:5], grid_1[5:7]
    at_home, pending, ill = grid_1[7:10]
    moved = grid_1[10:]
    _scan(db, rnd, sampled, "TA00000001")
    _isolate(db, sampled[0], "home")
    _isolate(db, at_home, "home")
    _isolate(db, pending, "centralised")
    tracing_service.create_case(
        db_session=db,
        principal=SYSTEM,
        data=CaseCreate(
            person_id=ill.id,
            classification="asymptomatic",
            reported_on=DAY,
            found_by="community_screening",
        ),
    )
    for person in moved:
        person.region_code = NANGUAN_GRID_2
        db.flush()
        _isolate(db, person, "home")
    return rnd, plain, grid_2


def test_views_bulletin_and_simulator_show_the_same_required_figure(db, round_with_isolated):
    rnd, _, _ = round_with_isolated

    def view(code):
        got = coverage.view(db_session=db, principal=SYSTEM, ref=rnd.code, region_code=code)
        return got.region

    grids = [view(NANGUAN_GRID), view(NANGUAN_GRID_2)]
    assert [g.required for g in grids] == [9, 0]
    assert [g.sampled_required for g in grids] == [2, 0]
    # Every level rolls up the same grids to the same figure.
    levels = [view(code) for code in (NANGUAN_COMMUNITY, NANGUAN_STREET, "220102", "220100")]
    assert {(r.required, r.sampled_required, r.not_tested) for r in levels} == {(9, 2, 7)}
    status = coverage.round_status(db_session=db, principal=SYSTEM, ref=rnd.code)
    assert (status.totals.required, status.totals.on_time) == (9, 2)

    for place in ("220100", "220000"):
        sections = bulletin_service.get(
            db_session=db, principal=SYSTEM, day=DAY, region_code=place
        ).figures.sections
        [progress] = sections["rounds"]["rounds"]
        assert progress["code"] == rnd.code
        assert (progress["required"], progress["sampled_required"]) == (9, 2)
        assert progress["coverage"] == levels[-1].coverage == round(2 / 9, 4)

    summary = summarise(db_session=db, rnd=rnd, seed=0, prevalence=0.0)
    assert (summary.required, summary.sampled, summary.sampled_on_time) == (9, 2, 2)
    assert coverage.figures(db_session=db, rnd=rnd).required == 9


def test_a_release_brings_the_person_back_into_every_figure(db, round_with_isolated):
    rnd, plain, _ = round_with_isolated
    case = tracing_service.create_case(
        db_session=db,
        principal=SYSTEM,
        data=CaseCreate(
            person_id=plain[0].id,
            classification="asymptomatic",
            reported_on=DAY,
            found_by="community_screening",
        ),
    )

    def figures():
        city = coverage.view(db_session=db, principal=SYSTEM, ref=rnd.code).region.required
        status = coverage.round_status(db_session=db, principal=SYSTEM, ref=rnd.code)
        sections = bulletin_service.get(
            db_session=db, principal=SYSTEM, day=DAY, region_code="220100"
        ).figures.sections
        bulletin = sections["rounds"]["rounds"][0]["required"]
        simulator = summarise(db_session=db, rnd=rnd, seed=0, prevalence=0.0).required
        return city, status.totals.required, bulletin, simulator

    assert figures() == (8, 8, 8, 8)
    tracing_service.close_case(db_session=db, principal=SYSTEM, ref=case.id, action="release")
    assert figures() == (9, 9, 9, 9)
