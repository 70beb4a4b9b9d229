"""Rounds, sites and labs: command staff open and close rounds and register sites and labs;
the forms are the testing service's, with its refusals."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from bastion.testing.models import Lab, Round, Site
from tests.integration.web.pages import login, main_of
from tests.support.world import NANGUAN_GRID


def _round(db, code: str) -> Round | None:
    db.expire_all()
    return db.execute(select(Round).where(Round.code == code)).scalar_one_or_none()


def test_a_commander_opens_a_round_in_local_time_and_closes_it(client, db, scene):
    token = login(client, "commander_in")
    response = client.post(
        "/rounds",
        data={
            "csrf": token,
            "code": "R-WEB-2",
            "name": "第二轮",
            "region_code": "220102",
            "starts_at": "2022-03-26T08:00",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    opened = _round(db, "R-WEB-2")
    assert opened.starts_at == datetime(2022, 3, 26, 0, 0, tzinfo=UTC)  # 08:00 in Changchun
    assert "R-WEB-2" in main_of(client.get("/rounds").text)
    closed = client.post("/rounds/R-WEB-2/close", data={"csrf": token}, follow_redirects=False)
    assert closed.status_code == 303
    assert _round(db, "R-WEB-2").status == "closed"


def test_a_bad_round_names_each_field(client, db, scene):
    token = login(client, "commander_in")
    response = client.post(
        "/rounds",
        data={
            "csrf": token,
            "code": "R-WEB-3",
            "name": "",
            "region_code": "220102",
            "starts_at": "yesterday",
        },
    )
    assert response.status_code == 422
    assert "starts_at" in main_of(response.text)
    assert _round(db, "R-WEB-3") is None


def test_a_commander_registers_a_site_and_a_lab(client, db, scene):
    token = login(client, "commander_in")
    site = client.post(
        "/sites",
        data={
            "csrf": token,
            "code": "SITE-NEW",
            "name": "新采样点",
            "region_code": "220102001001",
            "capacity_per_hour": "200",
            "grids": NANGUAN_GRID,
        },
        follow_redirects=False,
    )
    assert site.status_code == 303, site.text
    lab = client.post(
        "/labs",
        data={
            "csrf": token,
            "code": "LAB-NEW",
            "name": "新实验室",
            "region_code": "220102",
            "daily_capacity": "45000",
        },
        follow_redirects=False,
    )
    assert lab.status_code == 303, lab.text
    page = main_of(client.get("/rounds").text)
    assert "SITE-NEW" in page
    assert "LAB-NEW" in page
    assert db.execute(select(Lab.daily_capacity).where(Lab.code == "LAB-NEW")).scalar_one() == (
        45000
    )


def test_a_commander_outside_cannot_place_a_site_in_changchun(client, db, scene):
    token = login(client, "commander_out")
    response = client.post(
        "/sites",
        data={
            "csrf": token,
            "code": "SITE-X",
            "name": "x",
            "region_code": "220102001001",
            "capacity_per_hour": "200",
        },
    )
    assert response.status_code == 403
    assert db.execute(select(Site).where(Site.code == "SITE-X")).first() is None
    assert "SITE-CC" not in main_of(response.text)


def test_an_analyst_sees_the_lists_without_forms(client, scene):
    token = login(client, "analyst_in")
    page = client.get("/rounds")
    assert page.status_code == 200
    assert "R-WEB-1" in page.text
    for form in ("open-round", "create-site", "create-lab"):
        assert f'id="{form}"' not in page.text
    refused = client.post("/rounds/R-WEB-1/close", data={"csrf": token})
    assert refused.status_code == 403


def test_a_control_character_in_a_form_shows_the_form_again_naming_the_field(client, db, scene):
    token = login(client, "commander_in")
    response = client.post(
        "/sites",
        data={
            "csrf": token,
            "code": "SITE-W\u200b9",  # a zero-width space pasted with the code
            "name": "采样点\x00",
            "region_code": "220102",
            "capacity_per_hour": "100",
        },
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")  # the page, not JSON
    body = main_of(response.text)
    assert 'role="alert"' in body
    assert "code" in body
    assert "name" in body
    db.expire_all()
    assert db.execute(select(Site).where(Site.code.like("SITE-W%"))).first() is None
