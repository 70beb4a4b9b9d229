"""The sampling page and its batch route: the session cookie plus the CSRF header stand in for
the bearer token; the batch goes through the API's idempotent scan path."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bastion.testing.models import TubeMember
from tests.integration.web.pages import START, login, main_of


def _members(db) -> int:
    return db.execute(select(func.count()).select_from(TubeMember)).scalar_one()


def _batch(scene, key: str, tube: str = "TW10000001", n: int = 3) -> dict:
    return {
        "key": key,
        "round": scene.round.code,
        "site": scene.site.code,
        "groups": [
            {
                "tube": tube,
                "people": [p.token for p in scene.people[:n]],
                "scanned_at": (START + timedelta(hours=2)).isoformat(),
                "capacity": 10,
            }
        ],
    }


def test_the_page_shows_the_users_site_round_and_pool_size(client, scene):
    login(client, "sampler_in")
    page = client.get("/sampling")
    assert page.status_code == 200
    body = main_of(page.text)
    assert "SITE-CC" in body
    assert "R-WEB-1" in body
    assert "SITE-JL" not in body  # Jilin City's site is not offered in Changchun
    assert '"capacity": 10' in body
    assert 'src="/static/sampling.js"' in page.text


def test_a_sampler_outside_cannot_open_changchuns_site(client, scene):
    login(client, "sampler_out")
    response = client.get("/sampling?site=SITE-CC")
    assert response.status_code == 404
    assert "SITE-CC" not in main_of(client.get("/sampling").text)


def test_a_batch_lands_once_however_often_it_is_sent(client, db, scene):
    token = login(client, "sampler_in")
    headers = {"X-CSRF-Token": token}
    first = client.post("/sampling/batches", json=_batch(scene, "web-test-000001"), headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 3
    again = client.post("/sampling/batches", json=_batch(scene, "web-test-000001"), headers=headers)
    assert again.json()["replayed"] is True
    assert _members(db) == 3


def test_a_batch_without_the_csrf_header_is_refused(client, db, scene):
    login(client, "sampler_in")
    response = client.post("/sampling/batches", json=_batch(scene, "web-test-000002"))
    assert response.status_code == 401
    assert response.json()["code"] == "auth.csrf"
    assert _members(db) == 0


def test_a_batch_without_a_session_gets_401_not_a_redirect(client, db, scene):
    token = login(client, "sampler_in")
    client.cookies.delete("bastion_session")
    response = client.post(
        "/sampling/batches", json=_batch(scene, "web-test-000003"), headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 401
    assert _members(db) == 0


def test_a_courier_may_not_send_scans(client, db, scene):
    token = login(client, "courier_in")
    assert client.get("/sampling").status_code == 403
    response = client.post(
        "/sampling/batches", json=_batch(scene, "web-test-000004"), headers={"X-CSRF-Token": token}
    )
    assert response.status_code == 403
    assert _members(db) == 0


def test_a_sampler_outside_cannot_send_to_changchuns_site(client, db, scene):
    token = login(client, "sampler_out")
    response = client.post(
        "/sampling/batches", json=_batch(scene, "web-test-000005"), headers={"X-CSRF-Token": token}
    )
    # As through the API: every row is refused, naming the site's region.
    assert response.json()["accepted"] == 0
    assert {p["code"] for p in response.json()["problems"]} == {"error.region_outside"}
    assert _members(db) == 0
