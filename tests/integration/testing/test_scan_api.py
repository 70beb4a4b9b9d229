"""The live sampling API: a scanner saves groups; acknowledged only once durable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bastion.core import clock
from bastion.testing.models import TubeMember
from tests.support import factories

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
NOW = START + timedelta(hours=6)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def setup(db):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    people = [factories.person(db) for _ in range(6)]
    db.commit()
    return rnd, site, people


def body(rnd, site, groups, key="scanner-7-000001"):
    return {
        "key": key,
        "round": rnd.code,
        "site": site.code,
        "groups": [
            {
                "tube": tube,
                "people": [p.token for p in members],
                "scanned_at": (START + timedelta(hours=2)).isoformat(),
            }
            for tube, members in groups
        ],
    }


def test_a_sampler_saves_a_group_and_it_is_there(client, headers, setup, db):
    rnd, site, people = setup
    response = client.post(
        "/api/v1/scans/batches",
        json=body(rnd, site, [("TC00000001", people[:3])]),
        headers=headers("sampler"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 3
    assert db.execute(select(func.count()).select_from(TubeMember)).scalar_one() == 3


def test_resending_a_batch_replays_the_answer(client, headers, setup, db):
    rnd, site, people = setup
    payload = body(rnd, site, [("TC00000002", people[:2])], key="scanner-7-000002")
    first = client.post("/api/v1/scans/batches", json=payload, headers=headers("sampler"))
    again = client.post("/api/v1/scans/batches", json=payload, headers=headers("sampler"))
    assert first.json()["accepted"] == again.json()["accepted"] == 2
    assert again.json()["replayed"] is True
    assert db.execute(select(func.count()).select_from(TubeMember)).scalar_one() == 2


def test_refusals_name_the_group_and_person(client, headers, setup):
    rnd, site, people = setup
    payload = body(
        rnd, site, [("TC00000003", people[:2]), ("TC00000004", [people[1]])], key="scanner-7-000003"
    )
    response = client.post("/api/v1/scans/batches", json=payload, headers=headers("sampler"))
    data = response.json()
    assert data["accepted"] == 2
    assert [(p["field"], p["code"]) for p in data["problems"]] == [
        ("groups.1.people.0.person", "scan.person_twice")
    ]


def test_roles_without_the_scan_permission_are_refused(client, headers, setup):
    rnd, site, people = setup
    response = client.post(
        "/api/v1/scans/batches",
        json=body(rnd, site, [("TC00000005", people[:1])]),
        headers=headers("analyst"),
    )
    assert response.status_code == 403


def test_a_malformed_batch_is_a_clear_422(client, headers, setup):
    response = client.post(
        "/api/v1/scans/batches", json={"key": "short"}, headers=headers("sampler")
    )
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"key", "round", "site", "groups"} <= fields


def test_a_body_that_is_not_json_is_a_422_naming_the_body(client, headers, setup):
    response = client.post(
        "/api/v1/scans/batches",
        content=b'{"key": "scanner-7-000009", "groups": [',
        headers={**headers("sampler"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["body"]


def test_wrong_types_inside_groups_are_named_by_their_path(client, headers, setup):
    rnd, site, people = setup
    payload = body(rnd, site, [("TC00000006", people[:2])], key="scanner-7-000010")
    payload["groups"][0]["people"][1] = 42
    payload["groups"][0]["scanned_at"] = "yesterday"
    payload["groups"][0]["capacity"] = "ten"
    response = client.post("/api/v1/scans/batches", json=payload, headers=headers("sampler"))
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"groups.0.people.1", "groups.0.scanned_at", "groups.0.capacity"}


def test_no_token_is_401_before_the_body_is_read(client, setup):
    response = client.post("/api/v1/scans/batches", content=b"not json")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_oversized_body_is_a_413(client, headers, setup):
    response = client.post(
        "/api/v1/scans/batches",
        content=b" " * (4 * 1024 * 1024 + 1),
        headers={**headers("sampler"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_answers_in_english_when_asked(client, headers, setup):
    rnd, site, people = setup
    payload = body(
        rnd, site, [("TC00000007", people[:1]), ("TC00000008", people[:1])], key="scanner-7-11"
    )
    response = client.post(
        "/api/v1/scans/batches",
        json=payload,
        headers={**headers("sampler"), "Accept-Language": "en"},
    )
    assert response.status_code == 200
    (problem,) = response.json()["problems"]
    assert problem["code"] == "scan.person_twice"
    assert problem["reason"].isascii()
