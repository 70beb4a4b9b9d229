"""The sampling page through a network outage, and a user outside a region seeing nothing."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.testing.models import ScanBatch, Tube, TubeMember
from tests.browser.conftest import Scene, log_in, shot


def _members(live: Scene, tube: str) -> int:
    with Session(live.engine) as s:
        return s.execute(
            select(func.count())
            .select_from(TubeMember)
            .join(Tube, Tube.id == TubeMember.tube_id)
            .where(Tube.barcode == tube)
        ).scalar_one()


def _batches(live: Scene, key: str) -> int:
    with Session(live.engine) as s:
        return s.execute(
            select(func.count()).select_from(ScanBatch).where(ScanBatch.key == key)
        ).scalar_one()


def test_scans_made_offline_are_kept_and_land_exactly_once(phone: Any, live: Scene) -> None:
    page = log_in(phone, "sampler_in", "/sampling")
    expect(page.locator("#scan")).to_have_attribute("data-ready", "1")
    phone.set_offline(True)
    for tube, people in (("TB20000001", live.people[2:4]), ("TB20000002", live.people[4:6])):
        page.fill("#tube", tube)
        page.press("#tube", "Enter")
        for person in people:
            page.fill("#person", person.token)
            page.press("#person", "Enter")
        page.click("#save")
    expect(page.locator("#net")).to_have_class("status offline")
    expect(page.locator("#unsent-count")).to_have_text("2")
    expect(page.locator("#queue")).to_contain_text("TB20000002")
    shot(page, "sampling-offline-queue")
    assert _members(live, "TB20000001") == 0
    queued = json.loads(page.evaluate("localStorage.getItem('bastion.scan-queue.sampler_in')"))
    assert [b["groups"][0]["tube"] for b in queued] == ["TB20000001", "TB20000002"]

    phone.set_offline(False)
    expect(page.locator("#unsent-count")).to_have_text("0", timeout=20_000)
    expect(page.locator("#sent")).to_contain_text("TB20000002")
    assert _members(live, "TB20000001") == 2
    assert _members(live, "TB20000002") == 2
    shot(page, "sampling-back-online")

    # The answer to the first batch "was lost": the page sends it again. The server replays
    # its first answer; nothing lands twice.
    page.evaluate(
        "q => localStorage.setItem('bastion.scan-queue.sampler_in', JSON.stringify(q))",
        queued[:1],
    )
    page.reload()
    expect(page.locator("#unsent-count")).to_have_text("0")
    assert _members(live, "TB20000001") == 2
    assert _batches(live, queued[0]["key"]) == 1
    with Session(live.engine) as s:
        first = s.execute(
            select(Tube.first_scan_at).where(Tube.barcode == "TB20000001")
        ).scalar_one()
    # The original scan time was kept, not the time it reached the server.
    assert first.isoformat()[:19] == queued[0]["groups"][0]["scanned_at"][:19]


def test_a_jilin_city_sampler_cannot_see_changchuns_site(phone: Any, live: Scene) -> None:
    page = log_in(phone, "sampler_out", "/sampling")
    options = page.locator("select[name=site] option").all_inner_texts()
    assert any("SITE-JL" in o for o in options)
    assert not any("SITE-CC" in o for o in options)
    response = page.goto("/sampling?site=SITE-CC")
    assert response is not None
    assert response.status == 404
    expect(page.locator("main")).not_to_contain_text("采样点 SITE-CC")
    shot(page, "sampling-outside-region")


def test_a_jilin_city_commander_sees_nothing_of_changchun(desk: Any, live: Scene) -> None:
    page = log_in(desk, "commander_out", "/dashboard")
    expect(page.locator("#round-progress")).to_contain_text("R-BROWSER")
    expect(page.locator("main")).not_to_contain_text("南关区")
    expect(page.locator("#lab-load")).not_to_contain_text("LAB-CC")
    response = page.goto("/dashboard?region=220102")
    assert response is not None
    assert response.status == 403
    shot(page, "dashboard-outside-region")


def test_a_lost_session_keeps_the_queue_until_the_recorder_logs_in(phone: Any, live: Scene) -> None:
    page = log_in(phone, "sampler_in", "/sampling")
    expect(page.locator("#scan")).to_have_attribute("data-ready", "1")
    phone.clear_cookies(name="bastion_session")  # the session expired meanwhile
    page.fill("#tube", "TB30000001")
    page.press("#tube", "Enter")
    page.fill("#person", live.people[6].token)
    page.press("#person", "Enter")
    page.click("#save")
    expect(page.locator("#net")).to_contain_text("登录已失效")
    expect(page.locator("#unsent-count")).to_have_text("1")
    shot(page, "sampling-session-expired")
    assert _members(live, "TB30000001") == 0

    again = log_in(phone, "sampler_in", "/sampling")  # in another tab
    expect(again.locator("#unsent-count")).to_have_text("0")
    expect(page.locator("#unsent-count")).to_have_text("0", timeout=20_000)
    assert _members(live, "TB30000001") == 1
