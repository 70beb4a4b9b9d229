"""A result conflict resolved for the other result sets the loop in motion exactly as an upload
of that result would (holds and retests, cases, contacts, placements, health codes), in the
same transaction; taken back, a positive releases its holds but leaves cases to the clinicians.
Through the service and the API, on both engines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit.models import AuditEntry
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import bulk_insert
from bastion.core.errors import Conflict
from bastion.healthcode.models import CodeStatus
from bastion.isolation.models import Placement
from bastion.registry.models import Person
from bastion.testing import flows, results
from bastion.testing.models import PoolHold, ResultConflict, RetestTask, Tube
from bastion.tracing.models import Case, Contact, case_code
from tests.support import factories
from tests.support import pool_factories as pf
from tests.support import testing_factories as tf
from tests.support.world import NANGUAN_GRID

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


@pytest.fixture
def world(db: Session):  # type: ignore[no-untyped-def]
    with clock.frozen(START):
        rnd = factories.round_(db, starts_at=START)
        site = factories.site(db, grids=[NANGUAN_GRID])
        lab = factories.lab(db)
    return rnd, site, lab


_boxes = iter(range(1, 10_000))


def in_lab(db, world, barcode, people, *, kind="pooled", sampled=1.0):  # type: ignore[no-untyped-def]
    """A tube of ``people`` sampled at ``sampled`` hours, boxed and received by the lab an
    hour and two hours later."""
    rnd, site, lab = world
    tube = pf.tube(db, rnd, site, barcode, people, at=at(sampled), kind=kind)
    box = f"BOX-CF{next(_boxes):04d}"
    with clock.frozen(at(sampled + 2)):
        tf.packed(db, rnd, site, box, [barcode], at=at(sampled + 1))
        tf.received(db, box, lab, counted=1, at=at(sampled + 2))
    return tube


def upload(db, world, barcode, result, *, tested, now):  # type: ignore[no-untyped-def]
    """An upload of one result through the whole flow (as the lab's API call runs it)."""
    _, _, lab = world
    cts = {"ct_orf1ab": 25.0, "ct_n": 26.0} if result == "positive" else {}
    with clock.frozen(at(now)):
        report = flows.upload_results(
            db_session=db,
            principal=system_principal(),
            rows=[tf.row(lab, barcode, result, tested_at=at(tested), **cts)],
        )
    assert report.refused == 0, report.problems
    return report


def conflicted(db, world, barcode, first, second):  # type: ignore[no-untyped-def]
    """``first`` uploaded at 6 h, then ``second`` at 7 h: the id of the open conflict."""
    assert upload(db, world, barcode, first, tested=5, now=6).accepted == 1
    assert upload(db, world, barcode, second, tested=6.5, now=7).conflicts == 1
    return db.execute(
        select(ResultConflict.id)
        .join(Tube, Tube.id == ResultConflict.tube_id)
        .where(Tube.barcode == barcode, ResultConflict.resolved_at.is_(None))
    ).scalar_one()


def resolve(db, principal, conflict_id, pick="second", *, now=8):  # type: ignore[no-untyped-def]
    with clock.frozen(at(now)):
        return results.resolve_conflict(
            db_session=db,
            principal=principal("commander"),
            conflict_id=conflict_id,
            pick=pick,
            note="re-run on a fresh aliquot",
        )


def code(db: Session, person: Person) -> tuple[str, str, str | None, str | None]:
    """(colour, rule key, evidence type, evidence id); green by default."""
    s = db.get(CodeStatus, person.id)
    if s is None:
        return ("green", "default", None, None)
    db.refresh(s)
    return (s.colour, s.rule.split(":")[1], s.evidence_type, s.evidence_id)


def edges(db: Session, pairs: list[tuple[Person, Person]]) -> None:
    rows = []
    for a, b in pairs:
        rows += [(a.id, b.id, START.date(), "household"), (b.id, a.id, START.date(), "household")]
    bulk_insert(db, "exposure_edges", ["person_id", "other_id", "exposed_on", "setting"], rows)


def audited(db: Session) -> dict:  # type: ignore[type-arg]
    entry = db.execute(
        select(AuditEntry)
        .where(AuditEntry.action == "result_conflict.resolve")
        .order_by(AuditEntry.seq.desc())
        .limit(1)
    ).scalar_one()
    return json.loads(entry.details)


# Resolved to positive ----------------------------------------------------------------------


def test_a_single_tube_resolved_positive_opens_a_case_and_places_its_contacts(db, world, principal):
    person, housemate, colleague = (factories.person(db) for _ in range(3))
    edges(db, [(person, housemate), (housemate, colleague)])
    in_lab(db, world, "TS00000001", [person], kind="single")
    conflict_id = conflicted(db, world, "TS00000001", "negative", "positive")
    assert db.execute(select(func.count()).select_from(Case)).scalar_one() == 0
    assert code(db, person)[0] == "green"

    view = resolve(db, principal, conflict_id)

    (case,) = db.execute(select(Case).where(Case.person_id == person.id)).scalars()
    assert (case.status, case.classification, case.found_by, case.sampled_on) == (
        "open",
        "asymptomatic",
        "community_screening",
        START.date(),
    )
    contacts = dict(
        db.execute(select(Contact.person_id, Contact.level).where(Contact.case_id == case.id)).all()
    )
    assert contacts == {housemate.id: "close", colleague.id: "secondary"}
    placed = dict(
        db.execute(
            select(Placement.person_id, Placement.reason).where(
                Placement.person_id.in_([person.id, housemate.id, colleague.id])
            )
        ).all()
    )
    assert placed == {
        person.id: "case",
        housemate.id: "close_contact",
        colleague.id: "secondary_contact",
    }
    # Every changed colour names its rule and the record it rests on.
    assert code(db, person) == ("red", "case", "case", str(case.id))
    assert code(db, housemate)[:3] == ("red", "close_contact", "contact")
    assert view.current_result == "positive"
    effects = view.effects
    assert effects.result_changed
    assert effects.cases_opened == [case_code(case.id)]
    assert (effects.close_contacts, effects.secondary_contacts, effects.placements) == (1, 1, 3)
    assert effects.holds == effects.holds_withdrawn == effects.cases_left_open == []
    assert effects.codes_changed >= 2
    details = audited(db)
    assert details["effects"]["cases_opened"] == [case_code(case.id)]
    assert details["effects"]["cases_left_open"] == []

    # Resolving twice is refused, and changes nothing.
    with pytest.raises(Conflict):
        resolve(db, principal, conflict_id, pick="first")
    assert db.execute(select(func.count()).select_from(Case)).scalar_one() == 1


def test_a_pool_resolved_positive_holds_its_members_with_retest_tasks(db, world, principal):
    members = [factories.person(db) for _ in range(5)]
    tube = in_lab(db, world, "TP00000001", members)
    conflict_id = conflicted(db, world, "TP00000001", "negative", "positive")
    assert db.execute(select(func.count()).select_from(PoolHold)).scalar_one() == 0

    view = resolve(db, principal, conflict_id)

    (hold,) = db.execute(select(PoolHold)).scalars()
    assert (hold.tube_id, hold.members, hold.closed_at) == (tube.id, 5, None)
    tasks = db.execute(select(RetestTask).where(RetestTask.hold_id == hold.id)).scalars().all()
    assert sorted(t.person_id for t in tasks) == sorted(m.id for m in members)
    assert {(t.reason, t.state, t.due_at) for t in tasks} == {
        ("positive_pool", "pending", at(8) + timedelta(hours=12))
    }
    assert {code(db, m) for m in members} == {("yellow", "pool_hold", "pool_hold", str(hold.id))}
    assert (view.effects.holds, view.effects.tasks_created) == ([hold.id], 5)
    assert view.effects.cases_opened == []
    assert view.effects.codes_changed == 5
    # A pool is not a diagnosis: no case until a member's own retest is positive.
    assert db.execute(select(func.count()).select_from(Case)).scalar_one() == 0


def test_a_pool_resolved_invalid_owes_every_member_a_retest(db, world, principal):
    members = [factories.person(db) for _ in range(3)]
    in_lab(db, world, "TP00000002", members)
    conflict_id = conflicted(db, world, "TP00000002", "negative", "invalid")
    view = resolve(db, principal, conflict_id)
    tasks = db.execute(select(RetestTask)).scalars().all()
    assert sorted(t.person_id for t in tasks) == sorted(m.id for m in members)
    assert {t.reason for t in tasks} == {"invalid_result"}
    assert (view.effects.tasks_created, view.effects.holds) == (3, [])


def test_a_retest_resolved_positive_escalates_and_the_hold_is_judged_again(db, world, principal):
    members = [factories.person(db) for _ in range(2)]
    in_lab(db, world, "TP00000003", members)
    upload(db, world, "TP00000003", "positive", tested=5, now=6)
    (hold,) = db.execute(select(PoolHold)).scalars()
    for i, m in enumerate(members):
        in_lab(db, world, f"TR0000000{i + 1}", [m], kind="retest", sampled=6.5)
        upload(db, world, f"TR0000000{i + 1}", "negative", tested=9, now=10)
    db.refresh(hold)
    assert hold.outcome == "reversed"
    assert {code(db, m)[0] for m in members} == {"green"}
    upload(db, world, "TR00000001", "positive", tested=9.5, now=10.5)
    (conflict_id,) = db.execute(
        select(ResultConflict.id).where(ResultConflict.resolved_at.is_(None))
    ).scalars()

    view = resolve(db, principal, conflict_id, now=11)

    task = db.execute(select(RetestTask).where(RetestTask.person_id == members[0].id)).scalar_one()
    assert task.state == "positive"
    db.refresh(hold)
    assert hold.outcome == "confirmed"  # no longer counted as a false-positive pool
    (case,) = db.execute(select(Case).where(Case.person_id == members[0].id)).scalars()
    assert case.source_task_id == task.id
    assert view.effects.tasks_reanswered == 1
    assert view.effects.cases_opened == [case_code(case.id)]
    assert code(db, members[0])[:2] == ("red", "case")
    assert code(db, members[1])[0] == "green"


# Resolved to negative: the reverse ---------------------------------------------------------


def test_a_positive_pool_resolved_negative_releases_the_holds_resting_on_it(db, world, principal):
    members = [factories.person(db) for _ in range(3)]
    in_lab(db, world, "TP00000004", members)
    # The first member is also in a positive pool of another round: that hold does not rest
    # on the tube.
    with clock.frozen(START):
        other_round = factories.round_(db, code="R-TEST-2", starts_at=START)
    in_lab(db, (other_round, *world[1:]), "TP00000005", [members[0], factories.person(db)])
    upload(db, world, "TP00000005", "positive", tested=5, now=6)
    conflict_id = conflicted(db, world, "TP00000004", "positive", "negative")
    hold, other = db.execute(select(PoolHold).order_by(PoolHold.tube_id)).scalars().all()
    assert {code(db, m)[:2] for m in members} == {("yellow", "pool_hold")}

    view = resolve(db, principal, conflict_id)

    db.refresh(hold)
    db.refresh(other)
    assert (hold.outcome, hold.closed_at) == ("withdrawn", at(8))
    assert (other.outcome, other.closed_at) == (None, None)
    assert code(db, members[0]) == ("yellow", "pool_hold", "pool_hold", str(other.id))
    assert code(db, members[1]) == code(db, members[2]) == ("green", "default", None, None)
    assert view.effects.holds_withdrawn == [hold.id]
    assert view.effects.holds == []
    assert view.effects.cases_left_open == []
    assert audited(db)["effects"]["holds_withdrawn"] == [hold.id]


def test_a_positive_single_tube_resolved_negative_leaves_its_case_open_and_says_so(
    db, world, principal
):
    person = factories.person(db)
    in_lab(db, world, "TS00000002", [person], kind="single")
    conflict_id = conflicted(db, world, "TS00000002", "positive", "negative")
    (case,) = db.execute(select(Case).where(Case.person_id == person.id)).scalars()

    view = resolve(db, principal, conflict_id)

    db.refresh(case)
    assert case.status == "open"  # closing a case is a clinical decision
    assert view.current_result == "negative"
    assert view.effects.cases_left_open == [case_code(case.id)]
    assert view.effects.cases_opened == []
    assert audited(db)["effects"]["cases_left_open"] == [case_code(case.id)]
    assert code(db, person)[:2] == ("red", "case")


def test_picking_the_first_result_sets_nothing_in_motion(db, world, principal):
    members = [factories.person(db) for _ in range(2)]
    in_lab(db, world, "TP00000006", members)
    conflict_id = conflicted(db, world, "TP00000006", "negative", "positive")
    view = resolve(db, principal, conflict_id, pick="first")
    assert view.effects == results.conflicts.ResolutionEffects()
    assert db.execute(select(func.count()).select_from(PoolHold)).scalar_one() == 0
    assert audited(db)["effects"]["result_changed"] is False


# Through the API ---------------------------------------------------------------------------


def test_the_api_resolution_runs_the_flow_and_returns_its_effects(
    client, headers, db, world, principal
):
    person, housemate = factories.person(db), factories.person(db)
    edges(db, [(person, housemate)])
    in_lab(db, world, "TS00000003", [person], kind="single")
    conflict_id = conflicted(db, world, "TS00000003", "negative", "positive")
    refused = client.post(
        f"/api/v1/results/conflicts/{conflict_id}/resolve",
        json={"pick": "second", "note": "ok"},
        headers=headers("lab"),
    )
    assert refused.status_code == 403
    assert db.execute(select(func.count()).select_from(Case)).scalar_one() == 0
    with clock.frozen(at(8)):
        done = client.post(
            f"/api/v1/results/conflicts/{conflict_id}/resolve",
            json={"pick": "second", "note": "confirmed on re-run"},
            headers=headers("commander"),
        )
    assert done.status_code == 200, done.text
    body = done.json()
    (case,) = db.execute(select(Case).where(Case.person_id == person.id)).scalars()
    assert body["current_result"] == "positive"
    assert body["effects"]["cases_opened"] == [case_code(case.id)]
    assert body["effects"]["close_contacts"] == 1
    assert body["effects"]["placements"] == 2
    assert body["effects"]["cases_left_open"] == []
    assert code(db, housemate)[:2] == ("red", "close_contact")
    twice = client.post(
        f"/api/v1/results/conflicts/{conflict_id}/resolve",
        json={"pick": "first", "note": "again"},
        headers=headers("commander"),
    )
    assert twice.status_code == 409
    assert db.execute(select(func.count()).select_from(Case)).scalar_one() == 1


def test_the_api_resolution_to_negative_releases_the_pool_and_lists_no_case(
    client, headers, db, world
):
    members = [factories.person(db) for _ in range(4)]
    in_lab(db, world, "TP00000007", members)
    conflict_id = conflicted(db, world, "TP00000007", "positive", "negative")
    (hold,) = db.execute(select(PoolHold)).scalars()
    with clock.frozen(at(8)):
        done = client.post(
            f"/api/v1/results/conflicts/{conflict_id}/resolve",
            json={"pick": "second", "note": "plate swap"},
            headers=headers("commander"),
        )
    assert done.status_code == 200, done.text
    effects = done.json()["effects"]
    assert (effects["holds_withdrawn"], effects["holds"]) == ([hold.id], [])
    assert effects["codes_changed"] == 4
    assert {code(db, m)[0] for m in members} == {"green"}
    hidden = client.post(
        f"/api/v1/results/conflicts/{conflict_id}/resolve",
        json={"pick": "first", "note": "x"},
        headers=headers("commander", "out"),
    )
    assert hidden.status_code == 404
