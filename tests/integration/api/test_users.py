"""Users through the API: administrators create users only inside their own subtree."""

from __future__ import annotations

import pytest

from bastion.accounts.models import User
from tests.integration.registry.people import audit_entries, count
from tests.support.world import NANGUAN_GRID, PASSWORD

USERS = "/api/v1/users"


def new_user(**overrides):
    body = {"username": "new.sampler", "password": "long-enough-1", "role": "sampler"}
    body["region_code"] = NANGUAN_GRID
    body.update(overrides)
    return body


def test_an_admin_creates_a_user_in_their_subtree_who_can_log_in(client, headers, db):
    response = client.post(USERS, json=new_user(), headers=headers("admin"))
    assert response.status_code == 201, response.text
    assert response.json()["region_code"] == NANGUAN_GRID
    assert "password" not in response.text
    login = client.post(
        "/api/v1/auth/token", data={"username": "new.sampler", "password": "long-enough-1"}
    )
    assert login.status_code == 200
    [entry] = audit_entries(db, "user.create")
    assert (entry.actor, entry.region_code) == ("admin_in", NANGUAN_GRID)


@pytest.mark.parametrize("region", ["220200", "220202001001001", "220000", "220581"])
def test_an_admin_cannot_create_a_user_outside_their_own_subtree(client, headers, db, region):
    before = count(db, User)
    response = client.post(
        USERS, json=new_user(region_code=region, role="admin"), headers=headers("admin")
    )
    assert response.status_code == 403
    assert response.json()["code"] == "error.region_outside"
    assert count(db, User) == before
    assert audit_entries(db, "user.create") == []


def test_a_province_admin_may_create_users_anywhere_in_the_province(client, headers):
    h = headers("admin", "admin_province")
    assert client.post(USERS, json=new_user(region_code="220581"), headers=h).status_code == 201


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"username": "no"}, "username"),
        ({"password": "short"}, "password"),
        ({"role": "emperor"}, "role"),
        ({"region_code": "229999"}, "region_code"),
        ({"role": 3}, "role"),
    ],
)
def test_a_bad_user_is_refused_naming_the_field(client, headers, db, overrides, field):
    before = count(db, User)
    response = client.post(USERS, json=new_user(**overrides), headers=headers("admin"))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert count(db, User) == before


def test_a_taken_username_is_a_conflict(client, headers):
    response = client.post(USERS, json=new_user(username="analyst_in"), headers=headers("admin"))
    assert response.status_code == 409


def test_only_user_managers_create_users(client, headers):
    assert client.post(USERS, json=new_user(), headers=headers("commander")).status_code == 403


def test_the_user_list_holds_only_the_callers_subtree(client, headers):
    response = client.get(USERS, headers=headers("commander"))
    assert response.status_code == 200
    names = {u["username"] for u in response.json()}
    assert "analyst_in" in names
    assert "grid_worker_grid" in names
    assert "analyst_out" not in names
    assert "admin_province" not in names
    assert all(u["region_code"].startswith("2201") for u in response.json())


def test_the_cast_password_logs_in(client):
    # Guards the fixture itself: the world's users really have the documented password.
    response = client.post(
        "/api/v1/auth/token", data={"username": "admin_in", "password": PASSWORD}
    )
    assert response.status_code == 200


#: Alireza in Persian script, written with a zero-width non-joiner (U+200C, a format
#: character) between its two parts, as the name is commonly spelled.
ZWNJ_NAME = "علی\u200cرضا"


def test_a_display_name_keeps_the_format_characters_real_names_are_written_with(
    client, headers, db
):
    response = client.post(USERS, json=new_user(display_name=ZWNJ_NAME), headers=headers("admin"))
    assert response.status_code == 201, response.text
    assert response.json()["display_name"] == ZWNJ_NAME
    user = db.get(User, response.json()["id"])
    assert user is not None
    assert user.display_name == ZWNJ_NAME


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"display_name": "王\x00芳"}, "display_name", "field.control_chars"),
        ({"display_name": "王芳\x07"}, "display_name", "field.control_chars"),
        ({"display_name": "王" * 101}, "display_name", "error.invalid_input"),
        ({"region_code": f"{NANGUAN_GRID}\x00"}, "region_code", "field.control_chars"),
        ({"username": "new\x00sampler"}, "username", "field.control_chars"),
        ({"role": "sampler\x00"}, "role", "field.control_chars"),
    ],
)
def test_a_control_character_or_an_overlong_name_is_refused_naming_the_field(
    client, headers, db, overrides, field, code
):
    before = count(db, User)
    response = client.post(USERS, json=new_user(**overrides), headers=headers("admin"))
    assert response.status_code == 422, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [(field, code)]
    assert count(db, User) == before
