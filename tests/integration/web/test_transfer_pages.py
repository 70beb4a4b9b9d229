"""The transfer board: open tasks red when left from before today (日清日结), a batch with a
vehicle, an escort and special needs, its dispatch, arrival or failure — through the transfer
service, refused (a full site by name) as the API refuses, with region and CSRF checks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.core import clock
from bastion.isolation.models import TransferBatch
from bastion.web.transfers import transfer_summary
from tests.integration.isolation.helpers import NOW, TODAY, get, need, place, site, task_of
from tests.integration.web.pages import login, main_of

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _contacts(db, count: int, *, days_ago: int = 0) -> list[int]:
    """Close contacts waiting for a transfer to a centralised site; their task ids."""
    with clock.frozen(NOW - days_ago * DAY):
        pids = place(db, *[need(db, starts_on=TODAY - days_ago * DAY) for _ in range(count)])
    db.commit()
    return [task_of(db, pid).id for pid in pids]


def _batch(db, code: str) -> TransferBatch | None:
    db.expire_all()
    return db.execute(select(TransferBatch).where(TransferBatch.code == code)).scalar_one_or_none()


def test_a_batch_is_created_dispatched_and_arrives(client, db):
    hotel = site(db, beds=5)
    tasks = _contacts(db, 2)
    token = login(client, "transfer_in")
    board = main_of(client.get("/transfers").text)
    assert all(f'id="task-{t}"' in board for t in tasks)
    created = client.post(
        "/transfers/batches",
        data={
            "csrf": token,
            "code": "ZY-0325-01",
            "vehicle": "吉A12345",
            "escort": "张医生",
            "site": hotel.code,
            "tasks": [str(t) for t in tasks],
            "need_task": [str(t) for t in tasks],
            "need_text": ["轮椅", ""],
        },
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    batch = _batch(db, "ZY-0325-01")
    assert batch is not None
    assert batch.status == "pending"
    first = task_of(db, _placement_of(db, tasks[0]))
    assert (first.batch_id, first.special_needs) == (batch.id, "轮椅")
    page = main_of(client.get(created.headers["location"]).text)
    assert "ZY-0325-01" in page
    assert "轮椅" in page

    token = login(client, "transfer_in")
    for step in ("dispatch", "arrive"):
        moved = client.post(
            f"/transfers/batches/{batch.id}/{step}", data={"csrf": token}, follow_redirects=False
        )
        assert moved.status_code == 303, moved.text
    assert _batch(db, "ZY-0325-01").status == "arrived"
    assert get(db, _placement_of(db, tasks[1])).status == "active"


def _placement_of(db, task_id: int) -> int:
    from bastion.isolation.models import TransferTask

    db.expire_all()
    task = db.get(TransferTask, task_id)
    assert task is not None
    return task.placement_id


def test_a_full_site_is_refused_by_name_and_nothing_is_booked(client, db):
    hotel = site(db, beds=1)
    tasks = _contacts(db, 2)
    token = login(client, "transfer_in")
    refused = client.post(
        "/transfers/batches",
        data={
            "csrf": token,
            "code": "ZY-FULL",
            "vehicle": "吉A1",
            "escort": "李",
            "site": hotel.code,
            "tasks": [str(t) for t in tasks],
        },
    )
    assert refused.status_code == 409
    assert 'class="error"' in refused.text
    assert hotel.code in refused.text
    assert 'value="ZY-FULL"' in refused.text  # the form keeps what was typed
    assert _batch(db, "ZY-FULL") is None
    nothing = client.post(
        "/transfers/batches",
        data={"csrf": token, "code": "ZY-NONE", "vehicle": "吉A1", "escort": "李"},
    )
    assert nothing.status_code == 422


def test_a_failed_batch_records_its_reason_and_its_people_wait_again(client, db):
    hotel = site(db, beds=3)
    tasks = _contacts(db, 1)
    token = login(client, "transfer_in")
    client.post(
        "/transfers/batches",
        data={
            "csrf": token,
            "code": "ZY-FAIL",
            "vehicle": "吉A2",
            "escort": "王",
            "site": hotel.code,
            "tasks": [str(tasks[0])],
        },
    )
    batch = _batch(db, "ZY-FAIL")
    assert batch is not None
    no_reason = client.post(f"/transfers/batches/{batch.id}/fail", data={"csrf": token})
    assert no_reason.status_code == 422
    failed = client.post(
        f"/transfers/batches/{batch.id}/fail",
        data={"csrf": token, "reason": "车辆故障"},
        follow_redirects=False,
    )
    assert failed.status_code == 303
    assert _batch(db, "ZY-FAIL").failure_reason == "车辆故障"
    board = main_of(client.get("/transfers").text)
    assert f'id="pick-{tasks[0]}"' in board  # may join a new batch
    assert "车辆故障" in board


def test_tasks_left_from_before_today_are_red(client, db):
    old = _contacts(db, 1, days_ago=1)
    new = _contacts(db, 1)
    login(client, "commander_in")
    body = main_of(client.get("/transfers").text)
    assert f'<tr id="task-{old[0]}" class="late">' in body
    assert f'<tr id="task-{new[0]}">' in body
    assert 'class="badge red" id="red-total"' in body


def test_readers_get_no_forms_and_others_are_refused(client, db):
    tasks = _contacts(db, 1)
    token = login(client, "isolation_in")  # reads transfers, does not organise them
    body = main_of(client.get("/transfers").text)
    assert f'id="task-{tasks[0]}"' in body
    assert 'id="new-batch"' not in body
    refused = client.post(
        "/transfers/batches",
        data={
            "csrf": token,
            "code": "ZY-X",
            "vehicle": "v",
            "escort": "e",
            "tasks": [str(tasks[0])],
        },
    )
    assert refused.status_code == 403
    assert _batch(db, "ZY-X") is None
    login(client, "sampler_in")
    assert client.get("/transfers").status_code == 403


def test_outside_the_region_tasks_are_not_seen_nor_batched(client, db):
    tasks = _contacts(db, 1)
    token = login(client, "transfer_out")
    assert f'id="task-{tasks[0]}"' not in main_of(client.get("/transfers").text)
    refused = client.post(
        "/transfers/batches",
        data={
            "csrf": token,
            "code": "ZY-OUT",
            "vehicle": "v",
            "escort": "e",
            "tasks": [str(tasks[0])],
        },
    )
    assert refused.status_code == 404
    assert _batch(db, "ZY-OUT") is None


def test_a_form_without_its_csrf_token_changes_nothing(client, db):
    tasks = _contacts(db, 1)
    login(client, "transfer_in")
    refused = client.post(
        "/transfers/batches",
        data={
            "csrf": "forged",
            "code": "ZY-CSRF",
            "vehicle": "v",
            "escort": "e",
            "tasks": [str(tasks[0])],
        },
    )
    assert refused.status_code in (400, 401, 403)
    assert _batch(db, "ZY-CSRF") is None


def test_the_dashboard_summary_counts_open_and_red_tasks(db, principal):
    _contacts(db, 1, days_ago=2)
    _contacts(db, 2)
    assert transfer_summary(db, principal("commander")) == {"open": 3, "red": 1}
    assert transfer_summary(db, principal("commander", "out")) == {"open": 0, "red": 0}
