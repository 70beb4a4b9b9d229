"""The isolation board: sites against beds with their basics, placements with filters, who is
due for release today (release; override with a reason for the command), and today's test
results — through the isolation services, with the API's permission, region and CSRF checks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.core import clock
from bastion.isolation import sites
from bastion.isolation.models import PlacementTest
from bastion.web.isolation import isolation_summary
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
from tests.integration.web.pages import login, main_of

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _due_at_site(db, hotel_code: str, *, tested: bool = True) -> int:
    """A close contact placed 20 days ago at ``hotel_code``, due for release today."""
    with clock.frozen(NOW - 20 * DAY):
        [pid] = place(db, need(db, starts_on=TODAY - 20 * DAY))
        arrive_at_site(db, [pid], hotel_code)
    if tested:
        record_all_negative(db, pid)
    db.commit()
    return pid


def test_the_isolation_team_sees_beds_and_who_is_due_and_releases(client, db):
    hotel = site(db, beds=3)
    pid = _due_at_site(db, hotel.code)
    token = login(client, "isolation_in")
    page = client.get("/isolation")
    assert page.status_code == 200
    body = main_of(page.text)
    assert f'id="site-{hotel.code}"' in body
    assert "1 / 3" in body  # beds taken against beds
    assert f'id="due-{pid}"' in body
    assert f'action="/isolation/placements/{pid}/release"' in body
    released = client.post(
        f"/isolation/placements/{pid}/release", data={"csrf": token}, follow_redirects=False
    )
    assert released.status_code == 303, released.text
    assert get(db, pid).status == "released"
    after = main_of(client.get(released.headers["location"]).text)
    assert 'class="notice"' in after
    assert f'id="due-{pid}"' not in after


def test_a_release_with_tests_missing_is_refused_listing_them_and_the_command_overrides(client, db):
    hotel = site(db)
    pid = _due_at_site(db, hotel.code, tested=False)
    token = login(client, "isolation_in")
    refused = client.post(f"/isolation/placements/{pid}/release", data={"csrf": token})
    assert refused.status_code == 409
    assert refused.text.count("<li>") >= 5  # one line per test day not done
    assert get(db, pid).status == "active"

    token = login(client, "commander_in")
    board = main_of(client.get("/isolation").text)
    assert 'name="override_reason"' in board
    overridden = client.post(
        f"/isolation/placements/{pid}/release",
        data={"csrf": token, "override_reason": "指挥部特批：送医"},
        follow_redirects=False,
    )
    assert overridden.status_code == 303, overridden.text
    placement = get(db, pid)
    assert (placement.status, placement.override_reason) == ("released", "指挥部特批：送医")


def test_a_test_result_is_recorded_for_the_day(client, db):
    [pid] = place(db, need(db, destination="home"))  # home isolation: active at once, day 1 today
    db.commit()
    token = login(client, "isolation_in")
    body = main_of(client.get("/isolation").text)
    assert f'id="test-{pid}-1"' in body
    recorded = client.post(
        f"/isolation/placements/{pid}/tests",
        data={"csrf": token, "day_no": "1", "result": "negative"},
        follow_redirects=False,
    )
    assert recorded.status_code == 303, recorded.text
    db.expire_all()
    result = db.execute(
        select(PlacementTest.result).where(
            PlacementTest.placement_id == pid, PlacementTest.day_no == 1
        )
    ).scalar_one()
    assert result == "negative"
    wrong_day = client.post(
        f"/isolation/placements/{pid}/tests",
        data={"csrf": token, "day_no": "2", "result": "negative"},
    )
    assert wrong_day.status_code == 422
    assert 'class="error"' in wrong_day.text


def test_a_basic_is_reported_and_a_problem_needs_a_note(client, db):
    hotel = site(db)
    db.commit()
    token = login(client, "isolation_in")
    form = {"csrf": token, "site": hotel.code, "item": "heating", "status": "problem"}
    refused = client.post("/isolation/basics", data=form)
    assert refused.status_code == 422
    done = client.post(
        "/isolation/basics", data={**form, "note": "3号楼暖气停供"}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    db.expire_all()
    heating = next(b for b in sites.to_read(db, hotel).basics if b.item == "heating")
    assert (heating.status, heating.note) == ("problem", "3号楼暖气停供")
    assert "3号楼暖气停供" in main_of(client.get("/isolation").text)


def test_placements_are_filtered(client, db):
    [home] = place(db, need(db, destination="home"))
    [case] = place(db, need(db, reason="case", destination="hospital"))
    db.commit()
    login(client, "analyst_in")
    cases = main_of(client.get("/isolation?reason=case").text)
    assert f'id="placement-{case}"' in cases
    assert f'id="placement-{home}"' not in cases
    every = main_of(client.get("/isolation?reason=nonsense").text)  # an unknown filter: none
    assert f'id="placement-{home}"' in every


def test_readers_get_no_forms_and_others_are_refused(client, db):
    hotel = site(db)
    pid = _due_at_site(db, hotel.code)
    token = login(client, "analyst_in")
    body = main_of(client.get("/isolation").text)
    assert f'id="due-{pid}"' in body
    assert "/release" not in body
    assert 'id="basic-form"' not in body
    refused = client.post(f"/isolation/placements/{pid}/release", data={"csrf": token})
    assert refused.status_code == 403
    assert get(db, pid).status == "active"
    login(client, "sampler_in")
    assert client.get("/isolation").status_code == 403


def test_outside_the_region_nothing_is_seen_or_changed(client, db):
    hotel = site(db)
    pid = _due_at_site(db, hotel.code)
    token = login(client, "isolation_out")
    body = main_of(client.get("/isolation").text)
    assert hotel.code not in body
    assert f'id="due-{pid}"' not in body
    refused = client.post(f"/isolation/placements/{pid}/release", data={"csrf": token})
    assert refused.status_code == 404
    assert get(db, pid).status == "active"


def test_a_form_without_its_csrf_token_changes_nothing(client, db):
    hotel = site(db)
    pid = _due_at_site(db, hotel.code)
    login(client, "isolation_in")
    refused = client.post(f"/isolation/placements/{pid}/release", data={"csrf": "forged"})
    assert refused.status_code in (400, 401, 403)
    assert get(db, pid).status == "active"


def test_the_dashboard_summary_counts_beds_and_who_is_due(db, principal):
    hotel = site(db, beds=4)
    _due_at_site(db, hotel.code)
    summary = isolation_summary(db, principal("commander"))
    assert (summary["beds"], summary["occupied"], summary["due"]) == (4, 1, 1)
    assert isolation_summary(db, principal("commander", "out"))["beds"] == 0


def test_the_boards_are_translated_in_both_languages(client, db):
    hotel = site(db)
    _due_at_site(db, hotel.code, tested=False)
    place(db, need(db))  # waiting for a transfer
    db.commit()
    login(client, "admin_province")
    for path in ("/isolation", "/transfers", "/admin/protocols"):
        for lang in ("en", "zh-CN"):
            page = client.get(f"{path}?lang={lang}")
            assert page.status_code == 200, path
            body = main_of(page.text)
            assert "web." not in body, (path, lang)  # no message key left untranslated
    assert "Awaiting transfer" in main_of(client.get("/isolation?lang=en").text)
