"""The analyst in a real browser: read yesterday's bulletin with its charts, switch the text to
English, publish it, and see it published with its revision."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.bulletin.models import BulletinRevision
from bastion.core import clock
from tests.browser.conftest import Scene, log_in, shot

#: Both charts came from the server and were drawn (an image that failed has no natural width).
CHARTS_DRAWN = (
    "[...document.querySelectorAll('#charts img')]"
    ".every(i => i.complete && i.naturalWidth > 0)"
    " && document.querySelectorAll('#charts img').length == 2"
)


def test_the_analyst_reads_and_publishes_the_bulletin(desk: Any, live: Scene) -> None:
    day = clock.today() - timedelta(days=1)
    page = log_in(desk, "analyst_in", f"/bulletin?day={day.isoformat()}")
    expect(page.locator("#state")).to_contain_text("草稿")
    expect(page.locator("#text article")).to_contain_text("长春市")
    page.wait_for_function(CHARTS_DRAWN)
    page.select_option("select[name=text]", "en")
    page.click("form[action='/bulletin'] button[type=submit]")
    expect(page.locator("#text article")).to_contain_text("Changchun")
    page.wait_for_function(CHARTS_DRAWN)
    shot(page, "bulletin-draft")
    page.click("#publish button[type=submit]")
    expect(page.locator("#state")).to_contain_text("第1版")
    expect(page.locator("#revision-1")).to_be_visible()
    expect(page.locator("#correct")).to_be_visible()
    page.wait_for_function(CHARTS_DRAWN)
    shot(page, "bulletin-published")
    with Session(live.engine) as s:
        revisions = s.execute(
            select(BulletinRevision.revision).where(
                BulletinRevision.day == day, BulletinRevision.region_code == "220100"
            )
        ).scalars()
        assert list(revisions) == [1]
