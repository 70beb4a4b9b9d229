"""The registry page: people masked, searched within the user's region; one person unmasked on
a POST with the CSRF token, by those allowed, and audited every time."""

from __future__ import annotations

from sqlalchemy import func, select

from bastion.audit.models import AuditEntry
from tests.integration.web.pages import login, main_of
from tests.support.world import NANGUAN_GRID


def _unmasks(db) -> int:
    return db.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "person.unmask")
    ).scalar_one()


def test_people_are_listed_masked_in_the_users_region(client, scene):
    login(client, "hotline_in")
    body = main_of(client.get(f"/people?region={NANGUAN_GRID}").text)
    assert scene.people[0].id_masked in body
    assert "张伟" not in body  # the surname only
    assert "查看完整信息" not in body  # the hotline may not unmask


def test_a_user_outside_gets_nothing_from_changchun(client, scene):
    login(client, "hotline_out")
    response = client.get(f"/people?region={NANGUAN_GRID}")
    assert response.status_code == 403
    assert scene.people[0].id_masked not in response.text
    assert scene.people[0].id_masked not in client.get("/people").text


def test_unmasking_needs_the_permission_the_token_and_is_audited(client, db, scene):
    person = scene.people[0]
    token = login(client, "investigator_in")
    before = _unmasks(db)
    assert client.post(f"/people/{person.id}/unmask", data={"csrf": "forged"}).status_code == 401
    assert client.get(f"/people/{person.id}/unmask").status_code == 405
    shown = client.post(f"/people/{person.id}/unmask", data={"csrf": token})
    assert shown.status_code == 200
    assert "张伟" in main_of(shown.text)
    assert shown.headers["cache-control"] == "no-store"
    assert _unmasks(db) == before + 1

    token = login(client, "hotline_in")
    assert client.post(f"/people/{person.id}/unmask", data={"csrf": token}).status_code == 403
    token = login(client, "investigator_out")
    assert client.post(f"/people/{person.id}/unmask", data={"csrf": token}).status_code == 404
    assert _unmasks(db) == before + 1
