"""Batches: a day's test results and the day's releases in one call each — bad rows reported by
row, good rows landed, re-sending harmless, and the same outcome as the one-by-one path."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import BastionError, Forbidden, InvalidInput
from bastion.isolation import service
from bastion.isolation.models import Placement, PlacementTest, TransferTask
from bastion.isolation.results import TestItem
from tests.integration.isolation.helpers import (
    NOW,
    TODAY,
    arrive_at_site,
    get,
    need,
    place,
    record_all_negative,
    site,
)
from tests.integration.registry.people import audit_entries

DAY = timedelta(days=1)
BASE = "/api/v1/isolation"


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _at(days: int):
    return clock.frozen(NOW + days * DAY)


def _started(db, days_ago: int = 20, *, arrive: bool = True, **kw) -> int:
    """A placement begun ``days_ago`` days ago (made active at a site unless at home)."""
    with _at(-days_ago):
        [pid] = place(db, need(db, starts_on=TODAY - days_ago * DAY, **kw))
        if arrive and kw.get("destination", "centralised") != "home":
            arrive_at_site(db, [pid], site(db, kind=_site_kind(kw)).code)
    return pid


def _site_kind(kw: dict[str, Any]) -> str:
    return {"hospital": "hospital", "makeshift": "makeshift"}.get(
        kw.get("destination", ""), "hotel"
    )


def _record(db, items, principal=None):
    return service.record_tests(
        db_session=db, principal=principal or system_principal(), items=items
    )


# Test results ----------------------------------------------------------------------------------


def test_a_batch_records_the_good_rows_and_reports_each_bad_one_by_row(db, principal):
    pid = _started(db)
    other = _started(db)
    outside = _started(db, where="out")
    items = [
        TestItem(pid, 1, "negative", TODAY - 20 * DAY),
        TestItem(pid, 4, "negative", TODAY - 17 * DAY),
        TestItem(pid, 2, "negative"),  # not a test day
        TestItem(other, 1, "negative", TODAY + DAY),  # in the future
        TestItem(other, 4, "maybe"),  # unknown result
        TestItem(other, 7, None, tube_barcode="T-NONE"),  # no such tube of theirs
        TestItem(outside, 1, "negative"),  # outside the caller's region
        TestItem(999_999_999, 1, "negative"),  # no such placement
        TestItem(pid, 1, "positive"),  # a different result for a day just recorded
        TestItem(other, 10, "negative"),
    ]
    report = _record(db, items, principal("isolation"))
    assert (report.rows, report.recorded, report.unchanged, report.refused) == (10, 3, 0, 7)
    assert [(p.row, p.field, p.reason) for p in report.problems] == [
        (3, "day_no", "placement.not_a_test_day"),
        (4, "tested_on", "placement.date_in_future"),
        (5, "result", "placement.unknown_result"),
        (6, "tube_barcode", "placement.tube_not_theirs"),
        (7, "placement_id", "placement.not_found"),
        (8, "placement_id", "placement.not_found"),
        (9, "result", "placement.test_already_recorded"),
    ]
    db.expire_all()
    results = {
        (t.placement_id, t.day_no): (t.result, t.tested_on)
        for t in db.execute(select(PlacementTest).where(PlacementTest.result.is_not(None)))
        .scalars()
        .all()
    }
    assert results == {
        (pid, 1): ("negative", TODAY - 20 * DAY),
        (pid, 4): ("negative", TODAY - 17 * DAY),
        (other, 10): ("negative", TODAY),
    }
    [entry] = audit_entries(db, "placement.update")
    assert entry.details is not None
    assert '"tests": 3' in entry.details


def test_resending_a_batch_changes_nothing(db):
    pid = _started(db)
    items = [TestItem(pid, d, "negative", TODAY) for d in (1, 4, 7)]
    first = _record(db, items)
    assert (first.recorded, first.unchanged, first.refused) == (3, 0, 0)
    before = [(t.day_no, t.result, t.recorded_at) for t in service.tests_of(db, pid)]
    with _at(1):
        again = _record(db, [TestItem(pid, d, "negative", TODAY + DAY) for d in (1, 4, 7)])
    assert (again.recorded, again.unchanged, again.refused) == (0, 3, 0)
    db.expire_all()
    assert [(t.day_no, t.result, t.recorded_at) for t in service.tests_of(db, pid)] == before
    assert len(audit_entries(db, "placement.update")) == 1


def test_a_batch_needs_the_isolation_write_permission(db, principal):
    pid = _started(db)
    with pytest.raises(Forbidden):
        _record(db, [TestItem(pid, 1, "negative")], principal("investigator"))
    assert _record(db, []).rows == 0


def test_record_test_is_the_one_row_batch(db):
    pid = _started(db)
    test = service.record_test(
        db_session=db, principal=system_principal(), placement_id=pid, day_no=1, result="negative"
    )
    assert (test.day_no, test.result, test.tested_on) == (1, "negative", TODAY)
    [entry] = audit_entries(db, "placement.update")
    assert entry.target_id == str(pid)


# Releases --------------------------------------------------------------------------------------


def _scene(db) -> list[int]:
    """Placements due seven days ago in every state a release meets."""
    done = _started(db)  # centralised, all negative: released, monitoring, home transfer
    at_home = _started(db, destination="home")  # released at home, monitoring at once
    missing = _started(db)  # a test never done
    positive = _started(db)  # a positive test: never released
    waiting = _started(db, arrive=False)  # still waiting for transfer (pending)
    treated = _started(db, reason="case", destination="hospital")  # discharge tests negative
    secondary = _started(db, reason="secondary_contact")
    early = _started(db, days_ago=10)  # before the planned end
    with _at(-7):
        for pid in (done, at_home, treated, secondary):
            record_all_negative(db, pid)
        _record(
            db,
            [TestItem(missing, d, "negative", TODAY - (21 - d) * DAY) for d in (1, 4, 7, 10)]
            + [TestItem(positive, 4, "positive", TODAY - 17 * DAY)]
            + [TestItem(early, 1, "negative", TODAY - 10 * DAY)],
        )
    return [done, at_home, missing, positive, waiting, treated, secondary, early, done]


def _outcome(db, people: set[int]) -> tuple[Any, ...]:
    """Every placement, test day and transfer of ``people``, without ids (they differ between
    runs)."""
    db.expire_all()
    placements = db.execute(
        select(Placement).where(Placement.person_id.in_(people)).order_by(Placement.id)
    ).scalars()
    names = {}
    rows = []
    for p in placements:
        names[p.id] = (p.person_id, p.setting)
        rows.append(
            (
                p.person_id,
                p.setting,
                p.status,
                p.starts_on,
                p.planned_end_on,
                p.released_on,
                p.override_reason,
                names.get(p.follows_id) if p.follows_id else None,
                tuple((t.day_no, t.due_on, t.result) for t in service.tests_of(db, p.id)),
            )
        )
    tasks = sorted(
        (t.person_id, t.kind, t.destination, t.status, names[t.placement_id], t.created_on)
        for t in db.execute(select(TransferTask).where(TransferTask.person_id.in_(people)))
        .scalars()
        .all()
    )
    return tuple(sorted(rows, key=repr)), tuple(tasks)


@pytest.mark.parametrize("override", [None, "指挥部同意提前解除"])
def test_a_batch_release_ends_as_releasing_one_by_one(db, override):
    ids = _scene(db)
    people = {get(db, pid).person_id for pid in ids}
    refused_one_by_one = {}
    savepoint = db.begin_nested()
    with _at(-7):
        for pid in dict.fromkeys(ids):
            try:
                service.release(
                    db_session=db,
                    principal=system_principal(),
                    placement_id=pid,
                    override_reason=override,
                )
            except BastionError as err:
                refused_one_by_one[pid] = sorted(p.reason for p in err.problems) or [err.key]
    one_by_one = _outcome(db, people)
    savepoint.rollback()
    assert _outcome(db, people) != one_by_one  # the savepoint did undo them
    with _at(-7):
        report = service.release_many(
            db_session=db, principal=system_principal(), placement_ids=ids, override_reason=override
        )
    assert _outcome(db, people) == one_by_one
    refused_in_batch = {
        r.placement_id: sorted(p.reason for p in r.problems) for r in report.refused
    }
    assert refused_in_batch == refused_one_by_one
    assert len(report.released) == len(set(ids)) - len(refused_one_by_one)
    [entry] = audit_entries(db, "placement.release")[-1:]
    assert entry.details is not None
    assert f'"released": {len(report.released)}' in entry.details


def test_refused_placements_are_listed_with_every_missing_item(db, principal):
    ids = _scene(db)
    done, _home, missing, positive, waiting, *_rest, early, _again = ids
    with _at(-7):
        report = service.release_many(
            db_session=db, principal=principal("isolation"), placement_ids=ids
        )
    refused = {
        r.placement_id: [(p.row, p.reason, p.params.get("day")) for p in r.problems]
        for r in report.refused
    }
    assert refused[missing] == [(3, "placement.release_test_missing", 14)]
    assert (4, "placement.release_test_positive", 4) in refused[positive]
    assert refused[waiting] == [(5, "placement.not_active", None)]
    assert [k for _row, k, _d in refused[early]][-1] == "placement.release_before_planned_end"
    assert done in report.released
    assert report.rows == len(ids)
    # Close contacts go on to home monitoring (secondary ones have none under jilin-2022-03);
    # everyone released from a site (close, secondary, the case) goes home by transfer.
    assert (report.monitoring, report.transfers) == (2, 3)
    # Sent again, nothing more is released: the released ones are no longer active.
    with _at(-7):
        again = service.release_many(
            db_session=db, principal=principal("isolation"), placement_ids=ids
        )
    assert again.released == []
    with pytest.raises(InvalidInput):
        service.release_many(
            db_session=db, principal=system_principal(), placement_ids=ids, on=TODAY + DAY
        )


def test_an_override_in_a_batch_needs_command_authority(db, principal):
    early = _started(db, days_ago=10)
    with _at(-1):
        report = service.release_many(
            db_session=db,
            principal=principal("isolation"),
            placement_ids=[early],
            override_reason="就医",
        )
        assert [p.reason for r in report.refused for p in r.problems] == ["override.not_authorised"]
        report = service.release_many(
            db_session=db,
            principal=principal("commander"),
            placement_ids=[early],
            override_reason="转院就医",
        )
    assert report.released == [early]
    assert report.overridden == 1
    assert get(db, early).override_reason == "转院就医"


def test_release_due_releases_whoever_passes_in_the_region(db, principal):
    ids = _scene(db)
    outside = _started(db, where="out")
    with _at(-7):
        record_all_negative(db, outside)
        report = service.release_due(
            db_session=db, principal=principal("isolation"), day=TODAY - 7 * DAY
        )
    assert outside not in report.released
    assert get(db, outside).status == "active"
    done, at_home = ids[0], ids[1]
    assert {done, at_home} <= set(report.released)
    # Not yet due (planned end later) and pending placements are not even considered.
    considered = set(report.released) | {r.placement_id for r in report.refused}
    assert ids[7] not in considered
    assert ids[4] not in considered


# API and CLI -----------------------------------------------------------------------------------


def test_the_api_records_a_batch_and_releases_the_due(client, headers, db):
    pid = _started(db)
    h = headers("isolation")
    body = {
        "items": [
            {"placement_id": pid, "day_no": 1, "result": "negative", "tested_on": "2022-03-05"},
            {"placement_id": pid, "day_no": 2, "result": "negative"},
        ]
    }
    answer = client.post(f"{BASE}/placements/tests", json=body, headers=h)
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert (got["recorded"], got["unchanged"], got["refused"]) == (1, 0, 1)
    assert [(p["row"], p["field"], p["code"]) for p in got["problems"]] == [
        (2, "day_no", "placement.not_a_test_day")
    ]
    again = client.post(f"{BASE}/placements/tests", json=body, headers=h).json()
    assert (again["recorded"], again["unchanged"]) == (0, 1)
    with _at(-7):
        record_all_negative(db, pid)
        due = client.post(f"{BASE}/releases/due", json={"day": "2022-03-18"}, headers=h)
    assert due.status_code == 200, due.text
    assert due.json()["released"] == [pid]
    refused = client.post(
        f"{BASE}/releases/due", json={"day": "2022-03-18"}, headers=headers("investigator")
    )
    assert refused.status_code == 403


def test_a_batch_release_releases_the_contacts_in_tracing(db):
    from bastion.tracing.models import Contact
    from tests.integration.isolation.helpers import GRID
    from tests.integration.registry.people import register
    from tests.integration.tracing.support import case, expose

    start = TODAY - 20 * DAY
    with _at(-20):
        index = case(db, register(db, region_code=GRID["in"]))
        person = register(db, region_code=GRID["in"])
        expose(db, index, person, day=start)
        contact = db.execute(select(Contact).where(Contact.person_id == person.id)).scalar_one()
        [pid] = place(
            db,
            need(
                db,
                person_id=person.id,
                source_id=contact.id,
                destination="home",
                starts_on=start,
            ),
        )
    with _at(-7):
        record_all_negative(db, pid)
        report = service.release_many(
            db_session=db, principal=system_principal(), placement_ids=[pid]
        )
    assert report.released == [pid]
    assert report.contacts == 1
    db.expire_all()
    released = db.get(Contact, contact.id)
    assert released is not None
    assert (released.status, released.released_on) == ("released", TODAY - 7 * DAY)
