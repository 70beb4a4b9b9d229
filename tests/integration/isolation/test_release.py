"""Release: tests done and negative, the planned end reached, or an authorised override; home
monitoring and the transfer home after a centralised period; running placements keep their
profile."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Conflict, Forbidden, InvalidInput, InvalidTransition
from bastion.isolation import service, transfers
from bastion.protocols import service as protocol_service
from tests.integration.isolation.helpers import (
    NOW,
    TODAY,
    arrive_at_site,
    batch,
    get,
    need,
    place,
    record_all_negative,
    site,
    task_of,
)
from tests.integration.registry.people import audit_entries

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _at(days: int):
    return clock.frozen(NOW + days * DAY)


def _centralised_contact(db, **kw) -> int:
    with _at(-20):
        [pid] = place(db, need(db, starts_on=TODAY - 20 * DAY, **kw))
        arrive_at_site(db, [pid], site(db).code)
    return pid


def _release(db, pid, principal=None, **kw):
    return service.release(
        db_session=db, principal=principal or system_principal(), placement_id=pid, **kw
    )


def test_a_close_contact_released_on_time_moves_to_home_monitoring(db):
    pid = _centralised_contact(db)
    placement = get(db, pid)
    assert placement.planned_end_on == TODAY - 7 * DAY  # 14 days from 20 days ago
    with _at(-7):
        record_all_negative(db, pid)
        done = _release(db, pid)
    assert (done.placement.status, done.placement.released_on) == ("released", TODAY - 7 * DAY)
    assert done.placement.override_reason is None
    monitoring = done.monitoring
    assert monitoring is not None
    assert (monitoring.setting, monitoring.status, monitoring.profile) == (
        "home_monitoring",
        "pending",
        "jilin-2022-03",
    )
    assert (monitoring.starts_on, monitoring.planned_end_on) == (TODAY - 6 * DAY, TODAY)
    assert [t.day_no for t in service.tests_of(db, monitoring.id)] == [2, 7]
    home = done.transfer
    assert home is not None
    assert (home.kind, home.destination, home.placement_id) == ("to_home", "home", monitoring.id)
    # The people go home in a batch without a site; on arrival monitoring begins.
    with _at(-7):
        b = batch(db, [home.id], None)
        transfers.dispatch(db_session=db, principal=system_principal(), batch_id=b.id)
        transfers.arrive(db_session=db, principal=system_principal(), batch_id=b.id)
    assert get(db, monitoring.id).status == "active"
    assert [e.target_id for e in audit_entries(db, "placement.release")] == [str(pid)]


def test_release_refuses_listing_every_missing_item(db):
    pid = _centralised_contact(db)
    with _at(-12):
        service.record_test(
            db_session=db,
            principal=system_principal(),
            placement_id=pid,
            day_no=1,
            result="negative",
            tested_on=TODAY - 20 * DAY,
        )
        with pytest.raises(InvalidTransition) as err:
            _release(db, pid)
    assert err.value.key == "placement.release_refused"
    assert [(p.reason, p.params["day"]) for p in err.value.problems] == [
        ("placement.release_test_missing", 4),
        ("placement.release_test_missing", 7),
        ("placement.release_test_missing", 10),
        ("placement.release_test_missing", 14),
        ("placement.release_before_planned_end", ""),
    ]
    assert get(db, pid).status == "active"


def test_early_release_needs_an_authorised_override_with_a_reason(db, principal):
    pid = _centralised_contact(db, where="in")
    with _at(-10):
        with pytest.raises(InvalidTransition):
            _release(db, pid, principal=principal("isolation"))
        with pytest.raises(Forbidden):
            _release(db, pid, principal=principal("isolation"), override_reason="就医")
        with pytest.raises(Forbidden):
            _release(db, pid, principal=principal("commander"))
        done = _release(db, pid, principal=principal("commander"), override_reason="转院就医")
    assert (done.placement.status, done.placement.override_reason) == ("released", "转院就医")
    [entry] = audit_entries(db, "placement.release")
    assert entry.details is not None
    assert "转院就医" in entry.details
    assert "before_planned_end" in entry.details


def test_a_positive_test_is_never_overridden(db):
    pid = _centralised_contact(db)
    with _at(-7):
        record_all_negative(db, pid)
    # A recorded result is not silently replaced by a different one.
    with _at(-7), pytest.raises(Conflict):
        service.record_test(
            db_session=db,
            principal=system_principal(),
            placement_id=pid,
            day_no=14,
            result="positive",
        )
    other = _centralised_contact(db)
    with _at(-7):
        service.record_test(
            db_session=db,
            principal=system_principal(),
            placement_id=other,
            day_no=4,
            result="positive",
            tested_on=TODAY - 17 * DAY,
        )
        with pytest.raises(InvalidTransition) as err:
            _release(db, other, override_reason="指挥部同意")
    assert err.value.key == "placement.release_positive"


def test_bad_release_and_test_inputs(db):
    pid = _centralised_contact(db)
    with pytest.raises(InvalidInput) as err:
        _release(db, pid, on=TODAY + DAY)
    assert err.value.problems[0].reason == "placement.date_in_future"
    with pytest.raises(InvalidInput):
        _release(db, pid, on=TODAY - 30 * DAY)
    for kwargs, field in (
        ({"day_no": 2, "result": "negative"}, "day_no"),
        ({"day_no": 4, "result": "negative", "tested_on": TODAY + DAY}, "tested_on"),
        ({"day_no": 4, "result": "maybe"}, "result"),
        ({"day_no": 4, "result": None, "tube_barcode": "T-NONE"}, "tube_barcode"),
    ):
        with pytest.raises(InvalidInput) as err:
            service.record_test(
                db_session=db, principal=system_principal(), placement_id=pid, **kwargs
            )
        assert err.value.problems[0].field == field
    [pending] = place(db, need(db))
    with pytest.raises(InvalidTransition):
        _release(db, pending)


def test_home_isolation_ends_at_home_without_a_transfer(db):
    with _at(-10):
        [pid] = place(
            db, need(db, reason="secondary_contact", destination="home", starts_on=TODAY - 10 * DAY)
        )
    record_all_negative(db, pid)
    done = _release(db, pid)
    assert (done.monitoring, done.transfer) == (None, None)


def test_who_is_due_for_release_today(db):
    due = _centralised_contact(db)  # planned end a week ago, still active
    with _at(-13):
        [later] = place(db, need(db, starts_on=TODAY - 13 * DAY))
        arrive_at_site(db, [later], site(db).code)
    [home] = place(db, need(db, reason="secondary_contact", destination="home"))
    rows, total = service.list_placements(db_session=db, principal=system_principal(), due_on=TODAY)
    assert ([p.id for p in rows], total) == ([due, later], 2)
    assert home not in [p.id for p in rows]


def test_a_profile_change_applies_to_new_placements_only(db):
    pid = _centralised_contact(db)  # jilin-2022-03: 14 days
    with _at(-15):
        protocol_service.choose(
            db_session=db,
            principal=system_principal(),
            profile="national-9",
            effective_from=TODAY - 14 * DAY,
            reason="第九版方案",
        )
    # Day 9: national-9 would have ended a close contact's centralised period on day 7.
    with _at(-12):
        with pytest.raises(InvalidTransition) as err:
            _release(db, pid)
        assert "placement.release_before_planned_end" in [p.reason for p in err.value.problems]
        assert service.profile_note(db, get(db, pid)) == "placement.profile_kept"
        [new] = place(db, need(db, starts_on=TODAY - 12 * DAY))
    assert get(db, pid).planned_end_on == TODAY - 7 * DAY
    assert (get(db, new).profile, get(db, new).planned_end_on) == ("national-9", TODAY - 6 * DAY)
    assert task_of(db, new).status == "pending"


def test_a_test_day_can_take_the_labs_result_of_its_tube(db):
    from bastion.testing import service as testing_service
    from bastion.testing.schemas import RoundCreate, SiteCreate
    from tests.integration.isolation.helpers import COMMUNITY, GRID
    from tests.integration.registry.people import register
    from tests.support import pool_factories

    person = register(db, region_code=GRID["in"])
    [pid] = place(db, need(db, reason="secondary_contact", destination="home", person_id=person.id))
    rnd = testing_service.create_round(
        db_session=db,
        principal=system_principal(),
        data=RoundCreate(code="R-ISO-T", name="隔离点核酸", region_code="220102", starts_at=NOW),
    )
    sampling = testing_service.create_site(
        db_session=db,
        principal=system_principal(),
        data=SiteCreate(
            code="S-ISO-T",
            name="隔离点采样",
            region_code=COMMUNITY["in"],
            capacity_per_hour=100,
            grids=[GRID["in"]],
        ),
    )
    tube = pool_factories.tube(db, rnd, sampling, "TISO0001", [person], at=NOW, kind="single")
    other = pool_factories.tube(
        db, rnd, sampling, "TISO0002", [register(db, region_code=GRID["in"])], at=NOW, kind="single"
    )
    pool_factories.result(db, other, "negative", at=NOW)
    with pytest.raises(InvalidInput) as err:
        service.record_test(
            db_session=db,
            principal=system_principal(),
            placement_id=pid,
            day_no=1,
            result=None,
            tube_barcode=other.barcode,
        )
    assert err.value.problems[0].reason == "placement.tube_not_theirs"
    with pytest.raises(InvalidInput):
        service.record_test(
            db_session=db,
            principal=system_principal(),
            placement_id=pid,
            day_no=1,
            result=None,
            tube_barcode=tube.barcode,
        )
    pool_factories.result(db, tube, "negative", at=NOW)
    test = service.record_test(
        db_session=db,
        principal=system_principal(),
        placement_id=pid,
        day_no=1,
        result=None,
        tube_barcode=tube.barcode,
    )
    assert (test.result, test.tube_barcode, test.tested_on) == ("negative", "TISO0001", TODAY)
