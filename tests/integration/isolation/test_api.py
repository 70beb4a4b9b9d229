"""The isolation and protocol API: region-scoped, masked by default, clear refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.protocols import service as protocol_service
from bastion.regions import service as region_service
from tests.integration.isolation.helpers import (
    COMMUNITY,
    NOW,
    TODAY,
    arrive_at_site,
    need,
    place,
    site,
    task_of,
)
from tests.integration.registry.people import audit_entries

BASE = "/api/v1/isolation"
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def test_sites_are_created_listed_with_occupancy_and_basics_updated(client, headers, db):
    h = headers("isolation")
    body = {
        "code": "FC-1",
        "name": "会展中心方舱",
        "kind": "makeshift",
        "region_code": COMMUNITY["in"],
        "rooms": 10,
        "beds": 40,
    }
    created = client.post(f"{BASE}/sites", json=body, headers=h)
    assert created.status_code == 201, created.text
    assert (created.json()["free"], created.json()["occupied"]) == (40, 0)
    again = client.post(f"{BASE}/sites", json=body, headers=h)
    assert again.status_code == 409
    basics = client.post(
        f"{BASE}/sites/FC-1/basics",
        json={"item": "network", "status": "problem", "note": "宽带中断"},
        headers=h,
    )
    assert basics.status_code == 200, basics.text
    assert {b["item"]: b["status"] for b in basics.json()["basics"]}["network"] == "problem"
    listed = client.get(f"{BASE}/sites", headers=headers("analyst"))
    assert [s["code"] for s in listed.json()] == ["FC-1"]
    outside = client.get(f"{BASE}/sites", headers=headers("analyst", "out"))
    assert outside.json() == []


def test_placements_are_masked_unless_unmasked_and_audited(client, headers, db):
    [pid] = place(db, need(db, reason="secondary_contact", destination="home"))
    h = headers("isolation")
    masked = client.get(f"{BASE}/placements/{pid}", headers=h).json()
    assert masked["masked"] is True
    assert masked["person_name"] == "王*"
    assert "*" in masked["person_id_number"]
    assert [t["day_no"] for t in masked["tests"]] == [1, 4, 7]
    assert len(masked["release_blockers"]) == 4  # three tests and the planned end
    plain = client.get(f"{BASE}/placements/{pid}", params={"unmask": True}, headers=h).json()
    assert plain["person_name"] == "王芳"
    assert len(audit_entries(db, "person.unmask")) == 1
    refused = client.get(
        f"{BASE}/placements/{pid}", params={"unmask": True}, headers=headers("analyst")
    )
    assert refused.status_code == 403


def test_release_is_refused_with_the_missing_items_then_allowed_by_override(client, headers, db):
    with clock.frozen(NOW - 3 * DAY):
        [pid] = place(
            db, need(db, reason="secondary_contact", destination="home", starts_on=TODAY - 3 * DAY)
        )
    recorded = client.post(
        f"{BASE}/placements/{pid}/tests",
        json={"day_no": 1, "result": "negative", "tested_on": (TODAY - 3 * DAY).isoformat()},
        headers=headers("isolation"),
    )
    assert recorded.status_code == 200, recorded.text
    refused = client.post(
        f"{BASE}/placements/{pid}/release",
        json={},
        headers=headers("isolation"),
        params={"lang": "en"},
    )
    assert refused.status_code == 409
    problems = [p["code"] for p in refused.json()["errors"]]
    assert problems == [
        "placement.release_test_missing",
        "placement.release_test_missing",
        "placement.release_before_planned_end",
    ]
    future = client.post(
        f"{BASE}/placements/{pid}/release",
        json={"on": (TODAY + DAY).isoformat()},
        headers=headers("isolation"),
    )
    assert future.status_code == 422
    done = client.post(
        f"{BASE}/placements/{pid}/release",
        json={"override_reason": "经指挥部批准"},
        headers=headers("commander"),
    )
    assert done.status_code == 200, done.text
    assert done.json()["placement"]["status"] == "released"
    assert done.json()["placement"]["override_reason"] == "经指挥部批准"


def test_due_today_lists_placements_at_or_past_their_planned_end(client, headers, db):
    with clock.frozen(NOW - 6 * DAY):
        [due] = place(
            db, need(db, reason="secondary_contact", destination="home", starts_on=TODAY - 6 * DAY)
        )
    place(db, need(db, reason="secondary_contact", destination="home"))
    page = client.get(f"{BASE}/placements", params={"due": True}, headers=headers("isolation"))
    assert page.status_code == 200, page.text
    assert [p["id"] for p in page.json()["items"]] == [due]


def test_transfers_batch_through_the_api_and_a_full_site_refuses(client, headers, db):
    hotel = site(db, beds=1)
    with clock.frozen(NOW - DAY):
        a, b = place(db, need(db, starts_on=TODAY - DAY), need(db, starts_on=TODAY - DAY))
    h = headers("transfer")
    tasks = client.get(f"{BASE}/transfers", params={"red": True}, headers=h).json()
    assert sorted(t["placement_id"] for t in tasks) == sorted([a, b])
    assert all(t["red"] for t in tasks)
    full = client.post(
        f"{BASE}/transfers/batches",
        json={
            "code": "B-1",
            "vehicle": "吉A1",
            "escort": "张",
            "site": hotel.code,
            "tasks": [task_of(db, a).id, task_of(db, b).id],
        },
        headers=h,
        params={"lang": "en"},
    )
    assert full.status_code == 409
    assert full.json()["title"] == f"Site {hotel.code} has 1 free beds; this batch needs 2."
    created = client.post(
        f"{BASE}/transfers/batches",
        json={
            "code": "B-2",
            "vehicle": "吉A1",
            "escort": "张",
            "site": hotel.code,
            "tasks": [task_of(db, a).id],
            "special_needs": {str(task_of(db, a).id): "需要轮椅"},
        },
        headers=h,
    )
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]
    assert task_of(db, a).special_needs == "需要轮椅"
    for step, status in (("dispatch", "dispatched"), ("arrive", "arrived")):
        moved = client.post(f"{BASE}/transfers/batches/{batch_id}/{step}", headers=h)
        assert moved.status_code == 200, moved.text
        assert moved.json()["status"] == status
    again = client.post(
        f"{BASE}/transfers/batches/{batch_id}/fail", json={"reason": "x"}, headers=h
    )
    assert again.status_code == 409
    tasks = client.get(f"{BASE}/transfers", params={"red": True}, headers=h).json()
    assert [t["placement_id"] for t in tasks] == [b]


def test_zone_lift_check_and_lift_with_override(client, headers, db):
    with clock.frozen(NOW - 5 * DAY):
        zone = region_service.designate_zone(
            db_session=db,
            principal=system_principal(),
            region_code=COMMUNITY["in"],
            kind="lockdown",
            starts_on=TODAY - 5 * DAY,
            reason="聚集性疫情",
        )
    check = client.get(f"{BASE}/zones/{zone.id}/lift-check", headers=headers("analyst"))
    assert check.status_code == 200, check.text
    assert check.json()["ready"] is False
    assert check.json()["failing"] == [
        "isolation.zone_days_without_cases",
        "isolation.zone_negative_round",
    ]
    h = headers("commander")
    refused = client.post(
        f"{BASE}/zones/{zone.id}/lift", json={"ends_on": TODAY.isoformat()}, headers=h
    )
    assert refused.status_code == 409
    assert len(refused.json()["errors"]) == 2
    lifted = client.post(
        f"{BASE}/zones/{zone.id}/lift",
        json={"ends_on": TODAY.isoformat(), "override_reason": "专家研判"},
        headers=h,
    )
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["ends_on"] == TODAY.isoformat()


def test_protocols_api_shows_profiles_and_says_a_change_applies_to_new_placements(
    client, headers, db
):
    h = headers("admin")
    shown = client.get("/api/v1/protocols", headers=h)
    assert shown.status_code == 200, shown.text
    assert shown.json()["in_force"] == "jilin-2022-03"
    assert {p["key"] for p in shown.json()["profiles"]} == {
        "jilin-2022-03",
        "national-9",
        "national-2022-11",
    }
    [pid] = place(db, need(db))
    arrive_at_site(db, [pid], site(db).code)
    chosen = client.post(
        "/api/v1/protocols/choices",
        json={"profile": "national-9", "effective_from": TODAY.isoformat(), "reason": "第九版"},
        headers=h,
        params={"lang": "en"},
    )
    assert chosen.status_code == 201, chosen.text
    assert "new placements only" in chosen.json()["note"]
    view = client.get(f"{BASE}/placements/{pid}", params={"lang": "en"}, headers=h).json()
    assert view["profile"] == "jilin-2022-03"
    assert "keeps its profile jilin-2022-03" in view["profile_note"]
    assert protocol_service.profile_on(db, TODAY).key == "national-9"


def test_figures_api_is_scoped(client, headers, db):
    place(db, need(db, reason="secondary_contact", destination="home"))
    ok = client.get(f"{BASE}/figures", params={"region": "220100"}, headers=headers("analyst"))
    assert ok.status_code == 200, ok.text
    assert (ok.json()["home"], ok.json()["by_city"]) == (
        1,
        {"220100": {"centralised": 0, "home": 1}},
    )
    out = client.get(
        f"{BASE}/figures", params={"region": "220100"}, headers=headers("analyst", "out")
    )
    assert out.status_code == 403


def test_the_days_test_tasks_list_who_is_tested_today(client, headers, db):
    with clock.frozen(NOW - 3 * DAY):
        [day4] = place(
            db, need(db, reason="secondary_contact", destination="home", starts_on=TODAY - 3 * DAY)
        )
    [day1] = place(db, need(db, reason="secondary_contact", destination="home"))
    place(db, need(db))  # pending at home, waiting for transfer: not tested here yet
    h = headers("isolation")
    tasks = client.get(f"{BASE}/tests", headers=h).json()
    assert sorted((t["placement_id"], t["day_no"]) for t in tasks) == sorted([(day4, 4), (day1, 1)])
    assert all(t["masked"] and t["result"] is None for t in tasks)
    client.post(
        f"{BASE}/placements/{day1}/tests", json={"day_no": 1, "result": "negative"}, headers=h
    )
    tasks = {t["placement_id"]: t["result"] for t in client.get(f"{BASE}/tests", headers=h).json()}
    assert tasks == {day4: None, day1: "negative"}
