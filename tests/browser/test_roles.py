"""Each role's main path in a real browser: log in, do the job, see the result."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.core import clock
from bastion.testing.models import Box, Tube, TubeMember
from tests.browser.conftest import Scene, log_in, shot


def _count_members(live: Scene, tube: str) -> int:
    with Session(live.engine) as s:
        return s.execute(
            select(func.count())
            .select_from(TubeMember)
            .join(Tube, Tube.id == TubeMember.tube_id)
            .where(Tube.barcode == tube)
        ).scalar_one()


def _scan(page: Any, tube: str, people: list[str]) -> None:
    page.fill("#tube", tube)
    page.press("#tube", "Enter")
    for person in people:
        page.fill("#person", person)
        page.press("#person", "Enter")


def test_the_commander_watches_the_round_and_drills_down(desk: Any, live: Scene) -> None:
    page = log_in(desk, "commander_in", "/dashboard")
    expect(page.locator("#round-progress")).to_contain_text("R-BROWSER")
    expect(page.locator("#round-progress svg.bars")).to_be_visible()
    expect(page.locator("#lab-load")).to_contain_text("LAB-CC")
    expect(page.locator("#slot-cases")).to_be_visible()
    shot(page, "dashboard-changchun")
    page.click("#round-progress table >> text=南关区")
    expect(page.locator(".crumbs")).to_contain_text("南关区")
    expect(page.locator("#round-progress table")).to_contain_text("测试街道")
    shot(page, "dashboard-nanguan")
    page.click("text=English")
    expect(page.locator("h1")).to_contain_text("Command dashboard")
    page.goto("/rounds?lang=zh-CN")
    expect(page.locator("#rounds")).to_contain_text("R-BROWSER")
    shot(page, "rounds-sites-labs")


def test_the_sampler_scans_a_group_and_it_lands(phone: Any, live: Scene) -> None:
    page = log_in(phone, "sampler_in", "/sampling")
    expect(page.locator("#scan")).to_have_attribute("data-ready", "1")
    people = [live.people[0].token, live.people[1].token, live.id_number]
    _scan(page, "TB10000001", people)
    expect(page.locator("#count")).to_have_text("3 / 10")
    shot(page, "sampling-group")
    page.click("#save")
    expect(page.locator("#unsent-count")).to_have_text("0")
    expect(page.locator("#sent")).to_contain_text("TB10000001")
    expect(page.locator("#sent")).to_contain_text("3")
    shot(page, "sampling-sent")
    assert _count_members(live, "TB10000001") == 3


def test_the_courier_hands_a_box_over_and_it_reconciles(desk: Any, live: Scene) -> None:
    page = log_in(desk, "courier_in", "/boxes")
    page.fill("#pick-up input[name=code]", "BOX-WAIT")
    page.fill("#pick-up input[name=counted]", "2")
    page.fill("#pick-up textarea[name=tubes]", "TB00000001\nTB00000002")
    page.click("#pick-up button[type=submit]")
    expect(page.locator("#box")).to_contain_text("BOX-WAIT")
    expect(page.locator("#reconciled")).to_be_visible()
    shot(page, "courier-box")
    with Session(live.engine) as s:
        assert s.execute(select(Box.state).where(Box.code == "BOX-WAIT")).scalar_one() == (
            "in_transit"
        )


def test_the_lab_receives_a_box_short_and_uploads_results(
    desk: Any, live: Scene, tmp_path: Any
) -> None:
    page = log_in(desk, "lab_in", "/boxes")
    page.fill("#receive input[name=code]", "BOX-LAB")
    page.fill("#receive input[name=lab]", live.lab_code)
    page.fill("#receive textarea[name=tubes]", "TB00000011 TB00000012")
    page.click("#receive button[type=submit]")
    expect(page.locator("#mismatched")).to_be_visible()
    expect(page.locator("#box")).to_contain_text("TB00000013")  # the missing tube is named
    shot(page, "lab-receipt")

    page.goto("/lab")
    # Tested after the receipt just recorded (a result before its receipt is refused).
    tested = (clock.now() + timedelta(seconds=1)).isoformat()
    csv = tmp_path / "run.csv"
    csv.write_text(
        "lab,tube,result,ct_orf1ab,tested_at\n"
        f"LAB-CC,TB00000011,negative,,{tested}\n"
        f"LAB-CC,TB00000012,positive,,{tested}\n",
        encoding="utf-8",
    )
    page.set_input_files("input[type=file]", str(csv))
    page.click("form[action='/lab/results'] button[type=submit]")
    expect(page.locator("#report")).to_contain_text("登记 1 行")
    expect(page.locator("#report")).to_contain_text("ct_orf1ab")  # row 3: a positive needs a Ct
    shot(page, "lab-upload-report")
    with Session(live.engine) as s:
        assert s.execute(select(Tube.result).where(Tube.barcode == "TB00000011")).scalar_one() == (
            "negative"
        )


def test_the_grid_worker_sees_who_is_not_yet_tested(desk: Any, live: Scene) -> None:
    page = log_in(desk, "grid_worker_grid", "/grid")
    section = page.locator("#not-tested")
    expect(section).to_contain_text(live.people[9].id_masked)
    expect(page.locator("#residents")).to_be_visible()
    shot(page, "grid-not-tested")


def test_the_admin_creates_a_user_and_verifies_the_audit_log(desk: Any, live: Scene) -> None:
    page = log_in(desk, "admin_in", "/admin/users")
    page.fill("#create-user input[name=username]", "site_recorder_7")
    page.fill("#create-user input[name=password]", "a-long-password-7")
    page.select_option("#create-user select[name=role]", "sampler")
    page.fill("#create-user input[name=region_code]", "220102")
    page.click("#create-user button[type=submit]")
    expect(page.locator("#users")).to_contain_text("site_recorder_7")
    shot(page, "admin-users")
    with Session(live.engine) as s:
        assert (
            s.execute(select(User.role).where(User.username == "site_recorder_7")).scalar_one()
            == "sampler"
        )
    page.goto("/admin/audit")
    expect(page.locator("#audit")).to_contain_text("user.create")
    page.click("#verify")
    expect(page.locator("#verify-ok")).to_be_visible()
    shot(page, "admin-audit")
