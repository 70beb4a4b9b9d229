"""Positive pools: holding everyone at once, sending each to a retest in their grid, and
closing the loop person by person — through the service and the API."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Forbidden, InvalidInput, NotFound
from bastion.testing import ingest, pools
from bastion.testing.ingest import RawScan
from bastion.testing.models import PoolHold, RetestTask
from tests.support import factories
from tests.support import pool_factories as pf
from tests.support.world import NANGUAN_GRID, NANGUAN_GRID_2

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


RESULTS_AT = at(6)
RETEST_AT = at(8)
RETEST_RESULTS_AT = at(10)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(RESULTS_AT):
        yield


@pytest.fixture
def world(db):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db, grids=[NANGUAN_GRID, NANGUAN_GRID_2])
    lab = factories.lab(db)
    people = [
        factories.person(db, region_code=NANGUAN_GRID if i % 2 else NANGUAN_GRID_2)
        for i in range(12)
    ]
    return rnd, site, lab, people


@pytest.fixture
def positive_pool(db, world):
    """A ten-person pool found positive and processed."""
    rnd, site, lab, people = world
    tube = pf.tube(db, rnd, site, "TP00000001", people[:10], at=at(1))
    summary = pf.result_and_process(db, tube, "positive", at=RESULTS_AT, lab=lab)
    return tube, people[:10], summary


def tasks_of(db, **where):
    stmt = select(RetestTask).order_by(RetestTask.id)
    for key, value in where.items():
        stmt = stmt.where(getattr(RetestTask, key) == value)
    return db.execute(stmt).scalars().all()


def count(db, model):
    return db.execute(select(func.count()).select_from(model)).scalar_one()


_barcodes = itertools.count(1)


def retest_all(db, world, members, results, *, scanned=RETEST_AT, result_at=RETEST_RESULTS_AT):
    """Retest ``members`` one tube each and land ``results`` (one per member)."""
    rnd, site, lab, _ = world
    tubes = [
        pf.retest(db, rnd, site, f"RT{next(_barcodes):08d}", m, at=scanned + timedelta(minutes=i))
        for i, m in enumerate(members)
    ]
    for t, value in zip(tubes, results, strict=True):
        pf.result(db, t, value, at=result_at, lab=lab)
    return tubes, pf.process(db, *tubes, at=result_at)


# Holding a positive pool ---------------------------------------------------------------------


def test_a_positive_ten_pool_holds_all_ten_at_once_with_a_retest_task_each_in_their_grid(
    db, world, positive_pool
):
    tube, members, summary = positive_pool
    _, _, lab, _ = world
    (hold,) = db.execute(select(PoolHold)).scalars().all()
    assert (hold.tube_id, hold.members, hold.lab_id, hold.region_code) == (
        tube.id,
        10,
        lab.id,
        tube.region_code,
    )
    assert hold.created_at == RESULTS_AT
    assert hold.closed_at is None
    assert hold.outcome is None
    tasks = tasks_of(db, hold_id=hold.id)
    assert sorted(t.person_id for t in tasks) == sorted(p.id for p in members)
    grids = {p.id: p.region_code for p in members}
    assert all(t.region_code == grids[t.person_id] for t in tasks)
    assert {t.region_code for t in tasks} == {NANGUAN_GRID, NANGUAN_GRID_2}
    assert all(
        (t.reason, t.state, t.due_at, t.round_id, t.source_tube_id)
        == ("positive_pool", "pending", RESULTS_AT + timedelta(hours=12), tube.round_id, tube.id)
        for t in tasks
    )
    assert (summary.holds_created, summary.tasks_created, summary.held) == (1, 10, 10)
    assert summary.hold_ids == [hold.id]
    assert summary.positive == summary.escalated == []


def test_processing_the_same_results_twice_creates_nothing_new(db, positive_pool):
    tube, _, first = positive_pool
    again = pf.process(db, tube, at=RESULTS_AT + timedelta(minutes=5))
    assert (again.holds_created, again.tasks_created) == (0, 0)
    assert again.hold_ids == first.hold_ids
    assert again.held == 10
    assert count(db, PoolHold) == 1
    assert count(db, RetestTask) == 10


def test_the_whole_held_group_is_visible_to_the_health_code_queries(db, world, positive_pool):
    _, members, summary = positive_pool
    _, _, _, people = world
    assert pools.held_person_ids(db_session=db) == {p.id for p in members}
    (hold,) = pools.holds_for_person(db_session=db, person_id=members[0].id)
    assert hold.id == summary.hold_ids[0]
    assert pools.holds_for_person(db_session=db, person_id=people[11].id) == []
    assert pools.held_person_ids(db_session=db, at=RESULTS_AT - timedelta(minutes=1)) == set()


def test_a_custom_retest_deadline_sets_the_due_time(db, world):
    rnd, site, lab, people = world
    tube = pf.tube(db, rnd, site, "TP00000002", people[:3], at=at(1))
    pf.result(db, tube, "positive", at=RESULTS_AT, lab=lab)
    pools.process_results(
        db_session=db,
        principal=system_principal(),
        tube_ids=[tube.id],
        retest_within=timedelta(hours=6),
    )
    assert {t.due_at for t in tasks_of(db)} == {RESULTS_AT + timedelta(hours=6)}


def test_many_positive_pools_are_held_in_one_call(db, world):
    rnd, site, lab, _ = world
    crowd = [factories.person(db) for _ in range(60)]
    tubes = [
        pf.tube(db, rnd, site, f"TM{n:08d}", crowd[n * 10 : n * 10 + 10], at=at(1))
        for n in range(6)
    ]
    negative = tubes.pop()
    pf.result(db, tubes, "positive", at=RESULTS_AT, lab=lab)
    pf.result(db, negative, "negative", at=RESULTS_AT, lab=lab)
    summary = pf.process(db, *tubes, negative, at=RESULTS_AT)
    assert (summary.tubes, summary.holds_created, summary.tasks_created) == (6, 5, 50)
    assert len(pools.held_person_ids(db_session=db)) == 50


def test_a_negative_pool_holds_no_one(db, world):
    rnd, site, lab, people = world
    tube = pf.tube(db, rnd, site, "TP00000003", people[:10], at=at(1))
    summary = pf.result_and_process(db, tube, "negative", at=RESULTS_AT, lab=lab)
    assert (summary.tubes, summary.holds_created, summary.tasks_created) == (1, 0, 0)
    assert count(db, PoolHold) == count(db, RetestTask) == 0


def test_tubes_without_a_result_or_unknown_ids_are_ignored(db, world):
    rnd, site, _, people = world
    tube = pf.tube(db, rnd, site, "TP00000004", people[:5], at=at(1))
    summary = pf.process(db, tube, at=RESULTS_AT)
    assert summary == pools.PoolsSummary()
    assert (
        pools.process_results(
            db_session=db, principal=system_principal(), tube_ids=[0, -3, 10**30, 987654321]
        )
        == pools.PoolsSummary()
    )


def test_processing_results_needs_the_permission_to_record_them(db, world, principal):
    rnd, site, lab, people = world
    tube = pf.tube(db, rnd, site, "TP00000005", people[:2], at=at(1))
    pf.result(db, tube, "positive", at=RESULTS_AT, lab=lab)
    with pytest.raises(Forbidden):
        pools.process_results(db_session=db, principal=principal("analyst"), tube_ids=[tube.id])
    with pytest.raises(InvalidInput) as err:
        pools.process_results(
            db_session=db,
            principal=principal("lab"),
            tube_ids=[tube.id],
            retest_within=timedelta(0),
        )
    assert err.value.problems[0].field == "retest_within"


# Single tubes and invalid results -------------------------------------------------------------


def test_a_positive_single_tube_lists_its_person_as_positive_without_a_hold(db, world):
    rnd, site, lab, people = world
    tube = pf.tube(db, rnd, site, "TS00000001", people[:1], at=at(1), kind="single")
    summary = pf.result_and_process(db, tube, "positive", at=RESULTS_AT, lab=lab)
    assert summary.positive == [people[0].id]
    assert (summary.holds_created, summary.tasks_created, summary.hold_ids) == (0, 0, [])
    assert count(db, PoolHold) == 0


def test_a_positive_household_tube_holds_its_members(db, world):
    rnd, site, lab, _ = world
    family = [factories.person(db, household="HH-POOL") for _ in range(3)]  # one household
    tube = pf.tube(db, rnd, site, "TH00000001", family, at=at(1), kind="household", capacity=5)
    summary = pf.result_and_process(db, tube, "positive", at=RESULTS_AT, lab=lab)
    assert (summary.holds_created, summary.held) == (1, 3)


def test_an_invalid_pooled_tube_sends_every_member_to_a_retest_without_a_hold(db, world):
    rnd, site, lab, people = world
    tube = pf.tube(db, rnd, site, "TI00000001", people[:5], at=at(1))
    summary = pf.result_and_process(db, tube, "invalid", at=RESULTS_AT, lab=lab)
    assert count(db, PoolHold) == 0
    tasks = tasks_of(db)
    assert sorted(t.person_id for t in tasks) == sorted(p.id for p in people[:5])
    assert {(t.reason, t.state, t.hold_id, t.source_tube_id) for t in tasks} == {
        ("invalid_result", "pending", None, tube.id)
    }
    assert summary.tasks_created == 5
    again = pf.process(db, tube, at=RESULTS_AT + timedelta(hours=1))
    assert again.tasks_created == 0
    assert count(db, RetestTask) == 5


def test_an_invalid_retest_keeps_the_task_open_with_a_new_deadline(db, world, positive_pool):
    _, members, _ = positive_pool
    person = members[0]
    (task,) = tasks_of(db, person_id=person.id)
    _, summary = retest_all(db, world, [person], ["invalid"])
    db.refresh(task)
    assert (task.state, task.tube_id, task.closed_at) == ("pending", None, None)
    assert task.due_at == RETEST_RESULTS_AT + timedelta(hours=12)
    assert (summary.tasks_reopened, summary.tasks_created) == (1, 0)
    assert len(tasks_of(db, person_id=person.id)) == 1
    # Processing the invalid retest again moves nothing.
    with clock.frozen(RETEST_RESULTS_AT + timedelta(hours=1)):
        again = pools.process_results(
            db_session=db, principal=system_principal(), tube_ids=[task.source_tube_id]
        )
    db.refresh(task)
    assert again.tasks_reopened == 0
    assert task.due_at == RETEST_RESULTS_AT + timedelta(hours=12)
    # A second, valid retest closes it.
    _, last = retest_all(db, world, [person], ["negative"], scanned=at(12), result_at=at(14))
    db.refresh(task)
    assert task.state == "negative"
    assert last.released == [person.id]


def test_an_invalid_retest_of_someone_owing_nothing_opens_an_invalid_result_task(db, world):
    _, _, _, people = world
    tubes, summary = retest_all(db, world, [people[11]], ["invalid"])
    (task,) = tasks_of(db, person_id=people[11].id)
    assert (task.reason, task.source_tube_id, task.state) == (
        "invalid_result",
        tubes[0].id,
        "pending",
    )
    again = pf.process(db, *tubes, at=RETEST_RESULTS_AT + timedelta(hours=1))
    assert (summary.tasks_created, again.tasks_created) == (1, 0)


# Releasing and escalating ----------------------------------------------------------------------


def test_a_retest_scan_marks_the_task_sampled(db, world, positive_pool):
    rnd, site, _, _ = world
    _, members, _ = positive_pool
    tube = pf.retest(db, rnd, site, "RS00000001", members[0], at=RETEST_AT)
    # The scan itself marked it (no one already swabbed stays on the list of retests owed);
    # the periodic sweep finds nothing left, and the other members still owe theirs.
    (task,) = tasks_of(db, person_id=members[0].id)
    assert (task.state, task.tube_id) == ("sampled", tube.id)
    assert pools.mark_retests_sampled(db_session=db, round_id=rnd.id) == 0
    assert {t.state for m in members[1:] for t in tasks_of(db, person_id=m.id)} == {"pending"}
    assert members[0].id in pools.held_person_ids(db_session=db)


def test_all_negative_retests_release_everyone_and_close_the_hold_as_reversed(
    db, world, positive_pool
):
    _, members, first = positive_pool
    _, _, lab, _ = world
    _, summary = retest_all(db, world, members, ["negative"] * 10)
    hold = db.get(PoolHold, first.hold_ids[0])
    db.refresh(hold)
    assert (hold.outcome, hold.closed_at) == ("reversed", RETEST_RESULTS_AT)
    assert summary.reversed_holds == [hold.id]
    assert summary.confirmed_holds == []
    assert sorted(summary.released) == sorted(p.id for p in members)
    assert summary.escalated == []
    assert summary.tasks_closed == 10
    assert {t.state for t in tasks_of(db, hold_id=hold.id)} == {"negative"}
    assert pools.held_person_ids(db_session=db) == set()
    assert pools.held_person_ids(db_session=db, at=RETEST_AT) == {p.id for p in members}
    assert pools.lab_hold_outcomes(db_session=db) == {lab.id: (1, 1)}


def test_one_positive_retest_escalates_that_person_and_confirms_the_hold_once_all_are_back(
    db, world, positive_pool
):
    _, members, first = positive_pool
    hold_id = first.hold_ids[0]
    sick, others = members[3], [m for m in members if m is not members[3]]
    _, early = retest_all(db, world, [sick, *others[:4]], ["positive"] + ["negative"] * 4)
    assert early.escalated == [sick.id]
    assert early.confirmed_holds == early.reversed_holds == []
    hold = db.get(PoolHold, hold_id)
    assert hold.closed_at is None
    assert pools.held_person_ids(db_session=db) == {p.id for p in others[4:]}
    _, late = retest_all(db, world, others[4:], ["negative"] * 5, scanned=at(9), result_at=at(11))
    db.refresh(hold)
    assert (hold.outcome, hold.closed_at) == ("confirmed", at(11))
    assert late.confirmed_holds == [hold_id]
    assert late.escalated == []
    (sick_task,) = tasks_of(db, person_id=sick.id)
    assert (sick_task.state, sick_task.closed_at) == ("positive", RETEST_RESULTS_AT)


def test_a_retest_scanned_before_the_hold_does_not_answer_it(db, world):
    rnd, site, lab, people = world
    early = pf.retest(db, rnd, site, "RE00000001", people[0], at=at(2))
    pool = pf.tube(db, rnd, site, "TP00000006", people[:2], at=at(1))
    pf.result_and_process(db, pool, "positive", at=RESULTS_AT, lab=lab)
    summary = pf.result_and_process(db, early, "negative", at=at(7), lab=lab)
    assert summary.released == []
    assert summary.tasks_closed == 0
    assert {t.state for t in tasks_of(db)} == {"pending"}


def test_a_pool_corrected_to_negative_withdraws_its_hold_and_releases_everyone(
    db, world, positive_pool, principal
):
    tube, members, first = positive_pool
    tube.result = "negative"  # a conflict resolved for the lab's second result
    db.flush()
    summary = pf.process(db, tube, at=at(7))
    hold = db.get(PoolHold, first.hold_ids[0])
    db.refresh(hold)
    assert (hold.outcome, hold.closed_at) == ("withdrawn", at(7))
    assert summary.withdrawn_holds == [hold.id]
    assert (summary.hold_ids, summary.held, summary.tasks_created) == ([], 0, 0)
    assert pools.held_person_ids(db_session=db) == set()
    assert pools.held_person_ids(db_session=db, at=at(6.5)) == {p.id for p in members}
    assert pools.holds_for_person(db_session=db, person_id=members[0].id) == []
    assert pools.list_tasks(db_session=db, principal=principal("analyst"))[1] == 0
    assert len(tasks_of(db, hold_id=hold.id)) == 10  # kept in the record


# Lists ---------------------------------------------------------------------------------------


def test_overdue_tasks_are_listed_for_the_grid_worker_of_their_grid(
    db, world, positive_pool, principal
):
    worker = principal("grid_worker", "grid_worker_grid")
    with clock.frozen(RESULTS_AT + timedelta(hours=11)):
        views, total = pools.list_tasks(db_session=db, principal=worker, status="overdue")
        assert (views, total) == ([], 0)
        views, total = pools.list_tasks(db_session=db, principal=worker)
        assert total == 5
        assert not any(v.overdue for v in views)
    with clock.frozen(RESULTS_AT + timedelta(hours=13)):
        views, total = pools.list_tasks(db_session=db, principal=worker, status="overdue")
    assert total == 5
    assert all(v.overdue and v.task.region_code == NANGUAN_GRID for v in views)
    assert [v.task.due_at for v in views] == sorted(v.task.due_at for v in views)


def test_tasks_are_listed_by_round_and_region(db, world, positive_pool, principal):
    rnd, _, _, _ = world
    analyst = principal("analyst")
    _, total = pools.list_tasks(db_session=db, principal=analyst, round_ref=rnd.code)
    assert total == 10
    _, total = pools.list_tasks(
        db_session=db, principal=analyst, round_ref=str(rnd.id), region_code=NANGUAN_GRID_2
    )
    assert total == 5
    other = factories.round_(db, code="R-TEST-2", starts_at=START)
    assert pools.list_tasks(db_session=db, principal=analyst, round_ref=other.code)[1] == 0
    assert pools.list_tasks(db_session=db, principal=principal("analyst", "out"))[1] == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"status": "bogus"}, InvalidInput, "status"),
        ({"region_code": "12"}, InvalidInput, "region"),
        ({"region_code": "220202001001001"}, NotFound, "region"),
        ({"round_ref": "99999999999999999999"}, NotFound, "round"),
        ({"round_ref": "bad\x00code"}, NotFound, "round"),
        ({"limit": 0}, InvalidInput, "limit"),
    ],
)
def test_task_lists_refuse_bad_filters_naming_the_field(db, world, principal, kwargs, error, field):
    with pytest.raises(error) as err:
        pools.list_tasks(db_session=db, principal=principal("analyst"), **kwargs)
    assert err.value.problems[0].field == field


# API -----------------------------------------------------------------------------------------


def test_the_api_lists_open_holds_and_shows_one_with_its_members_masked(
    client, headers, positive_pool
):
    _, members, summary = positive_pool
    h = headers("analyst")
    page = client.get("/api/v1/pools/holds", headers=h)
    assert page.status_code == 200, page.text
    (item,) = page.json()["items"]
    assert item["id"] == summary.hold_ids[0]
    assert item["tube"] == "TP00000001"
    assert item["members"] == 10
    assert item["tasks"]["pending"] == 10
    assert client.get("/api/v1/pools/holds?status=closed", headers=h).json()["total"] == 0
    detail = client.get(f"/api/v1/pools/holds/{item['id']}", headers=h)
    assert detail.status_code == 200, detail.text
    rows = detail.json()["member_list"]
    assert [r["person"]["id"] for r in rows] == [p.id for p in members]
    assert all(r["person"]["masked"] and "*" in r["person"]["id_number"] for r in rows)
    assert {r["task"]["state"] for r in rows} == {"pending"}


def test_the_api_lists_a_grids_retests_with_the_overdue_flag(client, headers, positive_pool):
    with clock.frozen(RESULTS_AT + timedelta(hours=13)):
        h = headers("grid_worker", "grid_worker_grid")
        response = client.get(f"/api/v1/retests?region={NANGUAN_GRID}&status=overdue", headers=h)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 5
    assert all(i["overdue"] and i["region_code"] == NANGUAN_GRID for i in body["items"])
    assert all(i["person"]["masked"] for i in body["items"])


def test_a_resident_sees_their_own_retest_task(client, db, cast, headers, positive_pool):
    from bastion.accounts.models import User

    _, members, _ = positive_pool
    user = db.get(User, cast.ids[("resident", "in")])
    user.person_id = members[0].id
    db.flush()
    h = headers("resident")
    response = client.get("/api/v1/retests/mine", headers=h)
    assert response.status_code == 200, response.text
    (task,) = response.json()
    assert (task["person_id"], task["reason"], task["state"]) == (
        members[0].id,
        "positive_pool",
        "pending",
    )
    assert client.get("/api/v1/pools/holds", headers=h).status_code == 403
    assert client.get("/api/v1/retests", headers=h).status_code == 403


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/api/v1/pools/holds?status=bogus", 422, "status"),
        ("/api/v1/pools/holds?round=99999999999999999999", 404, "round"),
        ("/api/v1/pools/holds?round=%00", 404, "round"),
        ("/api/v1/pools/holds?limit=100000", 422, "limit"),
        ("/api/v1/pools/holds?offset=-1", 422, "offset"),
        ("/api/v1/pools/holds/99999999999999999999999", 422, "hold_id"),
        ("/api/v1/pools/holds/abc", 422, "hold_id"),
        ("/api/v1/pools/holds/424242", 404, "hold_id"),
        ("/api/v1/retests?region=220202001001001", 404, "region"),
        ("/api/v1/retests?region=abc", 422, "region"),
        ("/api/v1/retests?status=late", 422, "status"),
        ("/api/v1/retests?round=no-such-round", 404, "round"),
    ],
)
def test_the_api_refuses_bad_requests_naming_the_field(client, headers, world, path, status, field):
    response = client.get(path, headers=headers("analyst"))
    assert response.status_code == status, response.text
    assert field in [e["field"] for e in response.json().get("errors", [])]


def test_a_hold_outside_the_callers_region_is_not_found(client, headers, positive_pool):
    _, _, summary = positive_pool
    response = client.get(
        f"/api/v1/pools/holds/{summary.hold_ids[0]}", headers=headers("analyst", "out")
    )
    assert response.status_code == 404
    assert client.get("/api/v1/pools/holds", headers=headers("lab", "out")).json()["total"] == 0


def test_a_retest_nobody_owed_is_accepted_and_flagged(db, world, positive_pool):
    rnd, site, _, _ = world
    _, members, _ = positive_pool
    stranger = factories.person(db)  # owes no retest
    scans = [
        RawScan(
            row=1,
            round=rnd.code,
            site=site.code,
            tube="RS00000031",
            person=members[0].token,
            scanned_at=RETEST_AT,
            kind="retest",
        ),
        RawScan(
            row=2,
            round=rnd.code,
            site=site.code,
            tube="RS00000032",
            person=stranger.token,
            scanned_at=RETEST_AT,
            kind="retest",
        ),
    ]
    with clock.frozen(RETEST_AT + timedelta(minutes=1)):
        report = ingest.ingest_scans(
            db_session=db, principal=system_principal(), key="retests-1", source="test", scans=scans
        )
    assert (report.accepted, report.flagged) == (2, 1)
    assert [(p.row, p.field, p.reason) for p in report.flags] == [
        (2, "kind", "scan.retest_not_owed")
    ]
