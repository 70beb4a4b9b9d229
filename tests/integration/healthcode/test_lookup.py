"""Lookups under load, without timing: staff authentication and region, the status cache's
freshness after a change, and shedding the excess with 429 + Retry-After (never a 5xx)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.accounts.models import User
from bastion.api.principals import TTL_SECONDS as PRINCIPAL_TTL
from bastion.core import clock
from tests.integration.healthcode.codes_support import (
    NOW,
    fresh_lookup,
    outsider,
    resident,
    set_status,
)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _lookup(client, headers, token: str, role: str = "grid_worker", where: str = "in"):
    return client.get(
        "/api/v1/codes/lookup", params={"person": token}, headers=headers(role, where)
    )


@pytest.mark.parametrize(
    ("role", "where", "target", "status"),
    [
        ("grid_worker", "in", "in", 200),
        ("grid_worker", "in", "out", 403),
        ("grid_worker", "out", "out", 200),
        ("hotline", "in", "in", 200),
        ("admin", "in", "in", 200),
        ("sampler", "in", "in", 403),  # no healthcode.read
        ("resident", "in", "in", 403),
    ],
)
def test_staff_lookup_needs_the_permission_and_the_region(
    client, db, headers, role, where, target, status
):
    person = resident(db, "supply") if target == "in" else outsider(db)
    set_status(db, person, "red")
    response = _lookup(client, headers, person.token, role, where)
    assert response.status_code == status, response.text
    if status == 200:
        body = response.json()
        assert body["colour"] == "red"
        assert body["person"] != person.token
        assert body["person"][:4] == person.token[:4]
        assert body["region_code"] == person.region_code
    else:
        assert response.headers["content-type"] == "application/problem+json"


def test_lookup_refuses_missing_tokens_and_unknown_people(client, headers):
    assert client.get("/api/v1/codes/lookup").status_code == 401
    forged = {"Authorization": "Bearer abc.def"}
    response = client.get("/api/v1/codes/lookup", params={"person": "x"}, headers=forged)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert _lookup(client, headers, "0" * 24).status_code == 404
    missing = client.get("/api/v1/codes/lookup", headers=headers("grid_worker"))
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "person"


def test_wrong_method_is_405_not_a_crash(client, headers):
    response = client.post("/api/v1/codes/lookup", headers=headers("grid_worker"))
    assert response.status_code == 405


def test_the_cache_serves_until_the_poll_then_shows_the_change(client, db, headers):
    """Between polls the cached status answers (no database work); the next poll after a
    change drops the person and the lookup shows the new colour, in the staff lookup and in
    the resident's own signed code."""
    _, ticks = fresh_lookup(client.app, poll_seconds=10)
    person = resident(db)
    auth = headers("resident")
    assert _lookup(client, headers, person.token).json()["colour"] == "green"
    assert client.get("/api/v1/codes/mine", headers=auth).json()["colour"] == "green"

    set_status(db, person, "red")
    assert _lookup(client, headers, person.token).json()["colour"] == "green"  # cached

    ticks.now += 10
    assert _lookup(client, headers, person.token).json()["colour"] == "red"
    mine = client.get("/api/v1/codes/mine", headers=auth).json()
    assert (mine["colour"], mine["version"]) == ("red", 1)

    set_status(db, person, "yellow")
    ticks.now += 10
    assert client.get("/api/v1/codes/mine", headers=auth).json()["colour"] == "yellow"


def test_a_batch_committed_late_is_caught_by_the_next_poll(client, db, headers):
    """A recompute stamps changed_at when it starts and may commit long after: here its rows
    carry a changed_at an hour before the last poll. The poll reads by write batch (seq), not
    by time, so the next incremental poll applies them, long before the full reload."""
    from bastion.healthcode import store
    from tests.integration.healthcode import records

    _, ticks = fresh_lookup(client.app, poll_seconds=10, full_reload_seconds=10_000)
    person, neighbour = resident(db), outsider(db)
    set_status(db, neighbour, "yellow")  # the latest change the first poll sees: now
    assert _lookup(client, headers, person.token).json()["colour"] == "green"
    with clock.frozen(NOW - timedelta(hours=1)):
        records.contact(db, person, records.case(db, outsider(db)))
        result = store.recompute_people(db_session=db, person_ids=[person.id])
    assert result.changed == 1
    ticks.now += 10
    assert _lookup(client, headers, person.token).json()["colour"] == "red"


def test_the_excess_is_shed_with_429_and_retry_after_and_recovers(client, db, headers):
    lookup, ticks = fresh_lookup(client.app, lookup_rate=2, lookup_burst=2, retry_after_seconds=3)
    person = resident(db)
    auth = headers("resident")
    statuses = [client.get("/api/v1/codes/mine", headers=auth).status_code for _ in range(6)]
    assert statuses == [200, 200, 429, 429, 429, 429]
    shed = client.get("/api/v1/codes/mine", headers=auth)
    assert shed.status_code == 429
    assert shed.headers["retry-after"] == "3"
    assert shed.headers["content-type"] == "application/problem+json"
    assert shed.json()["code"] == "code.overloaded"
    assert lookup.limiter.shed == 5

    ticks.now += 1  # the load drops: a second's worth of tokens comes back
    statuses = [_lookup(client, headers, person.token).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_no_room_to_wait_for_the_database_is_429_not_a_queue(client, db, headers):
    lookup, _ = fresh_lookup(client.app, lookup_max_pending=0)
    person = resident(db)
    response = _lookup(client, headers, person.token)  # a cache miss needs the database
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    lookup.limiter.max_pending = 1
    assert _lookup(client, headers, person.token).status_code == 200


def test_a_revoked_resident_token_is_refused_within_the_principal_ttl(client, db, headers):
    """Residents' tokens are cached like the API's principals (10 s, refreshed ahead of time
    in the background): a logout elsewhere takes effect within the TTL."""
    _, ticks = fresh_lookup(client.app)
    resident(db)
    auth = headers("resident")
    assert client.get("/api/v1/codes/mine", headers=auth).status_code == 200
    user = db.execute(select(User).where(User.username == "resident_in")).scalar_one()
    user.token_version += 1  # what logout does
    db.flush()
    ticks.now += 3
    assert client.get("/api/v1/codes/mine", headers=auth).status_code == 200  # still cached
    ticks.now += PRINCIPAL_TTL
    refused = client.get("/api/v1/codes/mine", headers=auth)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
