"""Publishing freezes a day; a correction is a new, audited revision that lists what changed
and why; a published day never changes silently."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from bastion.audit.models import AuditEntry
from bastion.bulletin import service as bulletin_service
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Conflict, Forbidden, InvalidInput
from tests.integration.bulletin import scenario
from tests.integration.bulletin.scenario import CHANGCHUN, JILIN, D

SYSTEM = system_principal()


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(scenario.NOW):
        yield


def render(db, lang="zh-CN", fmt="md", **kw):
    return bulletin_service.render(
        db_session=db, principal=SYSTEM, day=D, lang=lang, fmt=fmt, region_code="220000", **kw
    )


def publish(db, principal=SYSTEM):
    return bulletin_service.publish(db_session=db, principal=principal, day=D, region_code="220000")


def test_publishing_freezes_the_figures_and_texts(db):
    scenario.build(db)
    revision = publish(db)
    assert (revision.revision, revision.reason, revision.changes) == (1, "", [])
    frozen_zh, frozen_en = render(db), render(db, "en")
    assert "第1版，2022-03-27 10:00发布。" in frozen_zh
    assert "草稿" not in frozen_zh
    assert "Revision 1, published 2022-03-27 10:00." in frozen_en
    # The record changes afterwards: the published day does not.
    scenario.case(db, JILIN, on=D)
    assert render(db) == frozen_zh
    assert render(db, "en") == frozen_en
    read = bulletin_service.get(db_session=db, principal=SYSTEM, day=D, region_code="220000")
    assert read.published
    assert read.revision == 1
    assert read.figures.sections["cases"]["confirmed"] == 10
    live = bulletin_service.get(
        db_session=db, principal=SYSTEM, day=D, region_code="220000", live=True
    )
    assert live.figures.sections["cases"]["confirmed"] == 11
    assert live.drift is True
    assert "11例" in render(db, live=True)


def test_generating_a_published_day_again_gives_the_same(db):
    scenario.build(db)
    publish(db)
    for fmt in ("md", "html", "xlsx"):
        assert render(db, fmt=fmt) == render(db, fmt=fmt), fmt
    # Nothing in the workbook reads the wall clock: every time in it is the publication's.
    workbook = render(db, fmt="xlsx")
    published = (clock.now().astimezone(UTC).replace(tzinfo=None)).replace(microsecond=0)
    with zipfile.ZipFile(io.BytesIO(workbook)) as archive:
        assert {entry.date_time for entry in archive.infolist()} == {published.timetuple()[:6]}
    properties = load_workbook(io.BytesIO(workbook)).properties
    assert (properties.created, properties.modified) == (published, published)
    live = bulletin_service.get(
        db_session=db, principal=SYSTEM, day=D, region_code="220000", live=True
    )
    assert live.drift is False


def test_a_correction_is_a_new_revision_showing_what_changed_and_why(db):
    scenario.build(db)
    publish(db)
    # A Jilin City case is found to have been reported by Changchun.
    late = scenario.case(db, CHANGCHUN, on=D)
    with pytest.raises(InvalidInput):
        bulletin_service.correct(
            db_session=db, principal=SYSTEM, day=D, reason="  ", region_code="220000"
        )
    with clock.frozen(scenario.NOW + timedelta(hours=2)):
        revision = bulletin_service.correct(
            db_session=db,
            principal=SYSTEM,
            day=D,
            reason="长春市补报1例确诊病例",
            region_code="220000",
        )
    assert revision.revision == 2
    assert revision.reason == "长春市补报1例确诊病例"
    changed = {c.figure: (c.before, c.after) for c in revision.changes}
    assert changed == {
        "cases.confirmed": (10, 11),
        "cases.by_type.mild": (8, 9),
        "cases.confirmed_by_city.220100": (4, 5),
    }
    labels = {c.figure: (c.label_zh, c.label_en) for c in revision.changes}
    assert labels["cases.confirmed_by_city.220100"] == (
        "新增本土确诊病例（长春市）",
        "New local confirmed cases (Changchun)",
    )
    zh, en = render(db), render(db, "en")
    assert "全省新增本土确诊病例11例" in zh
    assert "第2版，2022-03-27 12:00发布。" in zh
    assert "更正说明：长春市补报1例确诊病例" in zh
    assert "- 新增本土确诊病例（长春市）：由4更正为5" in zh
    assert "- New local confirmed cases (Changchun): 4 → 5" in en
    history = bulletin_service.revisions(
        db_session=db, principal=SYSTEM, day=D, region_code="220000"
    )
    assert [r.revision for r in history] == [1, 2]
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == "bulletin.correct")
    ).scalar_one()
    details = json.loads(entry.details)
    assert details["reason"] == "长春市补报1例确诊病例"
    assert details["revision"] == 2
    assert details["changes"]["cases.confirmed"] == [10, 11]
    assert late.id


def test_publishing_is_audited_and_happens_once(db):
    scenario.build(db)
    publish(db)
    assert db.execute(
        select(AuditEntry).where(AuditEntry.action == "bulletin.publish")
    ).scalar_one()
    with pytest.raises(Conflict):
        publish(db)


def test_a_correction_needs_a_published_day_and_a_changed_record(db):
    scenario.build(db)
    with pytest.raises(Conflict):
        bulletin_service.correct(
            db_session=db, principal=SYSTEM, day=D, reason="x", region_code="220000"
        )
    publish(db)
    with pytest.raises(Conflict):
        bulletin_service.correct(
            db_session=db, principal=SYSTEM, day=D, reason="x", region_code="220000"
        )


def test_a_day_is_published_only_once_it_is_over(db):
    with pytest.raises(InvalidInput):
        bulletin_service.publish(
            db_session=db, principal=SYSTEM, day=clock.today(), region_code="220000"
        )


def test_publishing_needs_the_permission_and_the_region(db, principal):
    scenario.build(db)
    with pytest.raises(Forbidden):
        publish(db, principal("investigator"))
    with pytest.raises(Forbidden):
        publish(db, principal("analyst"))  # a Changchun analyst: not the province
    city = bulletin_service.publish(db_session=db, principal=principal("analyst"), day=D)
    assert city.region_code == "220100"


def test_render_latest_gives_the_province_bulletin_of_the_last_day_with_cases(db):
    assert bulletin_service.latest_day(db) == clock.today() - timedelta(days=1)
    scenario.build(db)
    # The last case event of the scenario is a discharge on the 26th.
    zh = bulletin_service.render_latest(db, "zh-CN")
    assert zh.startswith("# 吉林省疫情通报（2022年3月26日）\n")
    assert "当日治愈出院和解除医学观察1例（治愈出院1例），其中长春市1例" in zh
    en = bulletin_service.render_latest(db, "en")
    assert en.startswith("# Jilin Province: epidemic bulletin, 26 March 2022\n")
