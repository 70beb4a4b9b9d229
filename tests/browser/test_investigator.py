"""The investigator in a real browser: log in, open a case, record an exposure, see the chain
drawn and walk it to the new contact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.tracing import service as tracing_service
from bastion.tracing.models import Contact
from bastion.tracing.schemas import CaseCreate
from tests.browser.conftest import Scene, log_in, shot
from tests.support import factories
from tests.support.world import NANGUAN_GRID


@dataclass
class Investigation:
    case_id: int
    case_code: str
    other_id: int


@pytest.fixture(scope="module")
def investigation(live: Scene) -> Investigation:
    """An open case in Changchun and a person the investigator finds it met (committed)."""
    with Session(live.engine) as s, s.begin():
        person = factories.person(s, region_code=NANGUAN_GRID, name="周芷若")
        other = factories.person(s, region_code=NANGUAN_GRID, name="吴用")
        case = tracing_service.create_case(
            db_session=s,
            principal=system_principal(),
            data=CaseCreate(person_id=person.id, classification="asymptomatic"),
        )
        return Investigation(case.id, case.code, other.id)


def test_the_investigator_records_an_exposure_and_sees_the_chain(
    desk: Any, live: Scene, investigation: Investigation
) -> None:
    page = log_in(desk, "investigator_in", "/cases")
    page.click(f"text={investigation.case_code}")
    expect(page.locator("#case-class")).to_contain_text("无症状感染者")
    form = page.locator("#exposure")
    form.locator("input[name=person_id]").fill(str(investigation.other_id))
    form.locator("input[name=exposed_on]").fill(clock.today().isoformat())
    form.locator("select[name=setting]").select_option("household")
    form.locator("button[type=submit]").click()
    expect(page.locator(".notice")).to_contain_text("暴露记录已保存")
    expect(page.locator("#contacts")).to_contain_text("密接")
    shot(page, "case-record")
    with Session(live.engine) as s:
        contact_id = s.execute(
            select(Contact.id).where(Contact.person_id == investigation.other_id)
        ).scalar_one()
    page.click("#chain-link")
    node = page.locator(f'#chain a[data-node="contact:{contact_id}"]')
    expect(node).to_be_visible()
    expect(page.locator(f'#chain a[data-node="case:{investigation.case_id}"]')).to_be_visible()
    shot(page, "case-chain")
    node.click()  # walk up from the contact: back to the case it was traced from
    page.wait_for_url(f"**/contacts/{contact_id}/chain")
    page.locator(f'#chain a[data-node="case:{investigation.case_id}"]').click()
    page.wait_for_url(f"**/cases/{investigation.case_id}/chain")
