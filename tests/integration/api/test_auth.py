"""Logging in through the API, and what a token is good for."""

from __future__ import annotations

from tests.support.world import PASSWORD


def test_health_answers_without_login(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_it_issues_a_token_for_good_credentials(client):
    response = client.post(
        "/api/v1/auth/token", data={"username": "analyst_in", "password": PASSWORD}
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["role"] == "analyst"
    assert me.json()["region_code"] == "220100"


def test_it_refuses_a_wrong_password_without_saying_which_half_was_wrong(client):
    bad_pw = client.post("/api/v1/auth/token", data={"username": "analyst_in", "password": "nope"})
    no_user = client.post("/api/v1/auth/token", data={"username": "ghost", "password": "nope"})
    assert bad_pw.status_code == no_user.status_code == 401
    assert bad_pw.json()["title"] == no_user.json()["title"]


def test_a_forged_token_is_refused(client):
    response = client.get("/api/v1/auth/me", headers={"Authorization": "Bearer abc.def"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


def test_logout_revokes_the_token(client, headers):
    h = headers("sampler")
    assert client.get("/api/v1/auth/me", headers=h).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=h).status_code == 204
    assert client.get("/api/v1/auth/me", headers=h).status_code == 401


def test_errors_speak_the_callers_language(client):
    zh = client.get("/api/v1/auth/me")
    en = client.get("/api/v1/auth/me", headers={"Accept-Language": "en-US,en"})
    assert zh.json()["title"] == "请先登录。"
    assert en.json()["title"] == "Please log in first."


def test_a_creation_race_lost_at_the_unique_index_is_a_409_not_a_500(client, headers, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    from bastion.registry import service as registry_service

    def lost_race(**_kwargs):
        raise IntegrityError("INSERT INTO persons …", {}, Exception("duplicate key"))

    monkeypatch.setattr(registry_service, "create", lost_race)
    body = {"name": "王芳", "id_number": "11010519491231002X", "region_code": "220102001001001"}
    response = client.post("/api/v1/persons", json=body, headers=headers("grid_worker"))
    assert response.status_code == 409
    assert response.json()["code"] == "error.conflict_retry"


def test_a_control_character_in_the_username_is_refused_naming_it(client):
    # Refused before the lookup: PostgreSQL would refuse the NUL itself, SQLite search for it.
    response = client.post(
        "/api/v1/auth/token", data={"username": "analyst_in\x00", "password": PASSWORD}
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
        ("username", "field.control_chars")
    ]
