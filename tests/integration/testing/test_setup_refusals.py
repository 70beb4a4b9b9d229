"""Setting up a round, a sampling site and a lab: each refusal names its field and its reason,
and a refused set-up leaves nothing behind. Through the service, on both engines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bastion.audit.models import AuditEntry
from bastion.core.auth import system_principal
from bastion.core.errors import BastionError, Conflict, Forbidden, InvalidInput
from bastion.testing import service as testing_service
from bastion.testing.models import Lab, Round, Site, SiteGrid
from bastion.testing.schemas import LabCreate, RoundCreate, SiteCreate
from tests.support.world import (
    CHANGYI_GRID,
    MEIHEKOU_GRID,
    NANGUAN_COMMUNITY,
    NANGUAN_GRID,
    NANGUAN_GRID_2,
)

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)


def refusal(err: BastionError) -> list[tuple[str, str]]:
    return [(p.field, p.reason) for p in err.problems]


def count(db, model) -> int:  # type: ignore[no-untyped-def]
    return db.execute(select(func.count()).select_from(model)).scalar_one()


def registrations(db, kind: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    """The ``<kind>.create`` audit entries of sampling sites (``site``) or labs (``lab``)."""
    return list(
        db.execute(
            select(AuditEntry)
            .where(AuditEntry.action == f"{kind}.create", AuditEntry.target_type == kind)
            .order_by(AuditEntry.seq)
        ).scalars()
    )


# Rounds --------------------------------------------------------------------------------------


def round_data(**changes: Any) -> RoundCreate:
    data: dict[str, Any] = {
        "code": "R-SET-1",
        "name": "全员核酸",
        "region_code": "220100",
        "starts_at": START,
    }
    data.update(changes)
    return RoundCreate(**data)


def make_round(db, principal=None, **changes: Any) -> Round:  # type: ignore[no-untyped-def]
    return testing_service.create_round(
        db_session=db, principal=principal or system_principal(), data=round_data(**changes)
    )


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({"deadline_at": START}, [("deadline_at", "round.deadline_before_start")]),
        (
            {"deadline_at": START - timedelta(hours=1)},
            [("deadline_at", "round.deadline_before_start")],
        ),
        (
            {"starts_at": START.replace(tzinfo=None), "deadline_at": START + timedelta(hours=8)},
            [("starts_at", "field.needs_timezone")],
        ),
        (
            {"deadline_at": (START + timedelta(hours=8)).replace(tzinfo=None)},
            [("deadline_at", "field.needs_timezone")],
        ),
        ({"pool_policy": {"elsewhere": 30}}, [("pool_policy.elsewhere", "pool.bad_size")]),
        ({"pool_policy": {"elsewhere": 21}}, [("pool_policy.elsewhere", "pool.bad_size")]),
        ({"pool_policy": {"control": 8}}, [("pool_policy.control", "pool.bad_size")]),
        ({"pool_policy": {"lockdown": "many"}}, [("pool_policy.lockdown", "pool.bad_size")]),
        ({"pool_policy": {"lowrisk": 10}}, [("pool_policy.lowrisk", "pool.unknown_zone")]),
        ({"code": "R"}, [("code", "testing.bad_code")]),
        ({"code": "R SET 1"}, [("code", "testing.bad_code")]),
        ({"name": "  "}, [("name", "field.required")]),
        (
            {"code": "?", "name": "", "deadline_at": START},
            [
                ("code", "testing.bad_code"),
                ("name", "field.required"),
                ("deadline_at", "round.deadline_before_start"),
            ],
        ),
    ],
)
def test_a_round_refusal_names_each_bad_field(db, changes, problems):
    before = count(db, Round)
    with pytest.raises(InvalidInput) as refused:
        make_round(db, **changes)
    assert refusal(refused.value) == problems
    assert count(db, Round) == before


def test_a_round_of_20_to_a_tube_is_accepted_and_one_over_is_not(db):
    rnd = make_round(db, pool_policy={"elsewhere": 20})
    assert testing_service.policy_of(rnd).elsewhere == 20
    with pytest.raises(InvalidInput) as refused:
        make_round(db, code="R-SET-2", pool_policy={"elsewhere": 21})
    assert refusal(refused.value) == [("pool_policy.elsewhere", "pool.bad_size")]
    assert refused.value.problems[0].params["value"] == 21


def test_a_round_code_already_used_is_refused_naming_the_code(db):
    make_round(db)
    with pytest.raises(Conflict) as refused:
        make_round(db, name="另一轮")
    assert refused.value.key == "round.code_taken"
    assert refusal(refused.value) == [("code", "round.code_taken")]
    assert count(db, Round) == 1


def test_a_round_outside_the_users_subtree_is_forbidden(db, principal):
    with pytest.raises(Forbidden) as refused:
        make_round(db, principal("commander", "in"), region_code="220200")
    assert refused.value.key == "error.region_outside"
    assert count(db, Round) == 0


def test_a_round_needs_the_right_to_manage_rounds(db, principal):
    with pytest.raises(Forbidden):
        make_round(db, principal("lab", "in"))
    assert count(db, Round) == 0


# Sites ---------------------------------------------------------------------------------------


def site_data(**changes: Any) -> SiteCreate:
    data: dict[str, Any] = {
        "code": "SITE-SET-1",
        "name": "采样点",
        "region_code": NANGUAN_COMMUNITY,
        "capacity_per_hour": 300,
        "grids": [NANGUAN_GRID],
    }
    data.update(changes)
    return SiteCreate(**data)


def make_site(db, principal=None, **changes: Any) -> Site:  # type: ignore[no-untyped-def]
    return testing_service.create_site(
        db_session=db, principal=principal or system_principal(), data=site_data(**changes)
    )


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({"capacity_per_hour": 0}, [("capacity_per_hour", "field.must_be_positive")]),
        ({"capacity_per_hour": -10}, [("capacity_per_hour", "field.must_be_positive")]),
        ({"teams": 0}, [("teams", "field.must_be_positive")]),
        (
            {"opens_at": time(8, 0), "closes_at": time(8, 0)},
            [("closes_at", "site.closes_before_opening")],
        ),
        (
            {"opens_at": time(20, 0), "closes_at": time(7, 0)},
            [("closes_at", "site.closes_before_opening")],
        ),
        ({"code": "S"}, [("code", "testing.bad_code")]),
        ({"name": ""}, [("name", "field.required")]),
        ({"region_code": "229999"}, [("region_code", "error.region_unknown")]),
        ({"grids": ["220102001001999"]}, [("grids", "error.region_unknown")]),
        # Grids must lie in the site's region.
        ({"grids": [CHANGYI_GRID]}, [("grids", "site.grid_outside_region")]),
        (
            {"grids": [NANGUAN_GRID, MEIHEKOU_GRID]},
            [("grids", "site.grid_outside_region")],
        ),
        (
            {"capacity_per_hour": 0, "teams": 0, "grids": [CHANGYI_GRID]},
            [
                ("capacity_per_hour", "field.must_be_positive"),
                ("teams", "field.must_be_positive"),
                ("grids", "site.grid_outside_region"),
            ],
        ),
    ],
)
def test_a_site_refusal_names_each_bad_field(db, changes, problems):
    with pytest.raises(InvalidInput) as refused:
        make_site(db, **changes)
    assert refusal(refused.value) == problems
    assert (count(db, Site), count(db, SiteGrid)) == (0, 0)
    assert registrations(db, "site") == []


def test_a_grid_outside_the_sites_region_is_named_with_both_codes(db):
    with pytest.raises(InvalidInput) as refused:
        make_site(db, grids=[NANGUAN_GRID, CHANGYI_GRID])
    (problem,) = refused.value.problems
    assert problem.params == {"grid": CHANGYI_GRID, "region": NANGUAN_COMMUNITY}


@pytest.mark.parametrize(
    ("region_code", "grids"),
    [
        (NANGUAN_COMMUNITY, [NANGUAN_GRID, NANGUAN_GRID_2]),
        ("220102", [NANGUAN_GRID]),  # a district site serving one of its grids
        ("220100", [NANGUAN_GRID]),  # a city-wide site
        (MEIHEKOU_GRID[:12], [MEIHEKOU_GRID]),
        (NANGUAN_COMMUNITY, []),
    ],
)
def test_grids_inside_the_sites_region_are_accepted(db, region_code, grids):
    site = make_site(db, region_code=region_code, grids=grids)
    served = db.execute(select(SiteGrid.region_code).where(SiteGrid.site_id == site.id)).scalars()
    assert sorted(served) == sorted(grids)


def test_a_meihekou_grid_is_not_in_tonghua(db):
    # 220581 (Meihekou) sits under the province, not under Tonghua 220500, despite its prefix.
    with pytest.raises(InvalidInput) as refused:
        make_site(db, region_code="220500", grids=[MEIHEKOU_GRID])
    assert refusal(refused.value) == [("grids", "site.grid_outside_region")]


def test_a_site_code_already_used_is_refused_naming_the_code(db):
    make_site(db)
    with pytest.raises(Conflict) as refused:
        make_site(db, name="另一个")
    assert refused.value.key == "site.code_taken"
    assert refusal(refused.value) == [("code", "site.code_taken")]
    assert count(db, Site) == 1
    assert len(registrations(db, "site")) == 1


def test_a_site_or_grid_outside_the_users_subtree_is_forbidden(db, principal):
    commander = principal("commander", "in")
    with pytest.raises(Forbidden):
        make_site(db, commander, region_code=CHANGYI_GRID[:12], grids=[CHANGYI_GRID])
    assert count(db, Site) == 0
    assert registrations(db, "site") == []


def test_a_site_needs_the_right_to_manage_sites_and_a_refusal_is_not_audited(db, principal):
    with pytest.raises(Forbidden):
        make_site(db, principal("analyst", "in"))
    assert (count(db, Site), registrations(db, "site")) == (0, [])


def test_a_registered_site_is_audited_once_with_who_and_what(db, principal):
    commander = principal("commander", "in")
    site = make_site(db, commander, teams=2, grids=[NANGUAN_GRID_2, NANGUAN_GRID])
    (entry,) = registrations(db, "site")
    assert (entry.actor_id, entry.actor) == (commander.user_id, commander.username)
    assert (entry.target_id, entry.region_code) == (str(site.id), NANGUAN_COMMUNITY)
    assert json.loads(entry.details) == {
        "code": "SITE-SET-1",
        "name": "采样点",
        "region_code": NANGUAN_COMMUNITY,
        "capacity_per_hour": 300,
        "teams": 2,
        "grids": [NANGUAN_GRID, NANGUAN_GRID_2],
    }


# Labs ----------------------------------------------------------------------------------------


def lab_data(**changes: Any) -> LabCreate:
    data: dict[str, Any] = {
        "code": "LAB-SET-1",
        "name": "实验室",
        "region_code": "220100",
        "daily_capacity": 10_000,
    }
    data.update(changes)
    return LabCreate(**data)


def make_lab(db, principal=None, **changes: Any) -> Lab:  # type: ignore[no-untyped-def]
    return testing_service.create_lab(
        db_session=db, principal=principal or system_principal(), data=lab_data(**changes)
    )


@pytest.mark.parametrize(
    ("changes", "problems"),
    [
        ({"daily_capacity": 0}, [("daily_capacity", "field.must_be_positive")]),
        ({"daily_capacity": -1}, [("daily_capacity", "field.must_be_positive")]),
        ({"code": "L"}, [("code", "testing.bad_code")]),
        ({"code": "LAB/1"}, [("code", "testing.bad_code")]),
        ({"name": " "}, [("name", "field.required")]),
        ({"region_code": "229900"}, [("region_code", "error.region_unknown")]),
        (
            {"daily_capacity": 0, "name": ""},
            [("name", "field.required"), ("daily_capacity", "field.must_be_positive")],
        ),
    ],
)
def test_a_lab_refusal_names_each_bad_field(db, changes, problems):
    with pytest.raises(InvalidInput) as refused:
        make_lab(db, **changes)
    assert refusal(refused.value) == problems
    assert count(db, Lab) == 0
    assert registrations(db, "lab") == []


def test_a_lab_code_already_used_is_refused_naming_the_code(db):
    make_lab(db)
    with pytest.raises(Conflict) as refused:
        make_lab(db, daily_capacity=5)
    assert refused.value.key == "lab.code_taken"
    assert refusal(refused.value) == [("code", "lab.code_taken")]
    assert count(db, Lab) == 1
    assert len(registrations(db, "lab")) == 1


def test_a_lab_outside_the_users_subtree_is_forbidden(db, principal):
    with pytest.raises(Forbidden):
        make_lab(db, principal("commander", "in"), region_code="220200")
    assert count(db, Lab) == 0
    assert registrations(db, "lab") == []


def test_a_lab_needs_the_right_to_manage_labs_and_a_refusal_is_not_audited(db, principal):
    with pytest.raises(Forbidden):
        make_lab(db, principal("lab", "in"))
    assert (count(db, Lab), registrations(db, "lab")) == (0, [])


def test_a_registered_lab_is_audited_once_with_who_and_what(db, principal):
    commander = principal("commander", "in")
    lab = make_lab(db, commander, name=" 实验室 ")
    (entry,) = registrations(db, "lab")
    assert (entry.actor_id, entry.actor) == (commander.user_id, commander.username)
    assert (entry.target_id, entry.region_code) == (str(lab.id), "220100")
    assert json.loads(entry.details) == {
        "code": "LAB-SET-1",
        "name": "实验室",
        "region_code": "220100",
        "daily_capacity": 10_000,
    }


# Through the API: the refusals reach the caller with their fields ----------------------------


def test_the_api_names_the_refused_fields_of_a_site(client, headers, db):
    body = site_data(capacity_per_hour=0, grids=[CHANGYI_GRID]).model_dump(mode="json")
    response = client.post("/api/v1/sites", json=body, headers=headers("commander"))
    assert response.status_code == 422, response.text
    fields = [(e["field"], e["code"]) for e in response.json()["errors"]]
    assert fields == [
        ("capacity_per_hour", "field.must_be_positive"),
        ("grids", "site.grid_outside_region"),
    ]
