"""Sampling sites and labs after registration, through the API: listed a page at a time inside
the caller's region, changed with the same checks as on creation (each refusal naming its
field), and every change audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bastion.audit.models import AuditEntry
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.testing import service as testing_service
from bastion.testing.models import Lab, Site, SiteGrid
from bastion.testing.schemas import LabCreate, SiteCreate
from tests.support.world import CHANGYI_GRID, NANGUAN_COMMUNITY, NANGUAN_GRID, NANGUAN_GRID_2

NOW = datetime(2022, 3, 25, 6, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def make_site(db, code: str, region: str = NANGUAN_COMMUNITY, grids: Any = None) -> Site:  # type: ignore[no-untyped-def]
    return testing_service.create_site(
        db_session=db,
        principal=system_principal(),
        data=SiteCreate(
            code=code,
            name=f"采样点 {code}",
            region_code=region,
            capacity_per_hour=300,
            grids=[NANGUAN_GRID] if grids is None else grids,
        ),
    )


def make_lab(db, code: str, region: str = "220100") -> Lab:  # type: ignore[no-untyped-def]
    return testing_service.create_lab(
        db_session=db,
        principal=system_principal(),
        data=LabCreate(code=code, name=f"实验室 {code}", region_code=region, daily_capacity=5000),
    )


def refusals(response: Any) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in response.json()["errors"]]


def audited(db, action: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    rows = db.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars()
    return [json.loads(row.details) for row in rows]


# Listing sites -------------------------------------------------------------------------------


def test_sites_are_listed_a_page_at_a_time_by_code_with_their_grids(client, headers, db):
    for n in range(5):
        make_site(db, f"SITE-L{n}")
    db.commit()
    first = client.get("/api/v1/sites", params={"limit": 2}, headers=headers("analyst"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["total"], body["offset"], body["limit"]) == (5, 0, 2)
    assert [s["code"] for s in body["items"]] == ["SITE-L0", "SITE-L1"]
    assert body["items"][0]["grids"] == [NANGUAN_GRID]
    assert body["items"][0]["active"] is True
    rest = client.get("/api/v1/sites", params={"offset": 4}, headers=headers("analyst")).json()
    assert [s["code"] for s in rest["items"]] == ["SITE-L4"]


def test_the_list_holds_only_the_callers_region(client, headers, db):
    make_site(db, "SITE-IN")
    make_site(db, "SITE-OUT", region=CHANGYI_GRID[:12], grids=[CHANGYI_GRID])
    db.commit()
    inside = client.get("/api/v1/sites", headers=headers("analyst", "in")).json()
    outside = client.get("/api/v1/sites", headers=headers("analyst", "out")).json()
    assert [s["code"] for s in inside["items"]] == ["SITE-IN"]
    assert [s["code"] for s in outside["items"]] == ["SITE-OUT"]


def test_sites_are_filtered_by_region_subtree_and_active(client, headers, db):
    make_site(db, "SITE-COMM")
    make_site(db, "SITE-CITY", region="220104", grids=[])
    make_site(db, "SITE-SHUT").active = False
    db.commit()

    def codes(**params: Any) -> list[str]:
        response = client.get("/api/v1/sites", params=params, headers=headers("analyst"))
        assert response.status_code == 200, response.text
        return [s["code"] for s in response.json()["items"]]

    assert codes(region="220102") == ["SITE-COMM", "SITE-SHUT"]
    assert codes(region="220102", active="true") == ["SITE-COMM"]
    assert codes(active="false") == ["SITE-SHUT"]
    assert codes() == ["SITE-CITY", "SITE-COMM", "SITE-SHUT"]


def test_a_region_filter_outside_the_caller_or_unknown_is_refused_naming_region(client, headers):
    outside = client.get("/api/v1/sites", params={"region": "220200"}, headers=headers("analyst"))
    assert outside.status_code == 403
    assert refusals(outside) == [("region", "error.region_outside")]
    unknown = client.get("/api/v1/sites", params={"region": "229999"}, headers=headers("analyst"))
    assert unknown.status_code == 404
    assert refusals(unknown) == [("region", "error.region_unknown")]


def test_a_page_out_of_range_is_a_422_naming_the_parameter(client, headers):
    response = client.get("/api/v1/sites", params={"limit": 501}, headers=headers("analyst"))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["limit"]


def test_listing_sites_needs_the_right_to_read_testing(client, headers):
    assert client.get("/api/v1/sites", headers=headers("hotline")).status_code == 403


# Changing a site -----------------------------------------------------------------------------


def test_a_site_is_changed_field_by_field_and_the_change_is_audited(client, headers, db):
    make_site(db, "SITE-P1")
    db.commit()
    response = client.patch(
        "/api/v1/sites/SITE-P1",
        json={
            "name": "南关采样点",
            "address": "人民大街 1 号",
            "teams": 4,
            "opens_at": "06:30",
            "closes_at": "21:00",
            "capacity_per_hour": 450,
            "grids": [NANGUAN_GRID_2, NANGUAN_GRID_2],
        },
        headers=headers("commander"),
    )
    assert response.status_code == 200, response.text
    site = response.json()
    assert (site["name"], site["address"], site["teams"]) == ("南关采样点", "人民大街 1 号", 4)
    assert (site["opens_at"], site["closes_at"], site["capacity_per_hour"]) == (
        "06:30:00",
        "21:00:00",
        450,
    )
    assert site["grids"] == [NANGUAN_GRID_2]
    stored = db.execute(select(SiteGrid.region_code)).scalars().all()
    assert stored == [NANGUAN_GRID_2]
    (entry,) = audited(db, "site.update")
    assert entry["code"] == "SITE-P1"
    assert entry["changes"]["capacity_per_hour"] == [300, 450]
    assert entry["changes"]["grids"] == [[NANGUAN_GRID], [NANGUAN_GRID_2]]
    assert entry["changes"]["opens_at"] == ["07:00:00", "06:30:00"]


def test_a_field_left_out_stays_and_nothing_changed_is_not_audited(client, headers, db):
    make_site(db, "SITE-P2")
    db.commit()
    response = client.patch(
        "/api/v1/sites/SITE-P2", json={"capacity_per_hour": 300}, headers=headers("commander")
    )
    assert response.status_code == 200, response.text
    assert response.json()["grids"] == [NANGUAN_GRID]
    assert response.json()["name"] == "采样点 SITE-P2"
    assert audited(db, "site.update") == []


def test_a_site_is_deactivated_and_listed_as_such(client, headers, db):
    make_site(db, "SITE-P3")
    db.commit()
    response = client.patch(
        "/api/v1/sites/SITE-P3", json={"active": False}, headers=headers("commander")
    )
    assert response.json()["active"] is False
    listed = client.get("/api/v1/sites", params={"active": False}, headers=headers("analyst"))
    assert [s["code"] for s in listed.json()["items"]] == ["SITE-P3"]


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ({"name": "  "}, [("name", "field.required")]),
        ({"teams": 0}, [("teams", "field.must_be_positive")]),
        ({"teams": 40_000}, [("teams", "field.out_of_range")]),
        ({"capacity_per_hour": -5}, [("capacity_per_hour", "field.must_be_positive")]),
        ({"capacity_per_hour": 10**12}, [("capacity_per_hour", "field.out_of_range")]),
        ({"closes_at": "06:00"}, [("closes_at", "site.closes_before_opening")]),
        ({"opens_at": "23:00"}, [("opens_at", "site.closes_before_opening")]),
        (
            {"opens_at": "10:00", "closes_at": "09:00"},
            [("closes_at", "site.closes_before_opening")],
        ),
        ({"opens_at": "06:00+08:00"}, [("opens_at", "site.time_with_offset")]),
        ({"grids": ["229999999999999"]}, [("grids", "error.region_unknown")]),
        ({"grids": [CHANGYI_GRID]}, [("grids", "site.grid_outside_region")]),
        (
            {"name": "", "teams": -1, "grids": [CHANGYI_GRID]},
            [
                ("name", "field.required"),
                ("teams", "field.must_be_positive"),
                ("grids", "site.grid_outside_region"),
            ],
        ),
    ],
)
def test_a_site_change_refusal_names_each_bad_field_and_changes_nothing(
    client, headers, db, body, problems
):
    make_site(db, "SITE-P4")
    db.commit()
    response = client.patch("/api/v1/sites/SITE-P4", json=body, headers=headers("commander"))
    assert response.status_code == 422, response.text
    assert refusals(response) == problems
    site = db.execute(select(Site).where(Site.code == "SITE-P4")).scalar_one()
    db.refresh(site)
    assert (site.name, site.teams, site.capacity_per_hour) == ("采样点 SITE-P4", 1, 300)
    assert db.execute(select(SiteGrid.region_code)).scalars().all() == [NANGUAN_GRID]
    assert audited(db, "site.update") == []


def test_a_site_outside_the_callers_region_is_not_found(client, headers, db):
    make_site(db, "SITE-P5")
    db.commit()
    response = client.patch(
        "/api/v1/sites/SITE-P5", json={"teams": 3}, headers=headers("commander", "out")
    )
    assert response.status_code == 404
    assert response.json()["code"] == "site.not_found"


def test_changing_a_site_needs_the_right_to_manage_sites(client, headers, db):
    make_site(db, "SITE-P6")
    db.commit()
    response = client.patch("/api/v1/sites/SITE-P6", json={"teams": 3}, headers=headers("analyst"))
    assert response.status_code == 403
    assert response.json()["code"] == "error.permission_missing"


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({"teams": 40_000}, [("teams", "field.out_of_range")]),
        ({"opens_at": "07:00+08:00"}, [("opens_at", "site.time_with_offset")]),
    ],
)
def test_a_site_registration_a_column_could_not_hold_is_refused_not_a_500(
    client, headers, changes, problems
):
    body = {
        "code": "SITE-BIG",
        "name": "采样点",
        "region_code": NANGUAN_COMMUNITY,
        "capacity_per_hour": 300,
        **changes,
    }
    response = client.post("/api/v1/sites", json=body, headers=headers("commander"))
    assert response.status_code == 422
    assert refusals(response) == problems


# Labs ----------------------------------------------------------------------------------------


def test_labs_are_listed_in_the_callers_region_a_page_at_a_time(client, headers, db):
    for n in range(3):
        make_lab(db, f"LAB-L{n}")
    make_lab(db, "LAB-JL", region="220200")
    db.commit()
    body = client.get("/api/v1/labs", params={"limit": 2}, headers=headers("lab")).json()
    assert body["total"] == 3
    assert [lab["code"] for lab in body["items"]] == ["LAB-L0", "LAB-L1"]
    outside = client.get("/api/v1/labs", headers=headers("lab", "out")).json()
    assert [lab["code"] for lab in outside["items"]] == ["LAB-JL"]


def test_a_lab_is_changed_and_audited_and_filtered_by_active(client, headers, db):
    make_lab(db, "LAB-P1")
    make_lab(db, "LAB-P2")
    db.commit()
    response = client.patch(
        "/api/v1/labs/LAB-P1",
        json={"daily_capacity": 285_000, "name": "吉林市中心实验室", "active": False},
        headers=headers("commander"),
    )
    assert response.status_code == 200, response.text
    assert (response.json()["daily_capacity"], response.json()["active"]) == (285_000, False)
    (entry,) = audited(db, "lab.update")
    assert entry["changes"]["daily_capacity"] == [5000, 285_000]
    active = client.get("/api/v1/labs", params={"active": True}, headers=headers("lab")).json()
    assert [lab["code"] for lab in active["items"]] == ["LAB-P2"]


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ({"daily_capacity": 0}, [("daily_capacity", "field.must_be_positive")]),
        ({"daily_capacity": 10**10}, [("daily_capacity", "field.out_of_range")]),
        ({"name": " "}, [("name", "field.required")]),
    ],
)
def test_a_lab_change_refusal_names_the_field(client, headers, db, body, problems):
    make_lab(db, "LAB-P3")
    db.commit()
    response = client.patch("/api/v1/labs/LAB-P3", json=body, headers=headers("commander"))
    assert response.status_code == 422
    assert refusals(response) == problems
    assert audited(db, "lab.update") == []


def test_a_lab_outside_the_callers_region_cannot_be_changed(client, headers, db):
    make_lab(db, "LAB-P4", region="220200")
    db.commit()
    response = client.patch(
        "/api/v1/labs/LAB-P4", json={"daily_capacity": 9}, headers=headers("commander")
    )
    assert response.status_code == 403
    assert response.json()["code"] == "error.region_outside"
    unknown = client.patch(
        "/api/v1/labs/LAB-NONE", json={"daily_capacity": 9}, headers=headers("commander")
    )
    assert unknown.status_code == 404


def test_changing_a_lab_needs_the_right_to_manage_labs(client, headers, db):
    make_lab(db, "LAB-P5")
    db.commit()
    response = client.patch("/api/v1/labs/LAB-P5", json={"active": False}, headers=headers("lab"))
    assert response.status_code == 403


# Registering: one audit entry, none when refused ----------------------------------------------


def created(db, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    """The registrations of sampling sites (``site.create``) or labs (``lab.create``): an
    isolation site's registration is also ``site.create``, with another target type."""
    kind = action.split(".")[0]
    return list(
        db.execute(
            select(AuditEntry)
            .where(AuditEntry.action == action, AuditEntry.target_type == kind)
            .order_by(AuditEntry.seq)
        ).scalars()
    )


