"""The flow from testing: a positive retest becomes a case, its contacts are expanded and
everyone is handed to isolation, in the upload's transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bastion.core import clock
from bastion.core.db import bulk_insert
from bastion.isolation.models import Placement
from bastion.testing import flows
from bastion.testing.results import ResultReport
from bastion.tracing.models import Case, Contact
from tests.support import factories
from tests.support import pool_factories as pf
from tests.support import testing_factories as tf
from tests.support.world import NANGUAN_GRID

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(at(10)):
        yield


def _edges(db, pairs):
    rows = []
    for a, b in pairs:
        rows += [(a, b, START.date(), "household"), (b, a, START.date(), "household")]
    bulk_insert(db, "exposure_edges", ["person_id", "other_id", "exposed_on", "setting"], rows)


def test_an_escalated_retest_becomes_a_case_with_contacts_placed(db, principal):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db, grids=[NANGUAN_GRID])
    lab = factories.lab(db)
    people = [factories.person(db) for _ in range(5)]
    housemate, colleague = factories.person(db), factories.person(db)
    _edges(db, [(people[0].id, housemate.id), (housemate.id, colleague.id)])
    pool = pf.tube(db, rnd, site, "TP00000001", people, at=at(1))
    pf.result_and_process(db, pool, "positive", at=at(6), lab=lab)
    retest = pf.retest(db, rnd, site, "TR00000001", people[0], at=at(8))
    summary = pf.result_and_process(db, retest, "positive", at=at(10), lab=lab)
    assert summary.escalated == [people[0].id]

    report = ResultReport(pool_summaries=[summary])
    outcome = flows.cases_and_contacts_from_results(
        db_session=db, principal=principal("lab"), report=report
    )
    [case] = db.execute(select(Case).where(Case.person_id == people[0].id)).scalars()
    assert outcome.case_ids == [case.id]
    assert (case.classification, case.found_by, case.sampled_on) == (
        "asymptomatic",
        "community_screening",
        START.date(),
    )
    assert case.source_task_id is not None
    levels = dict(
        db.execute(select(Contact.person_id, Contact.level).where(Contact.case_id == case.id)).all()
    )
    assert levels == {housemate.id: "close", colleague.id: "secondary"}
    placed = db.execute(select(Placement.reason, func.count()).group_by(Placement.reason)).all()
    assert dict(placed) == {"case": 1, "close_contact": 1, "secondary_contact": 1}

    # The same results again change nothing.
    again = flows.cases_and_contacts_from_results(
        db_session=db, principal=principal("lab"), report=report
    )
    assert again.case_ids == []
    assert db.execute(select(func.count()).select_from(Case)).scalar_one() == 1


def test_a_retest_uploaded_by_the_lab_opens_the_case_in_the_same_transaction(db, principal):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db, grids=[NANGUAN_GRID])
    lab = factories.lab(db)
    people = [factories.person(db) for _ in range(3)]
    pool = pf.tube(db, rnd, site, "TP00000002", people, at=at(1))
    pf.result_and_process(db, pool, "positive", at=at(6), lab=lab)
    pf.retest(db, rnd, site, "TR00000002", people[1], at=at(7))
    tf.packed(db, rnd, site, "BOX-R0001", ["TR00000002"], at=at(7.5))
    tf.received(db, "BOX-R0001", lab, counted=1, at=at(8))
    report = flows.upload_results(
        db_session=db,
        principal=principal("lab"),
        rows=[tf.row(lab, "TR00000002", "positive", ct_orf1ab=25.0, ct_n=26.0, tested_at=at(9))],
    )
    assert (report.accepted, report.refused) == (1, 0), report.problems
    [case] = db.execute(select(Case).where(Case.person_id == people[1].id)).scalars()
    assert report.tracing.case_ids == [case.id]
    assert (
        db.execute(
            select(func.count()).select_from(Placement).where(Placement.source_type == "case")
        ).scalar_one()
        == 1
    )


def test_a_pcr_after_a_positive_antigen_test_is_a_case_found_by_antigen(db, principal):
    from bastion.testing import antigen

    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db, grids=[NANGUAN_GRID])
    lab = factories.lab(db)
    person = factories.person(db)
    with clock.frozen(at(2)):
        antigen.report_antigen(
            db_session=db,
            principal=principal("grid_worker"),
            data=antigen.AntigenReportIn(person_id=person.id, result="positive", tested_at=at(1)),
        )
    retest = pf.retest(db, rnd, site, "TR00000003", person, at=at(4))
    summary = pf.result_and_process(db, retest, "positive", at=at(10), lab=lab)
    assert summary.escalated == [person.id]
    outcome = flows.cases_and_contacts_from_results(
        db_session=db, principal=principal("lab"), report=ResultReport(pool_summaries=[summary])
    )
    [case] = db.execute(select(Case).where(Case.id.in_(outcome.case_ids))).scalars()
    assert (case.person_id, case.found_by) == (person.id, "antigen")
