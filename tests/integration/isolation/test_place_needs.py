"""place_needs: set-based, idempotent per (person, source), under the profile of its first day."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Forbidden, InvalidInput
from bastion.isolation import service
from bastion.isolation.models import Placement, PlacementTest, TransferTask
from bastion.protocols import service as protocol_service
from tests.integration.isolation.helpers import NOW, TODAY, get, need, place, task_of


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def test_a_close_contact_gets_a_pending_centralised_placement_and_a_transfer_task(db):
    [pid] = place(db, need(db))
    placement = get(db, pid)
    assert (placement.setting, placement.status, placement.profile) == (
        "centralised",
        "pending",
        "jilin-2022-03",
    )
    assert placement.starts_on == TODAY
    assert placement.planned_end_on == TODAY + timedelta(days=13)
    days = [t.day_no for t in service.tests_of(db, pid)]
    assert days == [1, 4, 7, 10, 14]
    task = task_of(db, pid)
    assert (task.kind, task.destination, task.status, task.created_on) == (
        "to_site",
        "centralised",
        "pending",
        TODAY,
    )


def test_home_isolation_needs_no_vehicle_and_starts_active(db):
    [pid] = place(db, need(db, reason="secondary_contact", destination="home"))
    placement = get(db, pid)
    assert (placement.setting, placement.status) == ("home", "active")
    assert (
        db.execute(
            select(func.count()).select_from(TransferTask).where(TransferTask.placement_id == pid)
        ).scalar_one()
        == 0
    )


def test_a_case_goes_to_a_makeshift_hospital_with_discharge_tests(db):
    [pid] = place(db, need(db, reason="case", destination="makeshift"))
    placement = get(db, pid)
    assert (placement.setting, placement.reason, placement.source_type) == (
        "makeshift",
        "case",
        "case",
    )
    assert [t.day_no for t in service.tests_of(db, pid)] == [7, 8]
    assert placement.planned_end_on == TODAY + timedelta(days=7)
    assert task_of(db, pid).destination == "makeshift"


def test_sending_the_same_needs_again_changes_nothing(db):
    needs = [need(db), need(db), need(db, reason="case", destination="hospital")]
    first = service.place_needs(db_session=db, principal=system_principal(), needs=needs)
    assert (first.created, first.unchanged, first.transfers) == (3, 0, 3)
    before = db.execute(select(func.count()).select_from(PlacementTest)).scalar_one()
    again = service.place_needs(db_session=db, principal=system_principal(), needs=needs)
    assert (again.created, again.unchanged, again.transfers) == (0, 3, 0)
    assert again.placement_ids == first.placement_ids
    assert db.execute(select(func.count()).select_from(PlacementTest)).scalar_one() == before


def test_a_contact_who_becomes_a_case_leaves_contact_isolation(db):
    contact = need(db)
    [contact_pid] = place(db, contact)
    report = service.place_needs(
        db_session=db,
        principal=system_principal(),
        needs=[need(db, reason="case", destination="makeshift", person_id=contact.person_id)],
    )
    assert (report.created, report.superseded) == (1, 1)
    assert get(db, contact_pid).status == "cancelled"
    assert task_of(db, contact_pid).status == "cancelled"


def test_each_placement_keeps_the_profile_of_its_first_day(db):
    with clock.frozen(NOW - timedelta(days=10)):
        protocol_service.choose(
            db_session=db,
            principal=system_principal(),
            profile="national-9",
            effective_from=TODAY,
            reason="第九版方案",
        )
    early = need(db, starts_on=TODAY - timedelta(days=2))
    late = need(db)
    early_pid, late_pid = place(db, early, late)
    assert get(db, early_pid).profile == "jilin-2022-03"
    assert get(db, early_pid).planned_end_on == early.starts_on + timedelta(days=13)
    assert get(db, late_pid).profile == "national-9"
    assert get(db, late_pid).planned_end_on == TODAY + timedelta(days=6)


def test_secondary_contacts_are_not_placed_when_the_profile_does_not_trace_them(db):
    with clock.frozen(NOW - timedelta(days=10)):
        protocol_service.choose(
            db_session=db,
            principal=system_principal(),
            profile="national-2022-11",
            effective_from=TODAY,
            reason="二十条",
        )
    report = service.place_needs(
        db_session=db,
        principal=system_principal(),
        needs=[need(db, reason="secondary_contact", destination="home")],
    )
    assert (report.created, report.not_managed, report.placement_ids) == (0, 1, (None,))


def test_bad_needs_are_refused_naming_the_row(db):
    good = need(db)
    future = need(db, starts_on=TODAY + timedelta(days=1))
    unfit = need(db, reason="case", destination="home")
    with pytest.raises(InvalidInput) as err:
        service.place_needs(
            db_session=db, principal=system_principal(), needs=[good, future, unfit]
        )
    assert {(p.row, p.field, p.reason) for p in err.value.problems} == {
        (2, "starts_on", "placement.date_in_future"),
        (3, "destination", "placement.destination_unfit"),
    }
    assert db.execute(select(func.count()).select_from(Placement)).scalar_one() == 0


def test_an_investigator_may_place_inside_their_region_only(db, principal):
    investigator = principal("investigator")
    assert place(db, need(db), principal=investigator)
    with pytest.raises(Forbidden):
        place(db, need(db, where="out"), principal=investigator)
    with pytest.raises(Forbidden):
        place(db, need(db), principal=principal("analyst"))


def test_an_empty_batch_does_nothing(db):
    report = service.place_needs(db_session=db, principal=system_principal(), needs=[])
    assert (report.created, report.unchanged) == (0, 0)