def site_body(**changes: Any) -> dict[str, Any]:
    return {
        "code": "SITE-NEW",
        "name": " 南关采样点 ",
        "region_code": NANGUAN_COMMUNITY,
        "teams": 3,
        "capacity_per_hour": 420,
        "grids": [NANGUAN_GRID_2, NANGUAN_GRID, NANGUAN_GRID_2],
        **changes,
    }


def lab_body(**changes: Any) -> dict[str, Any]:
    return {
        "code": "LAB-NEW",
        "name": "长春市第一检测实验室",
        "region_code": "220100",
        "daily_capacity": 80_000,
        **changes,
    }


def test_registering_a_site_writes_one_audit_entry_naming_who_and_what(client, headers, db, cast):
    response = client.post("/api/v1/sites", json=site_body(), headers=headers("commander"))
    assert response.status_code == 201, response.text
    (entry,) = created(db, "site.create")
    assert (entry.actor, entry.actor_id) == ("commander_in", cast.ids[("commander", "in")])
    assert (entry.target_id, entry.region_code) == (str(response.json()["id"]), NANGUAN_COMMUNITY)
    assert json.loads(entry.details) == {
        "code": "SITE-NEW",
        "name": "南关采样点",
        "region_code": NANGUAN_COMMUNITY,
        "capacity_per_hour": 420,
        "teams": 3,
        "grids": [NANGUAN_GRID, NANGUAN_GRID_2],
    }
    assert created(db, "lab.create") == []


