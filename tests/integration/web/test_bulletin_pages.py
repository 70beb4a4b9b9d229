"""The bulletin page: the day's text in Chinese or English as the service renders it, downloads
and charts, publication, a correction with its reason and what changed — through the bulletin
service, with its permission and region refusals and CSRF on every form."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bastion.bulletin.models import BulletinRevision
from bastion.core import clock
from bastion.web.bulletin import latest_bulletin_summary
from tests.integration.bulletin import scenario
from tests.integration.web.pages import login, main_of

DAY = scenario.D.isoformat()
PAGE = f"/bulletin?day={DAY}"


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(scenario.NOW):
        yield


@pytest.fixture
def cases(db):
    """Two new local confirmed cases in Changchun on the day."""
    scenario.case(db, scenario.CHANGCHUN, on=scenario.D)
    scenario.case(db, scenario.CHANGCHUN, on=scenario.D)
    db.commit()


def _revisions(db) -> list[int]:
    db.expire_all()
    return list(
        db.execute(
            select(BulletinRevision.revision)
            .where(BulletinRevision.day == scenario.D, BulletinRevision.region_code == "220100")
            .order_by(BulletinRevision.revision)
        ).scalars()
    )


def test_an_analyst_reads_publishes_and_corrects_the_day(client, db, cases):
    token = login(client, "analyst_in")
    page = client.get(PAGE)
    assert page.status_code == 200
    body = main_of(page.text)
    assert "3月25日0—24时，长春市新增本土确诊病例2例" in body
    assert 'class="badge yellow" id="state"' in body  # a draft
    assert 'id="publish"' in body
    assert 'id="correct"' not in body
    assert "web." not in main_of(client.get(PAGE + "&lang=en").text)  # every label translated
    client.get(PAGE + "&lang=zh-CN")  # back to Chinese (the choice is kept in a cookie)
    english = main_of(client.get(PAGE + "&text=en").text)
    assert "25 March 2022" in english
    assert "2 new local confirmed cases" in english

    published = client.post(
        f"/bulletin/{DAY}/publish", data={"csrf": token}, follow_redirects=False
    )
    assert published.status_code == 303, published.text
    assert _revisions(db) == [1]
    body = main_of(client.get(published.headers["location"]).text)
    assert 'id="revision-1"' in body
    assert 'id="correct"' in body
    assert 'id="publish"' not in body
    again = client.post(f"/bulletin/{DAY}/publish", data={"csrf": token})
    assert again.status_code == 409
    assert _revisions(db) == [1]

    scenario.case(db, scenario.CHANGCHUN, on=scenario.D)  # reported late
    db.commit()
    no_reason = client.post(f"/bulletin/{DAY}/correct", data={"csrf": token, "reason": " "})
    assert no_reason.status_code == 422
    corrected = client.post(
        f"/bulletin/{DAY}/correct",
        data={"csrf": token, "reason": "长春市补报1例确诊病例"},
        follow_redirects=False,
    )
    assert corrected.status_code == 303, corrected.text
    assert _revisions(db) == [1, 2]
    body = main_of(client.get(PAGE).text)
    assert 'id="revision-2"' in body
    assert "长春市补报1例确诊病例" in body
    assert "由2更正为3" in body  # what changed, figure by figure


def test_downloads_and_charts_come_from_the_service(client, db, cases):
    login(client, "commander_in")
    md = client.get(f"/bulletin/{DAY}/text.md?lang=en")
    assert md.status_code == 200
    assert md.headers["content-type"].startswith("text/markdown")
    assert "attachment" in md.headers["content-disposition"]
    assert md.text.startswith("# ")
    assert "25 March 2022" in md.text
    xlsx = client.get(f"/bulletin/{DAY}/text.xlsx")
    assert load_workbook(io.BytesIO(xlsx.content)).sheetnames == ["指标", "分市", "通报全文"]
    svg = client.get(f"/bulletin/{DAY}/charts/curve.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "<svg" in svg.text
    png = client.get(f"/bulletin/{DAY}/charts/cities.png")
    assert png.content.startswith(b"\x89PNG")
    assert client.get(f"/bulletin/{DAY}/text.pdf").status_code == 422
    assert client.get(f"/bulletin/{DAY}/charts/pie.png").status_code == 422
    assert client.get("/bulletin?day=2099-01-01").status_code == 422


def test_regions_and_permissions_are_the_apis(client, db, cases):
    token = login(client, "analyst_in")
    assert client.get(PAGE + "&region=220200").status_code == 403  # another city
    assert client.get(PAGE + "&region=220000").status_code == 403  # the province
    assert client.get(PAGE + "&region=220102").status_code == 422  # below a city
    token = login(client, "analyst_out")
    assert "长春市新增" not in main_of(client.get(PAGE).text)
    assert client.get(f"/bulletin/{DAY}/text.md?region=220100").status_code == 403
    refused = client.post(f"/bulletin/{DAY}/publish", data={"csrf": token, "region": "220100"})
    assert refused.status_code == 403
    token = login(client, "sampler_in")
    assert client.get(PAGE).status_code == 403
    assert client.post(f"/bulletin/{DAY}/publish", data={"csrf": token}).status_code == 403
    assert _revisions(db) == []


def test_a_form_without_its_csrf_token_publishes_nothing(client, db, cases):
    login(client, "analyst_in")
    refused = client.post(f"/bulletin/{DAY}/publish", data={"csrf": "forged"})
    assert refused.status_code in (400, 401, 403)
    assert _revisions(db) == []


def test_the_dashboard_summary_is_the_latest_day(db, principal, cases):
    summary = latest_bulletin_summary(db, principal("analyst"), "zh-CN")
    assert (summary["day"], summary["region_code"], summary["published"]) == (
        scenario.D,
        "220100",
        False,
    )
    assert "长春市新增本土确诊病例2例" in summary["html"]
