"""The round → results → recompute → code flow, and the testing and zone sources."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.healthcode import store
from bastion.healthcode.models import CodeStatus
from bastion.regions import service as region_service
from bastion.testing import antigen
from tests.support import factories
from tests.support import pool_factories as pf
from tests.support.world import NANGUAN_GRID

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def colour(db: Session, person_id: int) -> tuple[str, str | None, str | None]:
    s = db.get(CodeStatus, person_id)
    return ("green", None, None) if s is None else (s.colour, s.rule.split(":")[1], s.popup)


@pytest.fixture
def world(db: Session):  # type: ignore[no-untyped-def]
    with clock.frozen(START):
        rnd = factories.round_(db, starts_at=START)
        site = factories.site(db)
        lab = factories.lab(db)
        people = [factories.person(db) for _ in range(6)]
    return rnd, site, lab, people


def test_positive_pool_holds_yellow_with_popup_until_own_retest(db: Session, world) -> None:  # type: ignore[no-untyped-def]
    rnd, site, lab, people = world
    tube = pf.tube(db, rnd, site, "TP00000001", people[:5], at=at(1))
    pf.result_and_process(db, tube, "positive", at=at(6), lab=lab)
    with clock.frozen(at(6)):
        result = store.recompute_region(db_session=db, region_code="220100")
    assert result.changed == 5
    assert colour(db, people[0].id) == ("yellow", "pool_hold", "pool_hold")
    assert colour(db, people[5].id) == ("green", None, None)
    retest = pf.retest(db, rnd, site, "TR00000001", people[0], at=at(8))
    pf.result_and_process(db, retest, "negative", at=at(10), lab=lab)
    with clock.frozen(at(10)):
        store.recompute_people(db_session=db, person_ids=[p.id for p in people])
    assert colour(db, people[0].id) == ("green", "default", None)
    assert colour(db, people[1].id)[0] == "yellow"


def test_missed_required_round_test_is_yellow_after_the_deadline(db: Session, world) -> None:  # type: ignore[no-untyped-def]
    rnd, site, lab, people = world
    tube = pf.tube(db, rnd, site, "TP00000002", people[:5], at=at(1))
    pf.result_and_process(db, tube, "negative", at=at(6), lab=lab)
    with clock.frozen(at(6)):
        assert store.recompute_region(db_session=db, region_code="220100").changed == 0
    after = rnd.deadline_at + timedelta(hours=1)
    with clock.frozen(after):
        store.recompute_region(db_session=db, region_code="220100")
    assert colour(db, people[5].id) == ("yellow", "missed_round_test", None)
    assert colour(db, people[0].id)[0] == "green"
    # Tested late: the missed test no longer counts.
    pf.tube(db, rnd, site, "TP00000003", [people[5]], at=after + timedelta(minutes=5))
    with clock.frozen(after + timedelta(hours=1)):
        store.recompute_people(db_session=db, person_ids=[people[5].id])
    assert colour(db, people[5].id)[0] == "green"


def test_zone_needs_a_negative_test_within_the_window(db: Session, world) -> None:  # type: ignore[no-untyped-def]
    rnd, site, lab, people = world
    tube = pf.tube(db, rnd, site, "TP00000004", people[:3], at=at(1))
    pf.result_and_process(db, tube, "negative", at=at(6), lab=lab)
    region_service.designate_zone(
        db_session=db,
        principal=system_principal(),
        region_code=NANGUAN_GRID,
        kind="control",
        starts_on=date(2022, 3, 25),
        reason="test",
    )
    ids = [p.id for p in people]
    with clock.frozen(at(7)):
        store.recompute_people(db_session=db, person_ids=ids)
    assert colour(db, people[0].id)[0] == "green"
    assert colour(db, people[4].id) == ("yellow", "zone_no_test", None)
    # The 24 h window (jilin-2022-03) is measured from sampling time: 1 h + 24 h.
    with clock.frozen(at(25) + timedelta(minutes=1)):
        store.recompute_people(db_session=db, person_ids=ids)
    assert colour(db, people[0].id)[1] == "zone_no_test"


def test_positive_antigen_is_yellow_with_popup(db: Session, world, principal) -> None:  # type: ignore[no-untyped-def]
    _, _, _, people = world
    with clock.frozen(at(3)):
        antigen.report_antigen(
            db_session=db,
            principal=principal("grid_worker"),
            data=antigen.AntigenReportIn(
                person_id=people[0].id, result="positive", tested_at=at(2)
            ),
        )
        store.recompute_people(db_session=db, person_ids=[people[0].id])
    assert colour(db, people[0].id) == ("yellow", "antigen_positive", "antigen")


def test_round_results_flow_recompute_code_end_to_end(db: Session, principal) -> None:  # type: ignore[no-untyped-def]
    """A positive pool holds its members yellow; one member's retest is positive: a case (red),
    their housemate a close contact (red), the others released by their negative retests."""
    from bastion.core.db import bulk_insert
    from bastion.testing import flows
    from bastion.testing.results import ResultReport

    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    lab = factories.lab(db)
    people = [factories.person(db) for _ in range(4)]
    housemate = factories.person(db)
    rows = [(people[0].id, housemate.id), (housemate.id, people[0].id)]
    bulk_insert(
        db,
        "exposure_edges",
        ["person_id", "other_id", "exposed_on", "setting"],
        [(a, b, START.date(), "household") for a, b in rows],
    )
    pool = pf.tube(db, rnd, site, "TP00000009", people, at=at(1))
    summary = pf.result_and_process(db, pool, "positive", at=at(6), lab=lab)
    with clock.frozen(at(6)):
        store.recompute_after_results(db_session=db, report=ResultReport(pool_summaries=[summary]))
    assert {colour(db, p.id) for p in people} == {("yellow", "pool_hold", "pool_hold")}

    retests = [pf.retest(db, rnd, site, f"TR0000001{i}", p, at=at(8)) for i, p in enumerate(people)]
    pf.result(db, retests[:1], "positive", at=at(10), lab=lab)
    pf.result(db, retests[1:], "negative", at=at(10), lab=lab)
    summary = pf.process(db, *retests, at=at(10))
    with clock.frozen(at(10)):
        report = ResultReport(pool_summaries=[summary])
        report.tracing = flows.cases_and_contacts_from_results(  # type: ignore[attr-defined]
            db_session=db, principal=principal("lab"), report=report
        )
        result = store.recompute_after_results(db_session=db, report=report)
    assert result is not None
    assert colour(db, people[0].id) == ("red", "case", "case")
    assert colour(db, housemate.id)[:2] == ("red", "close_contact")
    assert colour(db, people[1].id) == ("green", "default", None)


def test_a_results_upload_recomputes_the_codes_it_touches(db: Session, principal) -> None:  # type: ignore[no-untyped-def]
    from bastion.testing import flows
    from tests.support import testing_factories as tf

    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    lab = factories.lab(db)
    people = [factories.person(db) for _ in range(3)]
    bystander = factories.person(db)
    pf.tube(db, rnd, site, "TP00000020", people, at=at(1))
    tf.packed(db, rnd, site, "BOX-HC001", ["TP00000020"], at=at(2))
    tf.received(db, "BOX-HC001", lab, counted=1, at=at(3))
    with clock.frozen(at(6)):
        report = flows.upload_results(
            db_session=db,
            principal=principal("lab"),
            rows=[
                tf.row(lab, "TP00000020", "positive", ct_orf1ab=25.0, ct_n=26.0, tested_at=at(5))
            ],
        )
    assert (report.accepted, report.refused) == (1, 0), report.problems
    assert {colour(db, p.id) for p in people} == {("yellow", "pool_hold", "pool_hold")}
    assert colour(db, bystander.id)[0] == "green"
