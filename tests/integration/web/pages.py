"""Helpers for page tests: log in through the form, read a form's CSRF token."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.support.world import PASSWORD

#: 08:00 in Changchun on 25 March 2022; pages are read six hours later.
START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
NOW = START + timedelta(hours=6)


def csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page carries a CSRF token"
    return match.group(1)


def login(client: TestClient, username: str) -> str:
    """Log ``username`` in; returns a CSRF token for the forms of the session."""
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf": csrf(page.text), "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf(client.get("/").text)


def main_of(html: str) -> str:
    """The page's <main>, without the header (which names the user and their role)."""
    return html.split("<main>", 1)[1].split("</main>", 1)[0]
