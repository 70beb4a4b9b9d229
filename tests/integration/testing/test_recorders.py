"""Recorders bound to sampling sites: assigned through the API, and held to their sites by the
scan checks — through the live API (cached sites included) and through a scan file. A user
bound to no site keeps sending for any site of their region, as before bindings existed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bastion.accounts import service as account_service
from bastion.accounts.models import User
from bastion.audit.models import AuditEntry
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.testing import ingest, recorders
from bastion.testing.ingest import RawScan, SiteCache
from bastion.testing.models import SiteRecorder, TubeMember
from tests.support import factories

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
NOW = START + timedelta(hours=6)
SCANNED = START + timedelta(hours=2)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def add_user(db, username: str, role: str = "sampler", region: str = "220100") -> User:  # type: ignore[no-untyped-def]
    user = User(
        username=username,
        display_name=username,
        password_hash="x",
        role=role,
        region_code=region,
        active=True,
        token_version=0,
        created_at=clock.now(),
    )
    db.add(user)
    db.flush()
    return user


@pytest.fixture
def world(db):
    rnd = factories.round_(db, starts_at=START)
    home = factories.site(db, code="SITE-HOME")
    other = factories.site(db, code="SITE-OTHER")
    people = [factories.person(db) for _ in range(8)]
    add_user(db, "sampler_2")
    db.commit()
    return rnd, home, other, people


def bind(client, headers, site: str, usernames: list[str]) -> Any:
    return client.put(
        f"/api/v1/sites/{site}/recorders",
        json={"usernames": usernames},
        headers=headers("commander"),
    )


def scan_body(rnd, site: str, tube: str, people, key: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {
        "key": key,
        "round": rnd.code,
        "site": site,
        "groups": [
            {"tube": tube, "people": [p.token for p in people], "scanned_at": SCANNED.isoformat()}
        ],
    }


def members(db) -> int:  # type: ignore[no-untyped-def]
    return db.execute(select(func.count()).select_from(TubeMember)).scalar_one()


# Assigning -----------------------------------------------------------------------------------


def test_recorders_are_bound_listed_replaced_and_audited(client, headers, db, world):
    response = bind(client, headers, "SITE-HOME", ["sampler_in", "sampler_2", "sampler_in"])
    assert response.status_code == 200, response.text
    assert [r["username"] for r in response.json()] == ["sampler_2", "sampler_in"]
    listed = client.get("/api/v1/sites/SITE-HOME/recorders", headers=headers("commander"))
    assert [r["username"] for r in listed.json()] == ["sampler_2", "sampler_in"]
    assert listed.json()[0]["role"] == "sampler"

    again = bind(client, headers, "SITE-HOME", ["sampler_2", "admin_in"])
    assert [r["username"] for r in again.json()] == ["admin_in", "sampler_2"]
    assert bind(client, headers, "SITE-HOME", []).json() == []
    assert db.execute(select(func.count()).select_from(SiteRecorder)).scalar_one() == 0

    entries = db.execute(
        select(AuditEntry)
        .where(AuditEntry.action == "site.recorders.update")
        .order_by(AuditEntry.seq)
    ).scalars()
    changes = [(d["added"], d["removed"]) for d in (json.loads(e.details) for e in entries)]
    assert changes == [
        (["sampler_2", "sampler_in"], []),
        (["admin_in"], ["sampler_in"]),
        ([], ["admin_in", "sampler_2"]),
    ]


def test_binding_the_same_set_again_changes_nothing_and_is_not_audited(client, headers, world, db):
    bind(client, headers, "SITE-HOME", ["sampler_in"])
    bind(client, headers, "SITE-HOME", ["sampler_in"])
    audited = db.execute(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.action == "site.recorders.update")
    ).scalar_one()
    assert audited == 1


def test_each_username_that_cannot_be_bound_is_named_and_nothing_is_bound(
    client, headers, db, world
):
    add_user(db, "sampler_far", region="220200")
    add_user(db, "sampler_street", region="220104")
    db.commit()
    response = client.put(
        "/api/v1/sites/SITE-HOME/recorders",
        json={"usernames": ["sampler_in", "nobody", "analyst_in", "sampler_far", "sampler_street"]},
        headers={**headers("commander"), "Accept-Language": "en"},
    )
    assert response.status_code == 422
    problems = [(e["field"], e["code"], e["reason"]) for e in response.json()["errors"]]
    assert problems == [
        ("usernames", "recorder.cannot_scan", "user 'analyst_in' (analyst) cannot send scans."),
        ("usernames", "recorder.unknown_user", "no user 'nobody' in your jurisdiction."),
        ("usernames", "recorder.unknown_user", "no user 'sampler_far' in your jurisdiction."),
        (
            "usernames",
            "recorder.outside_site_region",
            "user 'sampler_street' works outside the site's region 220102001001.",
        ),
    ]
    assert db.execute(select(func.count()).select_from(SiteRecorder)).scalar_one() == 0


def test_binding_needs_the_right_to_manage_sites_and_the_site_in_the_callers_region(
    client, headers, world
):
    response = client.put(
        "/api/v1/sites/SITE-HOME/recorders",
        json={"usernames": ["sampler_in"]},
        headers=headers("sampler"),
    )
    assert response.status_code == 403
    outside = client.put(
        "/api/v1/sites/SITE-HOME/recorders",
        json={"usernames": []},
        headers=headers("commander", "out"),
    )
    assert outside.status_code == 404
    assert outside.json()["code"] == "site.not_found"
    listing = client.get("/api/v1/sites/SITE-HOME/recorders", headers=headers("analyst"))
    assert listing.status_code == 403


# The rule, through the live API ----------------------------------------------------------------


def test_a_bound_recorder_sends_for_their_site_and_is_refused_elsewhere(client, headers, db, world):
    rnd, _, _, people = world
    bind(client, headers, "SITE-HOME", ["sampler_in"])
    home = client.post(
        "/api/v1/scans/batches",
        json=scan_body(rnd, "SITE-HOME", "TB00000001", people[:2], "bound-000001"),
        headers=headers("sampler"),
    )
    assert home.json()["accepted"] == 2, home.text
    elsewhere = client.post(
        "/api/v1/scans/batches",
        json=scan_body(rnd, "SITE-OTHER", "TB00000002", people[2:4], "bound-000002"),
        headers={**headers("sampler"), "Accept-Language": "en"},
    )
    data = elsewhere.json()
    assert (data["accepted"], data["refused"]) == (0, 2), elsewhere.text
    # Each refused scan, named by its group (the API's path of a row's field).
    assert [(p["field"], p["code"]) for p in data["problems"]] == [
        ("groups.0.site", "scan.site_not_bound"),
        ("groups.0.site", "scan.site_not_bound"),
    ]
    assert "SITE-OTHER" in data["problems"][0]["reason"]
    assert members(db) == 2


def test_a_user_bound_to_no_site_still_sends_for_any_site_of_their_region(
    client, headers, db, world
):
    rnd, _, _, people = world
    bind(client, headers, "SITE-HOME", ["sampler_2"])
    response = client.post(
        "/api/v1/scans/batches",
        json=scan_body(rnd, "SITE-OTHER", "TB00000003", people[:2], "free-000001"),
        headers=headers("sampler"),
    )
    assert response.json()["accepted"] == 2, response.text


def test_the_cached_site_does_not_let_a_user_bound_elsewhere_through(client, headers, db, world):
    rnd, _, _, people = world
    bind(client, headers, "SITE-HOME", ["sampler_2"])
    bind(client, headers, "SITE-OTHER", ["admin_in"])
    # sampler_in (bound nowhere) puts SITE-OTHER in the live API's site cache...
    first = client.post(
        "/api/v1/scans/batches",
        json=scan_body(rnd, "SITE-OTHER", "TB00000004", people[:1], "cache-000001"),
        headers=headers("sampler"),
    )
    assert first.json()["accepted"] == 1, first.text
    # ...then admin_in, bound to it, is let through from the cache...
    bound = client.post(
        "/api/v1/scans/batches",
        json=scan_body(rnd, "SITE-OTHER", "TB00000005", people[1:2], "cache-000002"),
        headers=headers("admin"),
    )
    assert bound.json()["accepted"] == 1, bound.text
    # ...and sampler_2, bound to SITE-HOME only, meets the cached site and is refused.
    sampler_2 = db.execute(select(User).where(User.username == "sampler_2")).scalar_one()
    token, _ = account_service.issue_token(sampler_2)
    refused = client.post(
        "/api/v1/scans/batches",
        json=scan_body(rnd, "SITE-OTHER", "TB00000006", people[2:3], "cache-000003"),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.json()["refused"] == 1, refused.text
    assert refused.json()["problems"][0]["code"] == "scan.site_not_bound"
    assert members(db) == 2


# The rule, through the bulk path (a scan file, a shared cache) --------------------------------


def test_a_scan_file_sent_by_a_bound_recorder_keeps_only_their_sites_rows(db, world, principal):
    rnd, home, other, people = world
    recorders.set_recorders(
        db_session=db, principal=system_principal(), code=home.code, usernames=["sampler_in"]
    )
    at = "2022-03-25T10:00:00+08:00"
    lines = ["round,site,tube,person,scanned_at"]
    lines += [f"{rnd.code},{home.code},TF00000001,{p.token},{at}" for p in people[:2]]
    lines += [f"{rnd.code},{other.code},TF00000002,{p.token},{at}" for p in people[2:5]]
    report = ingest.import_scans_file(
        db_session=db,
        principal=principal("sampler"),
        binary=io.BytesIO(("\n".join(lines) + "\n").encode()),
    )
    assert (report.accepted, report.refused) == (2, 3)
    assert [(p.row, p.field, p.reason) for p in report.problems] == [
        # Rows are the file's lines (the header is line 1).
        (4, "site", "scan.site_not_bound"),
        (5, "site", "scan.site_not_bound"),
        (6, "site", "scan.site_not_bound"),
    ]
    # The system (the CLI) is bound to nothing and imports any site's rows.
    lines = ["round,site,tube,person,scanned_at"]
    lines += [f"{rnd.code},{other.code},TF00000003,{p.token},{at}" for p in people[2:5]]
    report = ingest.import_scans_file(
        db_session=db,
        principal=system_principal(),
        binary=io.BytesIO(("\n".join(lines) + "\n").encode()),
    )
    assert (report.accepted, report.refused) == (3, 0)


def test_a_shared_site_cache_judges_each_sender_by_their_own_binding(db, world, principal):
    rnd, home, _, people = world
    recorders.set_recorders(
        db_session=db, principal=system_principal(), code="SITE-OTHER", usernames=["admin_in"]
    )
    cache = SiteCache()

    def batch(who: Any, key: str, person: Any, tube: str) -> ingest.BatchIn:
        scan = RawScan(1, rnd.code, home.code, tube, person.token, SCANNED)
        return ingest.BatchIn(principal=who, key=key, source="api", scans=[scan])

    free, bound_elsewhere = principal("sampler"), principal("admin")
    reports = ingest.ingest_batches(
        db_session=db,
        batches=[
            batch(free, "shared-000001", people[0], "TS00000001"),
            batch(bound_elsewhere, "shared-000002", people[1], "TS00000002"),
        ],
        sites=cache,
    )
    assert [(r.accepted, r.refused) for r in reports] == [(1, 0), (0, 1)]
    # The next round trip finds the site cached: the same answers.
    reports = ingest.ingest_batches(
        db_session=db,
        batches=[
            batch(bound_elsewhere, "shared-000003", people[2], "TS00000003"),
            batch(free, "shared-000004", people[3], "TS00000004"),
        ],
        sites=cache,
    )
    assert [(r.accepted, r.refused) for r in reports] == [(0, 1), (1, 0)]
    assert reports[0].problems[0].reason == "scan.site_not_bound"
