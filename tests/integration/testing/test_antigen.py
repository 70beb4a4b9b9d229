"""Antigen self-tests: who may report them, what is refused, and how a positive one sends the
person to a PCR test — through the service and the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bastion.accounts.models import User
from bastion.core import clock
from bastion.core.errors import Forbidden, InvalidInput, NotFound
from bastion.testing import antigen
from bastion.testing.antigen import AntigenReportIn
from bastion.testing.models import AntigenReport, RetestTask
from tests.support import factories
from tests.support import pool_factories as pf
from tests.support.world import NANGUAN_GRID, NANGUAN_GRID_2

NOW = datetime(2022, 3, 25, 8, 0, tzinfo=UTC)
TESTED = NOW - timedelta(hours=1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def resident(db, cast, principal):
    """A resident user linked to a registered person in grid 1; returns (principal, person)."""
    person = factories.person(db, region_code=NANGUAN_GRID)
    user = db.get(User, cast.ids[("resident", "in")])
    user.person_id = person.id
    db.flush()
    return principal("resident"), person


def report(db, who, *, person_id=None, result="positive", tested_at=TESTED):
    return antigen.report_antigen(
        db_session=db,
        principal=who,
        data=AntigenReportIn(person_id=person_id, result=result, tested_at=tested_at),
    )


def count(db, model):
    return db.execute(select(func.count()).select_from(model)).scalar_one()


def test_a_positive_antigen_creates_a_pcr_task_due_within_twelve_hours(db, resident):
    who, person = resident
    outcome = report(db, who)
    assert outcome.created
    assert outcome.task_created
    saved = outcome.report
    assert (saved.person_id, saved.result, saved.tested_at, saved.region_code) == (
        person.id,
        "positive",
        TESTED,
        NANGUAN_GRID,
    )
    task = outcome.task
    assert (task.reason, task.antigen_id, task.state, task.region_code) == (
        "antigen",
        saved.id,
        "pending",
        NANGUAN_GRID,
    )
    assert task.due_at == NOW + timedelta(hours=12)


def test_a_negative_or_invalid_antigen_is_recorded_without_a_task(db, resident):
    who, _ = resident
    assert report(db, who, result="negative").task is None
    assert report(db, who, result="INVALID", tested_at=TESTED - timedelta(hours=1)).task is None
    assert count(db, AntigenReport) == 2
    assert count(db, RetestTask) == 0


def test_the_same_report_sent_twice_is_recorded_once(db, resident):
    who, _ = resident
    first = report(db, who)
    again = report(db, who)
    assert not again.created
    assert again.report.id == first.report.id
    assert again.task.id == first.task.id
    assert count(db, AntigenReport) == count(db, RetestTask) == 1


def test_someone_already_owing_a_retest_gets_no_second_task(db, resident):
    who, _ = resident
    first = report(db, who)
    later = report(db, who, tested_at=TESTED + timedelta(minutes=30))
    assert later.created
    assert not later.task_created
    assert later.task.id == first.task.id
    assert count(db, RetestTask) == 1


def test_a_task_of_a_withdrawn_hold_does_not_count_as_owed(db, resident):
    who, person = resident
    rnd = factories.round_(db, starts_at=NOW - timedelta(hours=6))
    site = factories.site(db)
    pool = pf.tube(db, rnd, site, "TW00000001", [person], at=NOW - timedelta(hours=5), capacity=5)
    pf.result_and_process(db, pool, "positive", at=NOW - timedelta(hours=3))
    pool.result = "negative"
    db.flush()
    pf.process(db, pool, at=NOW - timedelta(hours=2))
    outcome = report(db, who)
    assert outcome.task_created
    assert outcome.task.reason == "antigen"


def test_a_grid_worker_reports_for_someone_in_their_grid(db, principal):
    neighbour = factories.person(db, region_code=NANGUAN_GRID)
    worker = principal("grid_worker", "grid_worker_grid")
    outcome = report(db, worker, person_id=neighbour.id)
    assert outcome.report.reporter_id == worker.user_id
    assert outcome.task.person_id == neighbour.id


def test_an_offsetless_time_is_read_in_local_time(db, resident):
    who, _ = resident
    local = clock.to_local(TESTED).replace(tzinfo=None)
    assert report(db, who, tested_at=local).report.tested_at == TESTED


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"tested_at": NOW + timedelta(hours=1)}, "tested_at", "antigen.in_future"),
        ({"tested_at": NOW - timedelta(days=8)}, "tested_at", "antigen.too_old"),
        ({"result": "maybe"}, "result", "antigen.bad_result"),
    ],
)
def test_bad_reports_are_refused_naming_the_field(db, resident, change, field, reason):
    who, _ = resident
    with pytest.raises(InvalidInput) as err:
        report(db, who, **change)
    assert [(p.field, p.reason) for p in err.value.problems] == [(field, reason)]
    assert count(db, AntigenReport) == 0


def test_a_grid_worker_cannot_report_for_someone_outside_their_grid(db, principal):
    stranger = factories.person(db, region_code=NANGUAN_GRID_2)
    with pytest.raises(NotFound) as err:
        report(db, principal("grid_worker", "grid_worker_grid"), person_id=stranger.id)
    assert err.value.problems[0].field == "person_id"
    with pytest.raises(NotFound):
        report(db, principal("grid_worker", "grid_worker_grid"), person_id=10**12)


def test_a_resident_cannot_report_for_someone_else(db, resident):
    who, _ = resident
    other = factories.person(db, region_code=NANGUAN_GRID)
    with pytest.raises(Forbidden) as err:
        report(db, who, person_id=other.id)
    assert err.value.problems[0].field == "person_id"


def test_an_account_without_a_person_must_name_one(db, principal):
    with pytest.raises(InvalidInput) as err:
        report(db, principal("grid_worker"))
    assert err.value.problems[0].field == "person_id"


def test_roles_without_the_permission_are_refused(db, principal):
    person = factories.person(db)
    with pytest.raises(Forbidden):
        report(db, principal("analyst"), person_id=person.id)


def test_the_pcr_retest_closes_the_antigen_task(db, resident):
    who, person = resident
    task = report(db, who).task
    rnd = factories.round_(db, starts_at=NOW - timedelta(hours=6))
    site = factories.site(db)
    tube = pf.retest(db, rnd, site, "RA00000001", person, at=NOW + timedelta(hours=1))
    summary = pf.result_and_process(
        db, tube, "negative", at=NOW + timedelta(hours=4), lab=factories.lab(db)
    )
    db.refresh(task)
    assert (task.state, task.tube_id) == ("negative", tube.id)
    assert summary.released == [person.id]


# API -----------------------------------------------------------------------------------------


def test_a_resident_reports_through_the_api_and_a_resend_changes_nothing(client, headers, resident):
    _, person = resident
    h = headers("resident")
    body = {"result": "positive", "tested_at": TESTED.isoformat()}
    first = client.post("/api/v1/antigen-reports", json=body, headers=h)
    assert first.status_code == 201, first.text
    assert first.json()["person_id"] == person.id
    assert first.json()["task"]["reason"] == "antigen"
    again = client.post("/api/v1/antigen-reports", json=body, headers=h)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert not again.json()["created"]
    mine = client.get("/api/v1/antigen-reports/mine", headers=h)
    assert [r["id"] for r in mine.json()] == [first.json()["id"]]
    [listed] = mine.json()
    assert listed["created"] is False
    assert listed["task"]["id"] == first.json()["task"]["id"]  # the PCR task it set
    tasks = client.get("/api/v1/retests/mine", headers=h).json()
    assert [t["reason"] for t in tasks] == ["antigen"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"result": "positive", "tested_at": "2022-03-26T08:00:00+08:00"}, 422, "tested_at"),
        ({"result": "positive", "tested_at": "yesterday"}, 422, "tested_at"),
        ({"result": "positive", "tested_at": "0001-01-01T00:00:00+08:00"}, 422, "tested_at"),
        ({"result": "positive", "tested_at": "9999-12-31T23:59:59-08:00"}, 422, "tested_at"),
        ({"result": "purple", "tested_at": "2022-03-25T15:00:00+08:00"}, 422, "result"),
        ({"tested_at": "2022-03-25T15:00:00+08:00"}, 422, "result"),
        (
            {"result": "positive", "tested_at": "2022-03-25T15:00:00+08:00", "person_id": 10**30},
            422,
            "person_id",
        ),
        ({"result": "x" * 1000, "tested_at": "2022-03-25T15:00:00+08:00"}, 422, "result"),
    ],
)
def test_the_api_refuses_bad_reports_naming_the_field(
    client, headers, resident, body, status, field
):
    response = client.post("/api/v1/antigen-reports", json=body, headers=headers("resident"))
    assert response.status_code == status, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


def test_the_api_refuses_a_resident_reporting_for_someone_else(client, db, headers, resident):
    other = factories.person(db, region_code=NANGUAN_GRID)
    body = {"result": "positive", "tested_at": TESTED.isoformat(), "person_id": other.id}
    response = client.post("/api/v1/antigen-reports", json=body, headers=headers("resident"))
    assert response.status_code == 403
    assert response.json()["errors"][0]["field"] == "person_id"


def test_the_api_refuses_a_body_that_is_not_json(client, headers, resident):
    response = client.post(
        "/api/v1/antigen-reports",
        content=b"\xff\xfe not json",
        headers={**headers("resident"), "Content-Type": "application/json"},
    )
    # Undecodable bytes are refused by the framework before any field is read.
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_grid_worker_reports_through_the_api_only_inside_their_grid(client, db, headers):
    inside = factories.person(db, region_code=NANGUAN_GRID)
    outside = factories.person(db, region_code=NANGUAN_GRID_2)
    h = headers("grid_worker", "grid_worker_grid")
    body = {"result": "negative", "tested_at": TESTED.isoformat()}
    ok = client.post("/api/v1/antigen-reports", json={**body, "person_id": inside.id}, headers=h)
    assert ok.status_code == 201, ok.text
    refused = client.post(
        "/api/v1/antigen-reports", json={**body, "person_id": outside.id}, headers=h
    )
    assert refused.status_code == 404
    assert refused.json()["errors"][0]["field"] == "person_id"
