"""Sites, beds and basics; transfer batches from pending to arrived or failed; no overbooking;
daily closure (日清日结)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from bastion.isolation import sites, transfers
from bastion.isolation.schemas import BatchCreate, SiteCreate
from tests.integration.isolation.helpers import (
    NOW,
    TODAY,
    arrive_at_site,
    batch,
    get,
    need,
    place,
    site,
    task_of,
)
from tests.integration.registry.people import audit_entries
from tests.support.world import NANGUAN_GRID


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def test_a_site_reports_beds_occupancy_and_basics(db):
    hotel = site(db, beds=3)
    view = sites.to_read(db, hotel)
    assert (view.beds, view.occupied, view.free) == (3, 0, 3)
    assert {b.item: b.status for b in view.basics} == {
        "water": "ok",
        "power": "ok",
        "heating": "ok",
        "network": "ok",
    }
    sites.update_basic(
        db_session=db,
        principal=system_principal(),
        code=hotel.code,
        item="heating",
        status="problem",
        note="3号楼暖气停供",
    )
    heating = next(b for b in sites.to_read(db, hotel).basics if b.item == "heating")
    assert (heating.status, heating.note, heating.updated_at) == ("problem", "3号楼暖气停供", NOW)
    assert audit_entries(db, "site.update")[-1].target_id == str(hotel.id)


def test_bad_sites_and_basics_are_refused(db):
    with pytest.raises(InvalidInput) as err:
        sites.create_site(
            db_session=db,
            principal=system_principal(),
            data=SiteCreate(
                code="!", name=" ", kind="tent", region_code=NANGUAN_GRID, rooms=0, beds=-1
            ),
        )
    assert {p.field for p in err.value.problems} == {"code", "name", "kind", "rooms", "beds"}
    hotel = site(db)
    with pytest.raises(InvalidInput) as err:
        sites.update_basic(
            db_session=db,
            principal=system_principal(),
            code=hotel.code,
            item="power",
            status="problem",
            note="",
        )
    assert [p.field for p in err.value.problems] == ["note"]


def test_a_batch_goes_from_pending_to_dispatched_to_arrived(db):
    hotel = site(db, beds=5)
    pids = place(db, need(db), need(db, special_needs="轮椅"))
    b = batch(db, [task_of(db, pid).id for pid in pids], hotel.code)
    assert (b.status, b.cross_region) == ("pending", False)
    assert sites.to_read(db, hotel).occupied == 2  # beds are reserved at assignment
    assert task_of(db, pids[1]).special_needs == "轮椅"
    transfers.dispatch(db_session=db, principal=system_principal(), batch_id=b.id)
    assert task_of(db, pids[0]).status == "dispatched"
    assert get(db, pids[0]).status == "pending"
    transfers.arrive(db_session=db, principal=system_principal(), batch_id=b.id)
    for pid in pids:
        assert task_of(db, pid).status == "arrived"
        assert (get(db, pid).status, get(db, pid).site_id) == ("active", hotel.id)
    with pytest.raises(InvalidTransition):
        transfers.dispatch(db_session=db, principal=system_principal(), batch_id=b.id)
    assert [e.action for e in audit_entries(db, "transfer.arrive")] == ["transfer.arrive"]


def test_a_full_site_refuses_naming_itself_and_its_free_beds(db):
    hotel = site(db, beds=2)
    arrive_at_site(db, place(db, need(db)), hotel.code)
    pids = place(db, need(db), need(db))
    with pytest.raises(Conflict) as err:
        batch(db, [task_of(db, pid).id for pid in pids], hotel.code)
    assert err.value.key == "transfer.site_full"
    assert err.value.params == {"site": hotel.code, "free": 1, "needed": 2}
    assert "1 free beds" in str(err.value)
    # Nothing was assigned: both still wait, and one of them fits.
    assert all(task_of(db, pid).batch_id is None for pid in pids)
    assert batch(db, [task_of(db, pids[0]).id], hotel.code).status == "pending"


def test_a_failed_batch_gives_the_beds_back_and_its_tasks_can_go_again(db):
    hotel = site(db, beds=1)
    [pid] = place(db, need(db))
    b = batch(db, [task_of(db, pid).id], hotel.code)
    with pytest.raises(InvalidInput):
        transfers.fail(db_session=db, principal=system_principal(), batch_id=b.id, reason=" ")
    transfers.fail(db_session=db, principal=system_principal(), batch_id=b.id, reason="车辆故障")
    task = task_of(db, pid)
    assert (task.status, task.failure_reason) == ("failed", "车辆故障")
    assert sites.to_read(db, hotel).free == 1
    again = batch(db, [task.id], hotel.code)
    assert task_of(db, pid).batch_id == again.id


def test_a_task_already_in_a_live_batch_cannot_join_another(db):
    hotel = site(db)
    [pid] = place(db, need(db))
    batch(db, [task_of(db, pid).id], hotel.code)
    with pytest.raises(InvalidInput) as err:
        batch(db, [task_of(db, pid).id], hotel.code)
    assert [p.reason for p in err.value.problems] == ["transfer.task_not_open"]


def test_cases_go_to_treatment_sites_and_contacts_to_centralised_ones(db):
    hotel, makeshift = site(db), site(db, kind="makeshift")
    [case] = place(db, need(db, reason="case", destination="makeshift"))
    with pytest.raises(InvalidInput) as err:
        batch(db, [task_of(db, case).id], hotel.code)
    assert [p.reason for p in err.value.problems] == ["transfer.site_kind_unfit"]
    assert batch(db, [task_of(db, case).id], makeshift.code).status == "pending"


def test_people_from_another_city_make_a_cross_region_batch(db):
    hotel = site(db, where="out")  # a Jilin City hotel
    [pid] = place(db, need(db))  # a Changchun contact
    assert batch(db, [task_of(db, pid).id], hotel.code).cross_region is True


def test_tasks_outside_the_callers_region_are_not_found(db, principal):
    hotel = site(db)
    [pid] = place(db, need(db, where="out"))
    with pytest.raises(NotFound):
        transfers.create_batch(
            db_session=db,
            principal=principal("transfer"),
            data=BatchCreate(
                code="B-OUT",
                vehicle="吉B1",
                escort="赵",
                site=hotel.code,
                tasks=[task_of(db, pid).id],
            ),
        )


def test_open_tasks_from_before_today_are_red(db):
    with clock.frozen(NOW - timedelta(days=1)):
        [yesterday] = place(db, need(db, starts_on=TODAY - timedelta(days=1)))
    [today] = place(db, need(db))
    red = transfers.list_tasks(db_session=db, principal=system_principal(), red_only=True)
    assert [t.placement_id for t in red] == [yesterday]
    listed = {
        t.placement_id: transfers.is_red(t, clock.today())
        for t in transfers.list_tasks(db_session=db, principal=system_principal(), status="open")
    }
    assert listed == {yesterday: True, today: False}
    # Once the person has arrived the flag goes.
    arrive_at_site(db, [yesterday], site(db).code)
    assert transfers.list_tasks(db_session=db, principal=system_principal(), red_only=True) == []
