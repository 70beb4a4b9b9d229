"""The bulletin over HTTP: figures, texts in both languages and three formats, charts,
publication, corrections and revisions; bad input is a 4xx, never a 500."""

from __future__ import annotations

import io

import pytest
from openpyxl import load_workbook

from bastion.core import clock
from tests.integration.bulletin import scenario

BASE = "/api/v1/bulletin/2022-03-25"
PROVINCE = {"region": "220000"}


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(scenario.NOW):
        yield


@pytest.fixture
def built(db):
    scenario.build(db)
    db.flush()


def test_figures_and_texts(client, headers, built):
    h = headers("admin", "admin_province")
    figures = client.get(BASE, params=PROVINCE, headers=h)
    assert figures.status_code == 200, figures.text
    body = figures.json()
    assert (body["published"], body["revision"]) == (False, None)
    assert body["figures"]["sections"]["cases"]["confirmed"] == 10
    zh = client.get(BASE + "/text", params=PROVINCE, headers=h)
    assert zh.headers["content-type"].startswith("text/markdown")
    assert scenario_zh_first_line() in zh.text
    en = client.get(BASE + "/text", params={**PROVINCE, "lang": "en", "format": "html"}, headers=h)
    assert en.headers["content-type"].startswith("text/html")
    assert "the province reported 10 new local confirmed cases" in en.text
    xlsx = client.get(BASE + "/text", params={**PROVINCE, "format": "xlsx"}, headers=h)
    assert load_workbook(io.BytesIO(xlsx.content)).sheetnames == ["指标", "分市", "通报全文"]
    png = client.get(BASE + "/charts/curve.png", params=PROVINCE, headers=h)
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")


def scenario_zh_first_line() -> str:
    return (
        "3月25日0—24时，全省新增本土确诊病例10例"
        "（轻型8例、普通型2例；其中1例为无症状感染者转为确诊病例）"
    )


def test_a_city_analyst_reads_their_city_by_default(client, headers, built):
    got = client.get(BASE, headers=headers("analyst"))
    assert got.status_code == 200
    assert got.json()["region_code"] == "220100"
    assert got.json()["figures"]["sections"]["cases"]["confirmed"] == 4
    assert client.get(BASE, params=PROVINCE, headers=headers("analyst")).status_code == 403


def test_publish_correct_and_revisions(client, headers, db, built):
    h = headers("admin", "admin_province")
    published = client.post(BASE + "/publish", params=PROVINCE, headers=h)
    assert published.status_code == 201, published.text
    assert client.post(BASE + "/publish", params=PROVINCE, headers=h).status_code == 409
    nothing = client.post(BASE + "/corrections", json={"reason": "复核", **PROVINCE}, headers=h)
    assert nothing.status_code == 409
    scenario.case(db, scenario.JILIN, on=scenario.D)
    db.flush()
    no_reason = client.post(BASE + "/corrections", json={"reason": "", **PROVINCE}, headers=h)
    assert no_reason.status_code == 422
    nul = client.post(BASE + "/corrections", json={"reason": "补报\x00", **PROVINCE}, headers=h)
    assert nul.status_code == 422, nul.text
    assert [(e["field"], e["code"]) for e in nul.json()["errors"]] == [
        ("reason", "field.control_chars")
    ]
    # A reason is free text: its line breaks are kept.
    reason = "吉林市补报\n（3月25日确诊1例，次日核实）"
    corrected = client.post(BASE + "/corrections", json={"reason": reason, **PROVINCE}, headers=h)
    assert corrected.status_code == 201, corrected.text
    assert corrected.json()["reason"] == reason
    assert {c["figure"] for c in corrected.json()["changes"]} == {
        "cases.confirmed",
        "cases.by_type.mild",
        "cases.confirmed_by_city.220200",
    }
    revisions = client.get(BASE + "/revisions", params=PROVINCE, headers=h).json()
    assert [r["revision"] for r in revisions] == [1, 2]
    read = client.get(BASE, params=PROVINCE, headers=h).json()
    assert (read["published"], read["revision"]) == (True, 2)
    assert read["figures"]["sections"]["cases"]["confirmed"] == 11


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/bulletin/2022-02-30", PROVINCE),
        ("/api/v1/bulletin/9999-12-31", PROVINCE),
        ("/api/v1/bulletin/0001-01-01", PROVINCE),
        (BASE, {"region": "%"}),
        (BASE, {"region": "229999"}),
        (BASE, {"region": "220102"}),
        (BASE + "/text", {**PROVINCE, "format": "pdf"}),
        (BASE + "/charts/curve.gif", PROVINCE),
        (BASE + "/charts/pie.png", PROVINCE),
        (BASE + "/charts/" + "x" * 40, PROVINCE),
    ],
)
def test_no_input_makes_a_server_error(client, headers, path, params):
    response = client.get(path, params=params, headers=headers("admin", "admin_province"))
    assert 400 <= response.status_code < 500, response.text