def test_registering_a_lab_writes_one_audit_entry_naming_who_and_what(client, headers, db, cast):
    response = client.post("/api/v1/labs", json=lab_body(), headers=headers("commander"))
    assert response.status_code == 201, response.text
    (entry,) = created(db, "lab.create")
    assert (entry.actor, entry.actor_id) == ("commander_in", cast.ids[("commander", "in")])
    assert (entry.target_id, entry.region_code) == (str(response.json()["id"]), "220100")
    assert json.loads(entry.details) == {
        "code": "LAB-NEW",
        "name": "长春市第一检测实验室",
        "region_code": "220100",
        "daily_capacity": 80_000,
    }
    assert created(db, "site.create") == []


@pytest.mark.parametrize(
    ("role", "body", "status"),
    [
        ("commander", site_body(capacity_per_hour=0), 422),
        ("commander", site_body(grids=[CHANGYI_GRID]), 422),
        ("commander", site_body(code="S"), 422),
        ("commander", site_body(region_code="220202", grids=[]), 403),
        ("analyst", site_body(), 403),
        ("lab", site_body(), 403),
    ],
)
def test_a_refused_site_registration_writes_no_audit_entry(client, headers, db, role, body, status):
    response = client.post("/api/v1/sites", json=body, headers=headers(role))
    assert response.status_code == status, response.text
    assert db.execute(select(Site.id).where(Site.code == body["code"])).first() is None
    assert created(db, "site.create") == []


