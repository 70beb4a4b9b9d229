"""Screening and round progress in the bulletin, the section registry, and the HTML, XLSX and
chart renderings."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from openpyxl import load_workbook

from bastion.bulletin import charts, sections
from bastion.bulletin import service as bulletin_service
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.testing import coverage, ingest
from bastion.testing.ingest import RawScan
from tests.integration.bulletin import scenario
from tests.integration.bulletin.scenario import SHANGHAI
from tests.support import factories
from tests.support.world import NANGUAN_GRID

SYSTEM = system_principal()
START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
_keys = itertools.count(1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(scenario.NOW):
        yield


def scan(db, rnd, site, tube, people, at):
    report = ingest.ingest_scans(
        db_session=db,
        principal=SYSTEM,
        key=f"bulletin-{next(_keys):06d}",
        source="test",
        scans=[
            RawScan(
                row=i + 1,
                round=rnd.code,
                site=site.code,
                tube=tube,
                person=p.token,
                scanned_at=at + timedelta(seconds=i),
            )
            for i, p in enumerate(people)
        ],
    )
    assert report.refused == 0


@pytest.fixture
def screened(db):
    """Four Changchun residents required by a round; 1 scanned 08:00 and 1 at 23:59 on the
    25th, 2 at 00:01 on the 26th (local)."""
    people = [factories.person(db, region_code=NANGUAN_GRID) for _ in range(4)]
    rnd = factories.round_(db, code="R-BUL-1", starts_at=START)
    coverage.snapshot_required(db_session=db, round_id=rnd.id)
    site = factories.site(db, code="SITE-BUL")
    scan(db, rnd, site, "TB00000001", people[:1], START)
    scan(db, rnd, site, "TB00000002", people[1:2], datetime(2022, 3, 25, 23, 59, tzinfo=SHANGHAI))
    scan(db, rnd, site, "TB00000003", people[2:], datetime(2022, 3, 26, 0, 1, tzinfo=SHANGHAI))
    return rnd


def sections_of(db, day, region="220000"):
    got = bulletin_service.get(db_session=db, principal=SYSTEM, day=day, region_code=region)
    return got.figures.sections


def test_screening_splits_at_local_midnight_and_cumulates(db, screened):
    on_25 = sections_of(db, date(2022, 3, 25))
    on_26 = sections_of(db, date(2022, 3, 26))
    assert on_25["screening"] == {"screened": 2, "cumulative": 2}
    assert on_26["screening"] == {"screened": 2, "cumulative": 4}
    assert sections_of(db, date(2022, 3, 25), "220200")["screening"]["screened"] == 0


def test_round_progress_and_screening_in_the_text(db, screened):
    rounds = sections_of(db, date(2022, 3, 25))["rounds"]["rounds"]
    assert len(rounds) == 1
    r = rounds[0]
    assert (r["code"], r["required"], r["sampled"], r["coverage"]) == ("R-BUL-1", 4, 4, 1.0)
    zh = bulletin_service.render(
        db_session=db,
        principal=SYSTEM,
        day=date(2022, 3, 26),
        lang="zh-CN",
        fmt="md",
        region_code="220000",
    )
    assert "3月26日全省完成核酸检测2人，累计检测4人次。" in zh
    assert "Round R-BUL-1：应检4人，已采样4人，覆盖率100.0%，已出结果0人。" in zh
    en = bulletin_service.render(
        db_session=db, principal=SYSTEM, day=date(2022, 3, 26), lang="en", fmt="md",
        region_code="220000",
    )  # fmt: skip
    assert "on 26 March 2022, 2 people were screened by nucleic-acid test in the province; " in en
    assert "4 person-times in all." in en


def test_a_missing_domain_is_absent_not_zero(db):
    present = [s.key for s in sections.available(db)]
    assert present == ["cases", "recoveries", "contacts", "isolation", "screening", "rounds"]
    got = sections_of(db, date(2022, 3, 25))
    assert "appeals" not in got
    assert "supplies" not in got
    text = bulletin_service.render(
        db_session=db, principal=SYSTEM, day=date(2022, 3, 25), lang="zh-CN", fmt="md",
        region_code="220000",
    )  # fmt: skip
    assert "诉求" not in text
    assert "物资" not in text


def test_html_escapes_and_xlsx_holds_every_figure(db):
    scenario.build(db)
    page = bulletin_service.render(
        db_session=db, principal=SYSTEM, day=scenario.D, lang="zh-CN", fmt="html",
        region_code="220000",
    )  # fmt: skip
    assert page.startswith("<!doctype html>")
    assert '<html lang="zh-CN">' in page
    assert "<p>3月25日0—24时，全省新增本土确诊病例10例" in page
    data = bulletin_service.render(
        db_session=db, principal=SYSTEM, day=scenario.D, lang="en", fmt="xlsx",
        region_code="220000",
    )  # fmt: skip
    wb = load_workbook(io.BytesIO(data))
    assert wb.sheetnames == ["Figures", "By city", "Text"]
    figures = {row[0]: row[1] for row in wb["Figures"].iter_rows(min_row=3, values_only=True)}
    assert figures["New local confirmed cases"] == 10
    assert figures["New local confirmed cases (Jilin City)"] == 6
    assert figures["New local asymptomatic infections (Meihekou)"] == 1
    assert figures["Under isolation control"] == 3
    cities = list(wb["By city"].iter_rows(min_row=2, values_only=True))
    assert cities[0] == ("Jilin City", 6, 2, 1)
    assert cities[1] == ("Changchun", 4, 1, 1)


@pytest.mark.parametrize("kind", ["png", "svg"])
@pytest.mark.parametrize("name", ["curve", "cities"])
def test_charts_are_drawn_without_downloading_a_font(db, name, kind):
    scenario.build(db)
    data = bulletin_service.chart(
        db_session=db, principal=SYSTEM, day=scenario.D, name=name, kind=kind, lang="zh-CN",
        region_code="220000",
    )  # fmt: skip
    if kind == "png":
        assert data.startswith(b"\x89PNG")
    else:
        assert b"<svg" in data[:500]
        again = bulletin_service.chart(
            db_session=db, principal=SYSTEM, day=scenario.D, name=name, kind=kind,
            lang="zh-CN", region_code="220000",
        )  # fmt: skip
        assert again == data
        if charts.cjk_font() is None:
            # No CJK font on the machine: the labels fall back to English.
            assert b"Jilin City" in data or name == "curve"
