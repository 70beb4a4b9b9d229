"""The layout every page shares: navigation by role, the language switch, local assets,
session expiry, and every page sending a stranger to the login page."""

from __future__ import annotations

import re

import pytest

from bastion.core import clock
from tests.integration.web.pages import NOW, login

PAGES = [
    "/dashboard",
    "/rounds",
    "/sampling",
    "/boxes",
    "/lab",
    "/conflicts",
    "/grid",
    "/people",
    "/admin/users",
    "/admin/audit",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_stranger_to_the_login_page(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


def _nav(html: str) -> set[str]:
    if '<nav class="pages"' not in html:
        return set()
    block = html.split('<nav class="pages"', 1)[1].split("</nav>", 1)[0]
    return set(re.findall(r'href="([^"]+)"', block))


@pytest.mark.parametrize(
    ("role", "shown", "hidden"),
    [
        ("sampler", {"/sampling", "/boxes"}, {"/dashboard", "/lab", "/admin/users", "/grid"}),
        ("courier", {"/boxes"}, {"/sampling", "/lab", "/admin/audit"}),
        ("lab", {"/lab", "/boxes"}, {"/sampling", "/conflicts", "/admin/users"}),
        ("commander", {"/dashboard", "/rounds", "/conflicts"}, {"/sampling", "/lab"}),
        ("analyst", {"/dashboard"}, {"/admin/users", "/conflicts", "/boxes"}),
        ("grid_worker", {"/grid"}, {"/dashboard", "/sampling", "/admin/users"}),
        ("admin", {"/admin/users", "/admin/audit", "/dashboard"}, set()),
        ("resident", set(), {"/dashboard", "/sampling", "/grid", "/people", "/admin/users"}),
        ("hotline", {"/people"}, {"/dashboard", "/sampling", "/boxes", "/admin/users"}),
    ],
)
def test_navigation_links_only_to_pages_the_role_may_use(client, role, shown, hidden):
    login(client, f"{role}_in")
    links = _nav(client.get("/").text)
    assert shown <= links
    assert not hidden & links
    for path in links - {"/"}:
        assert client.get(path).status_code == 200, path


def test_a_page_outside_the_role_is_refused_with_a_page(client):
    login(client, "sampler_in")
    response = client.get("/admin/users")
    assert response.status_code == 403
    assert "text/html" in response.headers["content-type"]
    assert "users.read" in response.text


def test_the_language_switch_keeps_the_page_and_its_parameters(client):
    login(client, "commander_in")
    page = client.get("/dashboard?region=220102")
    assert 'href="/dashboard?region=220102&amp;lang=en"' in page.text
    english = client.get("/dashboard?region=220102&lang=en")
    assert "Command dashboard" in english.text
    assert "Command dashboard" in client.get("/dashboard").text  # remembered


def test_every_asset_is_served_from_this_server(client):
    login(client, "admin_in")
    for path in ["/", *PAGES]:
        html = client.get(path).text
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert not url.startswith(("http:", "https:", "//")), (path, url)


def test_an_expired_session_goes_to_the_login_page_with_a_message(client):
    with clock.frozen(NOW):
        login(client, "analyst_in")
        assert client.get("/dashboard").status_code == 200
    with clock.frozen(NOW.replace(year=2023)):
        response = client.get("/dashboard?region=220102", follow_redirects=False)
        assert response.status_code == 303
        assert "expired=1" in response.headers["location"]
        assert "next=%2Fdashboard%3Fregion%3D220102" in response.headers["location"]
        page = client.get(response.headers["location"])
        assert "登录已失效，请重新登录" in page.text


def test_a_logged_out_session_cannot_post_forms(client):
    token = login(client, "admin_in")
    client.post("/logout", data={"csrf": token})
    response = client.post(
        "/admin/users",
        data={"csrf": token, "username": "ghost", "password": "x" * 12, "role": "sampler"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_a_form_answer_switches_language_on_the_page_it_came_from(client):
    token = login(client, "courier_in")
    answer = client.post(
        "/boxes/pick-up",
        data={"csrf": token, "code": "NO-SUCH-BOX", "counted": "1"},
        headers={"referer": "http://testserver/boxes?code=NO-SUCH-BOX"},
    )
    assert answer.status_code == 404
    assert 'href="/boxes?lang=en"' in answer.text
    elsewhere = client.post(
        "/boxes/pick-up",
        data={"csrf": token, "code": "NO-SUCH-BOX", "counted": "1"},
        headers={"referer": "https://evil.example/boxes"},
    )
    assert 'href="/?lang=en"' in elsewhere.text
