"""Administration pages: users (list, create), roles, regions, the audit log and its check."""

from __future__ import annotations

from sqlalchemy import select

from bastion.accounts.models import User
from tests.integration.web.pages import login, main_of


def _user(db, username: str) -> User | None:
    db.expire_all()
    return db.execute(select(User).where(User.username == username)).scalar_one_or_none()


def _create(client, token: str, **fields: str):
    data = {
        "csrf": token,
        "username": "new_sampler",
        "password": "long-enough-pw-1",
        "role": "sampler",
        "region_code": "220102",
    }
    data.update(fields)
    return client.post("/admin/users", data=data, follow_redirects=False)


def test_an_admin_lists_and_creates_users_and_it_is_audited(client, db):
    token = login(client, "admin_in")
    page = main_of(client.get("/admin/users").text)
    assert "sampler_in" in page
    assert "sampler_out" not in page  # a Jilin City user is outside Changchun
    response = _create(client, token)
    assert response.status_code == 303
    assert _user(db, "new_sampler").region_code == "220102"
    assert "new_sampler" in main_of(client.get(response.headers["location"]).text)
    audit = main_of(client.get("/admin/audit").text)
    assert "user.create" in audit


def test_a_refused_user_shows_each_reason(client, db):
    token = login(client, "admin_in")
    response = _create(client, token, username="x", password="short", role="emperor")
    assert response.status_code == 422
    body = main_of(response.text)
    for field in ("username", "password", "role"):
        assert field in body
    assert _user(db, "x") is None


def test_an_admin_cannot_create_a_user_outside_the_region(client, db):
    token = login(client, "admin_in")
    response = _create(client, token, username="jl_sampler", region_code="220200")
    assert response.status_code == 403
    assert _user(db, "jl_sampler") is None


def test_creating_a_user_needs_the_csrf_token(client, db):
    login(client, "admin_in")
    response = _create(client, "forged")
    assert response.status_code == 401
    assert _user(db, "new_sampler") is None


def test_a_commander_reads_users_but_gets_no_create_form(client, db):
    token = login(client, "commander_in")
    page = client.get("/admin/users")
    assert page.status_code == 200
    assert 'id="create-user"' not in page.text
    assert _create(client, token).status_code == 403
    assert _user(db, "new_sampler") is None


def test_the_audit_log_verifies(client):
    login(client, "admin_in")
    page = client.get("/admin/audit?verify=true")
    assert page.status_code == 200
    assert 'id="verify-ok"' in page.text


def test_the_audit_log_is_refused_without_audit_read(client):
    login(client, "analyst_in")
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/users").status_code == 403
