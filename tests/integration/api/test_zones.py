"""Zones: designate, list what is in force on a date, lift, keep the history, refuse the wrong."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bastion.core import clock
from bastion.core.auth import Principal, system_principal
from bastion.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from bastion.regions import service as region_service
from tests.integration.registry.people import audit_entries
from tests.support.world import CHANGYI_GRID, MEIHEKOU_GRID, NANGUAN_GRID, NANGUAN_GRID_2

ZONES = "/api/v1/zones"


def zone_body(**overrides):
    body = {
        "region_code": NANGUAN_GRID,
        "kind": "lockdown",
        "starts_on": "2022-03-12",
        "reason": "两例确诊，3号楼",
    }
    body.update(overrides)
    return body


def in_force(client, h, on: str) -> list[dict]:
    response = client.get(ZONES, params={"on": on}, headers=h)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_commander_designates_a_zone_in_force_from_its_start(client, headers, db):
    h = headers("commander")
    response = client.post(ZONES, json=zone_body(), headers=h)
    assert response.status_code == 201, response.text
    zone = response.json()
    assert (zone["kind"], zone["starts_on"], zone["ends_on"]) == ("lockdown", "2022-03-12", None)
    assert in_force(client, h, "2022-03-11") == []
    assert [z["id"] for z in in_force(client, h, "2022-03-12")] == [zone["id"]]
    assert [z["id"] for z in in_force(client, h, "2023-01-01")] == [zone["id"]]
    [entry] = audit_entries(db, "zone.designate")
    assert (entry.actor, entry.target_id, entry.region_code) == (
        "commander_in",
        str(zone["id"]),
        NANGUAN_GRID,
    )


def test_lifting_ends_a_zone_and_keeps_its_history(client, headers, db):
    h = headers("commander")
    zone = client.post(ZONES, json=zone_body(), headers=h).json()
    lifted = client.post(f"{ZONES}/{zone['id']}/lift", json={"ends_on": "2022-03-20"}, headers=h)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["ends_on"] == "2022-03-20"
    assert [z["id"] for z in in_force(client, h, "2022-03-15")] == [zone["id"]]
    assert [z["id"] for z in in_force(client, h, "2022-03-20")] == [zone["id"]]
    assert in_force(client, h, "2022-03-21") == []
    # Once lifted, the region may be designated again; both stay on record.
    control = client.post(
        ZONES, json=zone_body(kind="control", starts_on="2022-03-21"), headers=h
    ).json()
    assert [z["kind"] for z in in_force(client, h, "2022-03-15")] == ["lockdown"]
    assert [z["id"] for z in in_force(client, h, "2022-03-25")] == [control["id"]]
    assert len(audit_entries(db, "zone.lift")) == 1


def test_the_list_defaults_to_today_in_local_time(client, headers):
    h = headers("commander")
    client.post(ZONES, json=zone_body(starts_on="2022-03-12"), headers=h)
    # 16:30 UTC on the 11th is already the 12th in Changchun.
    with clock.frozen(datetime(2022, 3, 11, 16, 30, tzinfo=UTC)):
        assert len(client.get(ZONES, headers=h).json()) == 1
    with clock.frozen(datetime(2022, 3, 11, 15, 30, tzinfo=UTC)):
        assert client.get(ZONES, headers=h).json() == []


def test_the_list_holds_only_the_callers_subtree(client, headers, db):
    region_service.designate_zone(
        db_session=db,
        principal=system_principal(),
        region_code=CHANGYI_GRID,
        kind="control",
        starts_on=date(2022, 3, 1),
        reason="Jilin City",
    )
    assert in_force(client, headers("sampler"), "2022-03-12") == []
    assert len(in_force(client, headers("sampler", "out"), "2022-03-12")) == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (zone_body(kind="quarantine"), 422, "kind"),
        (zone_body(kind=""), 422, "kind"),
        (zone_body(reason="   "), 422, "reason"),
        (zone_body(starts_on="2022-02-30"), 422, "starts_on"),
        (zone_body(starts_on=None), 422, "starts_on"),
        ({k: v for k, v in zone_body().items() if k != "reason"}, 422, "reason"),
        (zone_body(region_code=f"{NANGUAN_GRID}\x00"), 422, "region_code"),
        (zone_body(kind="lockdown\x00"), 422, "kind"),
        (zone_body(reason="两例确诊\x00"), 422, "reason"),
        (zone_body(reason="两例确诊\x1b[2J"), 422, "reason"),
    ],
)
def test_a_bad_designation_is_refused_naming_the_field(client, headers, db, body, status, field):
    response = client.post(ZONES, json=body, headers=headers("commander"))
    assert response.status_code == status
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert in_force(client, headers("commander"), "2022-03-15") == []


def test_a_reason_keeps_its_line_breaks_and_tabs(client, headers, db):
    reason = "两例确诊：\n\t3号楼\r\n\t5号楼"
    response = client.post(ZONES, json=zone_body(reason=reason), headers=headers("commander"))
    assert response.status_code == 201, response.text
    assert response.json()["reason"] == reason
    [zone] = in_force(client, headers("commander"), "2022-03-15")
    assert zone["reason"] == reason


@pytest.mark.parametrize(
    "path", ["/api/v1/regions/220100%00", "/api/v1/regions/220100%00/children"]
)
def test_a_control_character_in_a_region_code_is_refused_naming_it(client, headers, path):
    response = client.get(path, headers=headers("commander"))
    assert response.status_code == 422, response.text
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
        ("code", "field.control_chars")
    ]


def test_a_region_outside_the_users_subtree_is_refused(client, headers):
    response = client.post(
        ZONES, json=zone_body(region_code=CHANGYI_GRID), headers=headers("commander")
    )
    assert response.status_code == 403
    assert in_force(client, headers("commander", "out"), "2022-03-15") == []


def test_an_unknown_region_is_not_found(client, headers):
    response = client.post(
        ZONES, json=zone_body(region_code="220102009"), headers=headers("commander")
    )
    assert response.status_code == 404


def test_a_second_open_zone_on_a_region_is_refused(client, headers):
    h = headers("commander")
    assert client.post(ZONES, json=zone_body(), headers=h).status_code == 201
    again = client.post(ZONES, json=zone_body(kind="control", starts_on="2022-03-14"), headers=h)
    assert again.status_code == 409
    assert again.json()["code"] == "zone.already_open"
    # Another region, even the neighbouring grid, is its own matter.
    assert client.post(
        ZONES, json=zone_body(region_code=NANGUAN_GRID_2), headers=h
    ).status_code == (201)


def test_a_zone_cannot_be_lifted_twice_or_before_it_started(client, headers):
    h = headers("commander")
    zone = client.post(ZONES, json=zone_body(), headers=h).json()
    early = client.post(f"{ZONES}/{zone['id']}/lift", json={"ends_on": "2022-03-11"}, headers=h)
    assert early.status_code == 422
    assert [e["field"] for e in early.json()["errors"]] == ["ends_on"]
    same_day = client.post(f"{ZONES}/{zone['id']}/lift", json={"ends_on": "2022-03-12"}, headers=h)
    assert same_day.status_code == 200
    twice = client.post(f"{ZONES}/{zone['id']}/lift", json={"ends_on": "2022-03-20"}, headers=h)
    assert twice.status_code == 409
    assert twice.json()["code"] == "zone.already_lifted"


def test_a_zone_outside_the_users_subtree_cannot_be_lifted(client, headers, db):
    outside = region_service.designate_zone(
        db_session=db,
        principal=system_principal(),
        region_code=CHANGYI_GRID,
        kind="control",
        starts_on=date(2022, 3, 1),
        reason="Jilin City",
    )
    h = headers("commander")
    response = client.post(f"{ZONES}/{outside.id}/lift", json={"ends_on": "2022-03-20"}, headers=h)
    assert response.status_code == 404
    assert (
        client.post(f"{ZONES}/999999/lift", json={"ends_on": "2022-03-20"}, headers=h).status_code
        == 404
    )
    db.expire_all()
    assert outside.ends_on is None


def test_only_zone_writers_designate(client, headers):
    response = client.post(ZONES, json=zone_body(), headers=headers("analyst"))
    assert response.status_code == 403
    assert response.json()["code"] == "error.permission_missing"


def test_the_service_refuses_the_same_things(db, principal):
    commander = principal("commander")

    def designate(**overrides):
        values = {
            "region_code": NANGUAN_GRID,
            "kind": "lockdown",
            "starts_on": date(2022, 3, 12),
            "reason": "cluster",
        } | overrides
        return region_service.designate_zone(db_session=db, principal=commander, **values)

    with pytest.raises(InvalidInput):
        designate(kind="red")
    with pytest.raises(Forbidden):
        designate(region_code=CHANGYI_GRID)
    with pytest.raises(NotFound):
        designate(region_code="229999")
    zone = designate()
    with pytest.raises(Conflict):
        designate()
    with pytest.raises(InvalidInput):
        region_service.lift_zone(
            db_session=db, principal=commander, zone_id=zone.id, ends_on=date(2022, 3, 1)
        )
    region_service.lift_zone(
        db_session=db, principal=commander, zone_id=zone.id, ends_on=date(2022, 3, 20)
    )
    with pytest.raises(Conflict):
        region_service.lift_zone(
            db_session=db, principal=commander, zone_id=zone.id, ends_on=date(2022, 3, 21)
        )


def test_tonghua_does_not_see_the_zones_of_meihekou(db):
    region_service.designate_zone(
        db_session=db,
        principal=system_principal(),
        region_code=MEIHEKOU_GRID,
        kind="lockdown",
        starts_on=date(2022, 3, 1),
        reason="Meihekou",
    )
    tonghua = Principal(
        user_id=None,
        username="tonghua",
        role="commander",
        region_code="220500",
        scope=region_service.scope_of(db_session=db, code="220500"),
    )
    assert (
        region_service.zones_in_force(db_session=db, principal=tonghua, on=date(2022, 3, 2)) == []
    )
    with pytest.raises(Forbidden):
        region_service.designate_zone(
            db_session=db,
            principal=tonghua,
            region_code="220581",
            kind="control",
            starts_on=date(2022, 3, 2),
            reason="not theirs",
        )


@pytest.mark.parametrize("zone_id", ["0", str(2**63), "99999999999999999999"])
def test_an_impossible_zone_id_is_refused_naming_it_never_a_500(client, headers, zone_id):
    response = client.post(
        f"{ZONES}/{zone_id}/lift", json={"ends_on": "2022-03-20"}, headers=headers("commander")
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["zone_id"]
