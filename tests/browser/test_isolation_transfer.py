"""The isolation team and the transfer team in a real browser: log in, do the job (release who is
due; put a waiting contact in a batch, dispatch it, see it arrive), see the result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.isolation.models import Placement, TransferBatch
from tests.browser.conftest import Scene, log_in, shot
from tests.integration.isolation import helpers


@dataclass
class Boards:
    site_code: str
    due_id: int
    waiting_id: int
    task_id: int


@pytest.fixture(scope="module")
def boards(live: Scene) -> Boards:
    """A hotel, a home-isolated contact due for release with every test negative, and a close
    contact waiting for a transfer to a centralised site (committed: the server reads them)."""
    today = clock.today()
    with Session(live.engine) as s, s.begin():
        hotel = helpers.site(s, beds=4)
        [due] = helpers.place(
            s, helpers.need(s, destination="home", starts_on=today - timedelta(days=20))
        )
        helpers.record_all_negative(s, due)
        [waiting] = helpers.place(s, helpers.need(s, starts_on=today))
        task = helpers.task_of(s, waiting)
        return Boards(hotel.code, due, waiting, task.id)


def _status(live: Scene, model: Any, where: Any) -> str:
    with Session(live.engine) as s:
        return str(s.execute(select(model.status).where(where)).scalar_one())


def test_the_isolation_team_releases_who_is_due(desk: Any, live: Scene, boards: Boards) -> None:
    page = log_in(desk, "isolation_in", "/isolation")
    expect(page.locator(f"#site-{boards.site_code}")).to_contain_text("0 / 4")
    due = page.locator(f"#due-{boards.due_id}")
    expect(due).to_contain_text("符合条件")
    shot(page, "isolation-board")
    due.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("已解除隔离")
    expect(page.locator(f"#due-{boards.due_id}")).to_have_count(0)
    assert _status(live, Placement, Placement.id == boards.due_id) == "released"


def test_the_transfer_team_carries_a_contact_to_the_site(
    desk: Any, live: Scene, boards: Boards
) -> None:
    page = log_in(desk, "transfer_in", "/transfers")
    expect(page.locator(f"#task-{boards.task_id}")).to_be_visible()
    form = page.locator("#new-batch")
    form.locator(f"#pick-{boards.task_id}").check()
    form.locator("input[name=code]").fill("ZY-BROWSER-1")
    form.locator("input[name=vehicle]").fill("吉A12345")
    form.locator("input[name=escort]").fill("张医生")
    form.locator("select[name=site]").select_option(boards.site_code)
    form.locator("button[type=submit]").click()
    batch = page.locator("#batch-ZY-BROWSER-1")
    expect(batch).to_contain_text("待转运")
    shot(page, "transfer-batch")
    batch.locator(".dispatch button").click()
    expect(page.locator("#batch-ZY-BROWSER-1")).to_contain_text("转运中")
    page.locator("#batch-ZY-BROWSER-1 .arrive button").click()
    expect(page.locator(".notice")).to_contain_text("ZY-BROWSER-1")
    shot(page, "transfer-arrived")
    where = TransferBatch.code == "ZY-BROWSER-1"
    assert _status(live, TransferBatch, where) == "arrived"
    assert _status(live, Placement, Placement.id == boards.waiting_id) == "active"
