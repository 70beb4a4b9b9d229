"""The protocol page: every profile, the history of choices, and choosing a profile from a date
with a reason (protocols.manage); readers of the isolation record see it read-only."""

from __future__ import annotations

from datetime import date

from bastion.protocols import service as protocol_service
from tests.integration.web.pages import login, main_of

#: The pages' clock (tests/integration/web/conftest.py): 25 March 2022.
TODAY = date(2022, 3, 25)


def _choices(db) -> list[tuple[str, date | None, str]]:
    db.expire_all()
    return [(c.profile, c.effective_from, c.reason) for c in protocol_service.history(db)[1:]]


def test_an_administrator_chooses_a_profile_from_a_date(client, db):
    token = login(client, "admin_province")
    page = client.get("/admin/protocols")
    assert page.status_code == 200
    body = main_of(page.text)
    assert 'id="profile-jilin-2022-03"' in body
    assert 'id="profile-national-9"' in body
    assert "jilin-2022-03" in body.split('id="in-force"', 1)[1].split("</p>", 1)[0]
    chosen = client.post(
        "/admin/protocols/choices",
        data={
            "csrf": token,
            "profile": "national-9",
            "effective_from": "2022-03-28",
            "reason": "第九版方案",
        },
        follow_redirects=False,
    )
    assert chosen.status_code == 303, chosen.text
    assert _choices(db) == [("national-9", date(2022, 3, 28), "第九版方案")]
    body = main_of(client.get(chosen.headers["location"]).text)
    assert "第九版方案" in body
    assert 'class="notice"' in body


def test_a_choice_in_the_past_or_without_a_reason_is_refused(client, db):
    token = login(client, "admin_province")
    form = {"csrf": token, "profile": "national-9", "reason": "第九版方案"}
    past = client.post("/admin/protocols/choices", data={**form, "effective_from": "2022-03-01"})
    assert past.status_code == 422
    assert 'class="error"' in past.text
    bad = client.post("/admin/protocols/choices", data={**form, "effective_from": "soon"})
    assert bad.status_code == 422
    unknown = client.post(
        "/admin/protocols/choices",
        data={**form, "profile": "nope", "effective_from": TODAY.isoformat()},
    )
    assert unknown.status_code in (404, 422)
    no_reason = client.post(
        "/admin/protocols/choices",
        data={**form, "reason": " ", "effective_from": TODAY.isoformat()},
    )
    assert no_reason.status_code == 422
    assert _choices(db) == []


def test_the_command_reads_it_and_cannot_choose(client, db):
    token = login(client, "commander_in")
    page = client.get("/admin/protocols")
    assert page.status_code == 200
    body = main_of(page.text)
    assert 'id="read-only"' in body
    assert 'id="choose"' not in body
    refused = client.post(
        "/admin/protocols/choices",
        data={"csrf": token, "profile": "national-9", "effective_from": "soon", "reason": "x"},
    )
    assert refused.status_code == 403
    login(client, "sampler_in")
    assert client.get("/admin/protocols").status_code == 403
    assert _choices(db) == []


def test_a_form_without_its_csrf_token_changes_nothing(client, db):
    login(client, "admin_province")
    refused = client.post(
        "/admin/protocols/choices",
        data={
            "csrf": "forged",
            "profile": "national-9",
            "effective_from": "2022-03-28",
            "reason": "第九版方案",
        },
    )
    assert refused.status_code in (400, 401, 403)
    assert _choices(db) == []