@pytest.mark.parametrize(
    ("role", "body", "status"),
    [
        ("commander", lab_body(daily_capacity=0), 422),
        ("commander", lab_body(daily_capacity=10**10), 422),
        ("commander", lab_body(name=" "), 422),
        ("commander", lab_body(region_code="229900"), 422),
        ("commander", lab_body(region_code="220200"), 403),
        ("analyst", lab_body(), 403),
        ("lab", lab_body(), 403),
    ],
)
def test_a_refused_lab_registration_writes_no_audit_entry(client, headers, db, role, body, status):
    response = client.post("/api/v1/labs", json=body, headers=headers(role))
    assert response.status_code == status, response.text
    assert db.execute(select(Lab.id).where(Lab.code == body["code"])).first() is None
    assert created(db, "lab.create") == []


def test_a_code_already_used_writes_no_second_audit_entry(client, headers, db):
    make_site(db, "SITE-NEW")
    make_lab(db, "LAB-NEW")
    db.commit()
    site = client.post("/api/v1/sites", json=site_body(), headers=headers("commander"))
    lab = client.post("/api/v1/labs", json=lab_body(), headers=headers("commander"))
    assert (site.status_code, lab.status_code) == (409, 409)
    assert [e.actor for e in created(db, "site.create")] == ["system"]
    assert [e.actor for e in created(db, "lab.create")] == ["system"]
