"""The web login: a form with CSRF protection, a session cookie, a home page, logout."""

from __future__ import annotations

import re

from tests.support.world import PASSWORD


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def _login(client, username: str, password: str = PASSWORD, next_path: str = "/"):
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf": _csrf(page.text),
            "next": next_path,
        },
        follow_redirects=False,
    )


def test_home_sends_a_stranger_to_the_login_page(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_it_logs_in_and_shows_the_users_region(client):
    response = _login(client, "commander_in")
    assert response.status_code == 303
    home = client.get("/")
    assert home.status_code == 200
    assert "长春市" in home.text
    assert "220100" in home.text
    assert "南关区" in home.text  # a district below Changchun
    assert "吉林市" not in home.text.split("<main>")[1]  # nothing of a neighbouring city


def test_a_wrong_password_shows_the_form_again_with_an_error(client):
    response = _login(client, "commander_in", password="wrong-password")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.text
    assert "bastion_session" not in response.cookies


def test_a_username_with_a_nul_is_a_failed_login_not_an_error(client):
    # PostgreSQL refuses a NUL in text: such a username never reaches the database.
    response = _login(client, "commander_in\x00")
    assert response.status_code == 401
    assert "用户名或密码错误" in response.text
    assert "bastion_session" not in response.cookies


def test_a_post_without_the_csrf_token_is_refused(client):
    client.get("/login")
    response = client.post(
        "/login", data={"username": "commander_in", "password": PASSWORD, "csrf": "forged"}
    )
    assert response.status_code == 400
    assert "bastion_session" not in response.cookies


def test_it_never_redirects_off_site_after_login(client):
    response = _login(client, "commander_in", next_path="//evil.example/")
    assert response.headers["location"] == "/"


def test_logout_ends_the_session(client):
    _login(client, "analyst_in")
    home = client.get("/")
    assert home.status_code == 200
    old_cookie = client.cookies.get("bastion_session")
    response = client.post("/logout", data={"csrf": _csrf(home.text)}, follow_redirects=False)
    assert response.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303
    # Replaying the old cookie does not work either: logout revoked the token itself.
    client.cookies.set("bastion_session", old_cookie)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_pages_switch_to_english(client):
    page = client.get("/login?lang=en")
    assert "Log in" in page.text
    assert client.get("/login").text.count("Log in") >= 1  # the choice is remembered


def test_static_assets_are_served_locally(client):
    response = client.get("/static/bastion.css")
    assert response.status_code == 200
    assert "text/css" in response.headers["content-type"]
