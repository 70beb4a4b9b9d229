"""A case's lifecycle and its isolation follow each other: closing a case (discharge, release
from observation, death) ends the person's placement and open transfers in the same
transaction, with the home monitoring and transfer home the profile in force prescribes; and a
case's placement is not released through isolation while the case is open."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Forbidden, InvalidTransition
from bastion.isolation import figures, service, sites, transfers
from bastion.isolation.models import Placement, TransferTask
from bastion.protocols import service as protocol_service
from bastion.tracing import handover
from bastion.tracing import service as tracing_service
from bastion.tracing.schemas import CaseCreate
from tests.integration.isolation.helpers import (
    NOW,
    TODAY,
    arrive_at_site,
    batch,
    get,
    site,
    task_of,
)
from tests.integration.registry.people import audit_entries
from tests.support import factories

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _case(db, *, clinical_type: str | None = None, days_ago: int = 10) -> Any:
    """A case reported ``days_ago`` days ago and handed to isolation (a pending placement in a
    hospital or makeshift hospital, with its transfer task)."""
    data: dict[str, Any] = {
        "person_id": factories.person(db).id,
        "classification": "confirmed" if clinical_type else "asymptomatic",
        "clinical_type": clinical_type,
        "found_by": "hospital",
        "reported_on": TODAY - days_ago * DAY,
    }
    made = tracing_service.create_case(
        db_session=db, principal=system_principal(), data=CaseCreate(**data)
    )
    handover.hand_over(db, case_ids=[made.id], contact_ids=[])
    return made


def _placement_of(db, case_id: int, setting: str | None = None) -> Placement:
    db.expire_all()
    conds = [Placement.source_type == "case", Placement.source_id == case_id]
    conds.append(
        Placement.setting == setting
        if setting
        else Placement.setting.in_(("hospital", "makeshift"))
    )
    return db.execute(select(Placement).where(*conds)).scalar_one()


def _tasks(db, person_id: int) -> list[TransferTask]:
    db.expire_all()
    return list(
        db.execute(
            select(TransferTask)
            .where(TransferTask.person_id == person_id)
            .order_by(TransferTask.id)
        ).scalars()
    )


def _treated(db, **kw) -> tuple[Any, Placement, Any]:
    """A case who arrived at their treatment site (active placement there)."""
    made = _case(db, **kw)
    placement = _placement_of(db, made.id)
    kind = "hospital" if placement.setting == "hospital" else "makeshift"
    where = site(db, kind=kind, beds=5)
    arrive_at_site(db, [placement.id], where.code)
    return made, get(db, placement.id), where


def _close(db, made, action: str, principal=None, day=None):
    return tracing_service.close_case(
        db_session=db,
        principal=principal or system_principal(),
        ref=made.code,
        action=action,
        day=day,
    )


def _national_9_from_today(db) -> None:
    protocol_service.choose(
        db_session=db,
        principal=system_principal(),
        profile="national-9",
        effective_from=TODAY,
        reason="第九版防控方案",
    )


# Discharge and release from observation ------------------------------------------------------


def test_discharge_ends_the_placement_then_home_monitoring_and_a_transfer_home(db, principal):
    _national_9_from_today(db)  # in force on the day of discharge, not when the case began
    made, placement, where = _treated(db, clinical_type="ordinary")
    assert (placement.setting, placement.status, placement.profile) == (
        "hospital",
        "active",
        "jilin-2022-03",
    )
    _close(db, made, "discharge", principal=principal("investigator"))

    ended = get(db, placement.id)
    assert (ended.status, ended.released_on) == ("released", TODAY)
    assert ended.override_reason == "病例出院，结束救治"
    monitoring = _placement_of(db, made.id, "home_monitoring")
    assert (monitoring.status, monitoring.follows_id, monitoring.profile) == (
        "pending",  # until the transfer home arrives
        placement.id,
        "national-9",
    )
    assert (monitoring.starts_on, monitoring.planned_end_on) == (TODAY + DAY, TODAY + 7 * DAY)
    assert [(t.day_no, t.due_on) for t in service.tests_of(db, monitoring.id)] == [
        (3, TODAY + 3 * DAY),
        (7, TODAY + 7 * DAY),
    ]
    to_site, home = _tasks(db, made.person_id)
    assert (to_site.kind, to_site.status) == ("to_site", "arrived")
    assert (home.kind, home.destination, home.status, home.placement_id, home.created_on) == (
        "to_home",
        "home",
        "pending",
        monitoring.id,
        TODAY,
    )
    assert sites.occupancy(db, [where.id]) == {where.id: 0}  # the bed is free again

    # Consistent figures: one treatment ended today; monitoring is not isolation.
    found = figures.figures(db_session=db, day=TODAY, region_code="220100")
    assert found.released_day == {"case": 1}
    assert found.under_isolation == 0
    [entry] = audit_entries(db, "placement.release")
    details = json.loads(entry.details or "{}")
    assert (entry.target_id, details["case_closure"]) == (made.code, "discharged")
    assert (details["released"], details["monitoring"], details["transfers_home"]) == (1, 1, 1)
    [closed] = audit_entries(db, "case.close")
    assert (entry.actor_id, entry.actor) == (closed.actor_id, closed.actor)  # who closed it
    assert entry.actor_id is not None

    # The transfer home arrives: home monitoring starts.
    b = batch(db, [home.id], None)
    transfers.dispatch(db_session=db, principal=system_principal(), batch_id=b.id)
    transfers.arrive(db_session=db, principal=system_principal(), batch_id=b.id)
    assert get(db, monitoring.id).status == "active"


def test_without_monitoring_in_the_profile_the_transfer_home_rests_on_the_ended_placement(db):
    made, placement, _ = _treated(db, clinical_type="mild")  # jilin-2022-03: no monitoring
    _close(db, made, "discharge")
    assert get(db, placement.id).status == "released"
    assert (
        db.execute(
            select(Placement).where(Placement.follows_id == placement.id)
        ).scalar_one_or_none()
        is None
    )
    home = task_of(db, placement.id, "to_home")
    assert (home.status, home.destination) == ("pending", "home")


def test_release_from_observation_of_a_case_never_moved_cancels_the_pending_placement(db):
    _national_9_from_today(db)
    made = _case(db)  # asymptomatic → makeshift, still waiting for the vehicle
    placement = _placement_of(db, made.id)
    where = site(db, kind="makeshift", beds=3)
    waiting = batch(db, [task_of(db, placement.id).id], where.code)  # a bed held for them
    assert sites.occupancy(db, [where.id]) == {where.id: 1}
    _close(db, made, "release")

    cancelled = get(db, placement.id)
    assert (cancelled.status, cancelled.released_on) == ("cancelled", TODAY)
    assert cancelled.override_reason == "解除医学观察，结束救治"
    [task] = _tasks(db, made.person_id)
    assert (task.kind, task.status, task.failure_reason) == (
        "to_site",
        "cancelled",
        "解除医学观察，结束救治",
    )
    assert sites.occupancy(db, [where.id]) == {where.id: 0}
    # They never left home: monitoring starts at once, no transfer home.
    monitoring = _placement_of(db, made.id, "home_monitoring")
    assert (monitoring.status, monitoring.follows_id) == ("active", placement.id)
    assert [t.kind for t in _tasks(db, made.person_id)] == ["to_site"]
    # The vehicle that was to carry them moves on without them.
    transfers.dispatch(db_session=db, principal=system_principal(), batch_id=waiting.id)
    transfers.arrive(db_session=db, principal=system_principal(), batch_id=waiting.id)
    assert [t.status for t in _tasks(db, made.person_id)] == ["cancelled"]
    assert get(db, placement.id).status == "cancelled"


# Death -----------------------------------------------------------------------------------------


def test_a_death_cancels_the_pending_placement_and_its_transfer_without_follow_on(db):
    _national_9_from_today(db)  # the profile has monitoring after discharge: not after death
    made = _case(db, clinical_type="mild")  # the probe of the review: pending makeshift
    placement = _placement_of(db, made.id)
    assert placement.status == "pending"
    _close(db, made, "death")

    ended = get(db, placement.id)
    assert (ended.status, ended.released_on, ended.override_reason) == (
        "cancelled",
        TODAY,
        "病例死亡，结束救治",
    )
    [task] = _tasks(db, made.person_id)
    assert (task.status, task.failure_reason) == ("cancelled", "病例死亡，结束救治")
    assert db.execute(
        select(Placement).where(Placement.person_id == made.person_id)
    ).scalars().all() == [ended]
    assert transfers.list_tasks(db_session=db, principal=system_principal(), status="open") == []
    details = json.loads(audit_entries(db, "placement.release")[-1].details or "{}")
    assert (details["case_closure"], details["cancelled"], details["transfers_cancelled"]) == (
        "died",
        1,
        1,
    )


def test_a_death_at_the_site_ends_treatment_and_every_open_task_of_the_person(db):
    made, placement, where = _treated(db, clinical_type="critical")
    _close(db, made, "death", day=TODAY - DAY)
    ended = get(db, placement.id)
    assert (ended.status, ended.released_on, ended.override_reason) == (
        "released",
        TODAY - DAY,
        "病例死亡，结束救治",
    )
    assert [t.kind for t in _tasks(db, made.person_id)] == ["to_site"]  # nothing home
    assert sites.occupancy(db, [where.id]) == {where.id: 0}


# The reverse: isolation does not end an open case's treatment ------------------------------


def test_releasing_an_open_cases_placement_directly_is_refused_naming_the_case(db, principal):
    made, placement, _ = _treated(db, clinical_type="mild")
    for test in service.tests_of(db, placement.id):
        service.record_test(
            db_session=db,
            principal=system_principal(),
            placement_id=placement.id,
            day_no=test.day_no,
            result="negative",
            tested_on=test.due_on,
        )
    with pytest.raises(InvalidTransition) as caught:
        service.release(db_session=db, principal=principal("isolation"), placement_id=placement.id)
    assert caught.value.key == "placement.case_open"
    assert caught.value.params["case"] == made.code
    assert [p.reason for p in caught.value.problems] == ["placement.case_open"]
    report = service.release_many(
        db_session=db, principal=principal("isolation"), placement_ids=[placement.id]
    )
    [refused] = report.refused
    assert [(p.reason, p.params["case"]) for p in refused.problems] == [
        ("placement.case_open", made.code)
    ]
    due = service.release_due(db_session=db, principal=principal("isolation"), day=TODAY)
    assert placement.id in [r.placement_id for r in due.refused]
    assert get(db, placement.id).status == "active"
    with pytest.raises(Forbidden):
        service.release(
            db_session=db,
            principal=principal("isolation"),
            placement_id=placement.id,
            override_reason="转外省救治",
        )
    # Command authority may override with a reason (audited); the case stays open.
    done = service.release(
        db_session=db,
        principal=principal("commander"),
        placement_id=placement.id,
        override_reason="转外省救治",
    )
    assert (done.placement.status, done.placement.override_reason) == ("released", "转外省救治")
    assert (
        tracing_service.get_case(db_session=db, principal=system_principal(), ref=made.id).status
        == "open"
    )


def test_once_the_case_is_closed_its_home_monitoring_is_released_as_usual(db):
    _national_9_from_today(db)
    made = _case(db)
    _close(db, made, "release")
    monitoring = _placement_of(db, made.id, "home_monitoring")
    for test in service.tests_of(db, monitoring.id):
        with clock.frozen(NOW + 7 * DAY):
            service.record_test(
                db_session=db,
                principal=system_principal(),
                placement_id=monitoring.id,
                day_no=test.day_no,
                result="negative",
                tested_on=test.due_on,
            )
    with clock.frozen(NOW + 7 * DAY):
        done = service.release(
            db_session=db, principal=system_principal(), placement_id=monitoring.id
        )
    assert (done.placement.status, done.monitoring, done.transfer) == ("released", None, None)


# Through the API ---------------------------------------------------------------------------------


def test_closing_through_the_api_ends_the_placement_in_the_same_request(client, headers, db):
    made, placement, _ = _treated(db, clinical_type="ordinary")
    response = client.post(
        f"/api/v1/cases/{made.code}/close",
        json={"action": "discharge"},
        headers=headers("investigator"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "discharged"
    seen = client.get(f"/api/v1/isolation/placements/{placement.id}", headers=headers("isolation"))
    assert seen.status_code == 200, seen.text
    assert (seen.json()["status"], seen.json()["released_on"]) == ("released", TODAY.isoformat())
    home = client.get(
        "/api/v1/isolation/transfers?status=pending&kind=to_home", headers=headers("isolation")
    )
    assert home.status_code == 200, home.text
    assert [t["person_id"] for t in home.json()] == [made.person_id]


def test_releasing_an_open_cases_placement_through_the_api_names_the_case(client, headers, db):
    made, placement, _ = _treated(db, clinical_type="mild")
    response = client.post(
        f"/api/v1/isolation/placements/{placement.id}/release",
        json={},
        headers=headers("isolation", "in"),
    )
    assert response.status_code == 409, response.text
    assert made.code in response.text
    assert get(db, placement.id).status == "active"
