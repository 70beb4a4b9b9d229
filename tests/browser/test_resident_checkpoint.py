"""A resident sees their code in a real browser; the checkpoint page checks that code with the
network cut (the signature, in the browser), and refuses a forged and an expired one."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.core import clock
from bastion.healthcode import keys, signing
from bastion.healthcode.models import CodeStatus
from tests.browser.conftest import Scene, log_in, shot
from tests.support import factories


@pytest.fixture(scope="module")
def resident(live: Scene) -> str:
    """A red-coded person linked to ``resident_in`` (committed); their token."""
    with Session(live.engine) as s, s.begin():
        person = factories.person(s, name="陈静")
        user = s.execute(select(User).where(User.username == "resident_in")).scalar_one()
        user.person_id = person.id
        s.add(
            CodeStatus(
                person_id=person.id,
                colour="red",
                rule="test:manual",
                reason_key="healthcode.reason.default",
                evidence_type="test",
                evidence_id="1",
                version=1,
                changed_at=clock.now(),
            )
        )
        return str(person.token)


def _expired(live: Scene, person: str) -> str:
    """A code signed with the real key whose time ran out an hour ago."""
    with Session(live.engine) as s:
        row = keys.active(db_session=s)
        assert row is not None
        now = int(clock.now().timestamp())
        claims = signing.Claims(row.kid, "green", now - 7200, now - 3600, person)
        return signing.sign(claims, keys.private_key(row))


def _check(page: Any, payload: str) -> None:
    page.fill("#payload", payload)
    page.click("#checkpoint-form button[type=submit]")


def test_the_resident_sees_their_code_and_a_checkpoint_verifies_it_offline(
    phone: Any, desk: Any, live: Scene, resident: str
) -> None:
    page = log_in(phone, "resident_in", "/me")
    expect(page.locator("#code-colour")).to_contain_text("红码")
    expect(page.locator("#qr svg")).to_be_visible()
    shot(page, "resident-code")
    payload = page.locator("#payload").text_content() or ""
    assert payload.startswith("BHC1.")

    checkpoint = desk.new_page()
    checkpoint.goto("/checkpoint")
    expect(checkpoint.locator("#keys-state")).to_contain_text("已从服务器更新")
    desk.set_offline(True)
    _check(checkpoint, payload)
    expect(checkpoint.locator("#verdict-title")).to_contain_text("健康码有效")
    expect(checkpoint.locator("#verdict")).to_contain_text("红码")
    shot(checkpoint, "checkpoint-valid-offline")
    forged = payload[:-6] + ("AAAAAA" if not payload.endswith("AAAAAA") else "BBBBBB")
    _check(checkpoint, forged)
    expect(checkpoint.locator("#verdict-title")).to_contain_text("拒绝")
    _check(checkpoint, _expired(live, resident))
    expect(checkpoint.locator("#verdict-title")).to_contain_text("已过期")
    shot(checkpoint, "checkpoint-expired")
    desk.set_offline(False)
