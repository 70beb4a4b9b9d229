"""Registering, reading, unmasking, looking up, searching and updating persons through the API."""

from __future__ import annotations

from datetime import date

import pytest

from bastion.core.auth import ROLE_PERMISSIONS, ROLES, Perm
from bastion.registry.idnumber import check_char, make_resident_id
from tests.integration.registry.people import (
    audit_entries,
    footprint,
    new_id_number,
    payload,
    register,
    register_outside,
)
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID, NANGUAN_GRID_2

PERSONS = "/api/v1/persons"


def test_it_registers_a_person_and_answers_with_masked_fields(client, headers, db):
    body = payload(name="欧阳娜娜", phone="13812345678", special_groups=["独居", "veteran"])
    response = client.post(PERSONS, json=body, headers=headers("grid_worker"))
    assert response.status_code == 201, response.text
    person = response.json()
    assert person["name"] == "欧阳**"
    number = body["id_number"]
    assert person["id_number"] == number[0] + "*" * 16 + number[-1]
    assert person["phone"] == "138****5678"
    assert person["birth_date"] is None
    assert person["masked"] is True
    assert person["sex"] == "F"
    assert person["special_groups"] == ["living_alone", "veteran"]
    assert number not in response.text
    assert "娜娜" not in response.text
    assert [e.target_id for e in audit_entries(db, "person.create")] == [str(person["id"])]


def _wrong_check_char(number: str) -> str:
    right = check_char(number[:17])
    return number[:17] + ("1" if right != "1" else "2")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b | {"id_number": _wrong_check_char(b["id_number"])}, "id_number"),
        (lambda b: b | {"id_number": "11010519990231002X"}, "id_number"),
        (lambda b: b | {"id_number": b["id_number"][:-1]}, "id_number"),
        (lambda b: b | {"birth_date": "2031-01-01"}, "birth_date"),
        (lambda b: b | {"birth_date": "not a date"}, "birth_date"),
        (lambda b: b | {"sex": "M"}, "sex"),
        (lambda b: b | {"region_code": "229999"}, "region_code"),
        (lambda b: b | {"region_code": f"{NANGUAN_GRID}\x00"}, "region_code"),
        (lambda b: b | {"phone": "12345"}, "phone"),
        (lambda b: b | {"name": ""}, "name"),
        (lambda b: b | {"special_groups": ["pilot"]}, "special_groups"),
        # Wrong JSON types: pydantic refuses them before the service sees them.
        (lambda b: b | {"name": 123}, "name"),
        (lambda b: b | {"special_groups": "独居"}, "special_groups"),
        (lambda b: b | {"phone": 13812345678}, "phone"),
        (lambda b: b | {"region_code": None}, "region_code"),
        (lambda b: {k: v for k, v in b.items() if k != "id_number"}, "id_number"),
    ],
)
def test_it_refuses_bad_input_with_422_naming_the_field_and_writes_nothing(
    client, headers, db, change, field
):
    before = footprint(db)
    response = client.post(PERSONS, json=change(payload()), headers=headers("grid_worker"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in response.json()["errors"]]
    assert all(e["reason"] for e in response.json()["errors"])
    assert footprint(db) == before


@pytest.mark.parametrize(
    "raw",
    ['{"name": "王芳", "id_number": '.encode(), b"not json at all", b"", b"[1, 2]"],
)
def test_it_refuses_a_malformed_json_body_with_422(client, headers, db, raw):
    before = footprint(db)
    response = client.post(
        PERSONS,
        content=raw,
        headers=headers("grid_worker") | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["body"]
    assert footprint(db) == before


def test_it_refuses_a_region_outside_the_users_subtree_with_403(client, headers, db):
    before = footprint(db)
    response = client.post(
        PERSONS, json=payload(region_code=CHANGYI_GRID), headers=headers("grid_worker")
    )
    assert response.status_code == 403
    assert response.json()["code"] == "error.region_outside"
    assert footprint(db) == before


def test_a_grid_worker_may_only_register_in_their_own_grid(client, headers, db):
    h = headers("grid_worker", "grid_worker_grid")
    assert client.post(PERSONS, json=payload(), headers=h).status_code == 201
    refused = client.post(PERSONS, json=payload(region_code=NANGUAN_GRID_2), headers=h)
    assert refused.status_code == 403


def test_it_refuses_a_person_registered_twice_with_409(client, headers, db):
    first = payload(household="H-first")
    assert client.post(PERSONS, json=first, headers=headers("grid_worker")).status_code == 201
    before = footprint(db)
    # The same number typed differently is the same person; the new household is not created.
    again = payload(id_number=f" {first['id_number'].lower()} ", household="H-second")
    response = client.post(PERSONS, json=again, headers=headers("investigator"))
    assert response.status_code == 409
    assert response.json()["code"] == "person.already_registered"
    assert footprint(db) == before


def test_people_of_one_household_share_it(client, headers, db):
    h = headers("grid_worker")
    a = client.post(PERSONS, json=payload(household="H-7"), headers=h).json()
    b = client.post(PERSONS, json=payload(household="H-7"), headers=h).json()
    c = client.post(PERSONS, json=payload(household="H-7", region_code=NANGUAN_GRID_2), headers=h)
    assert a["household_id"] == b["household_id"] is not None
    assert c.json()["household_id"] != a["household_id"]


# Reading and unmasking -----------------------------------------------------------------------


def test_a_read_is_masked_by_default(client, headers, db):
    person = register(db, name="张三丰", phone="13912345678")
    response = client.get(f"{PERSONS}/{person.id}", headers=headers("sampler"))
    assert response.status_code == 200
    assert response.json()["name"] == "张**"
    assert response.json()["phone"] == "139****5678"
    assert response.json()["birth_date"] is None
    assert audit_entries(db, "person.unmask") == []


READERS = [r for r in ROLES if Perm.registry_read in ROLE_PERMISSIONS[r]]


@pytest.mark.parametrize("role", READERS)
def test_unmasking_shows_full_values_only_to_roles_that_may_and_is_audited_each_time(
    client, headers, db, role
):
    number = new_id_number(born=date(1985, 6, 15))
    person = register(db, name="张三丰", id_number=number, phone="13912345678")
    url = f"{PERSONS}/{person.id}?unmask=true"
    first = client.get(url, headers=headers(role))
    second = client.get(url, headers=headers(role))
    entries = audit_entries(db, "person.unmask")
    if Perm.personal_unmask in ROLE_PERMISSIONS[role]:
        assert first.status_code == second.status_code == 200
        body = first.json()
        assert body["name"] == "张三丰"
        assert body["id_number"] == number
        assert body["phone"] == "13912345678"
        assert body["birth_date"] == "1985-06-15"
        assert body["masked"] is False
        assert len(entries) == 2
        assert {e.target_id for e in entries} == {str(person.id)}
        assert {e.actor for e in entries} == {f"{role}_in"}
    else:
        assert first.status_code == second.status_code == 403
        assert number not in first.text
        assert "三丰" not in first.text
        assert entries == []


def test_a_person_outside_the_users_region_is_not_found(client, headers, db):
    outsider = register_outside(db)
    assert client.get(f"{PERSONS}/{outsider.id}", headers=headers("investigator")).status_code == (
        404
    )
    assert client.get(f"{PERSONS}/{outsider.id}", headers=headers("investigator", "out")).json()[
        "region_code"
    ] == (CHANGYI_GRID)


# Lookup by ID number ---------------------------------------------------------------------------


def test_a_lookup_by_id_number_finds_the_person_masked_and_is_audited(client, headers, db):
    number = new_id_number()
    person = register(db, id_number=number)
    typed = number[:6] + " " + number[6:].lower()
    response = client.post(
        f"{PERSONS}/lookup", json={"id_number": typed}, headers=headers("hotline")
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == person.id
    assert response.json()["id_number"] != number
    entries = audit_entries(db, "person.lookup")
    assert [(e.actor, e.target_id) for e in entries] == [("hotline_in", str(person.id))]


def test_a_lookup_does_not_find_a_person_outside_the_users_region_but_is_audited(
    client, headers, db
):
    number = new_id_number(region="220202")
    register_outside(db, id_number=number)
    response = client.post(
        f"{PERSONS}/lookup", json={"id_number": number}, headers=headers("hotline")
    )
    assert response.status_code == 404
    assert number not in response.text
    entries = audit_entries(db, "person.lookup")
    assert len(entries) == 1
    assert '"found": false' in entries[0].details
    outside = client.post(
        f"{PERSONS}/lookup", json={"id_number": number}, headers=headers("hotline", "out")
    )
    assert outside.status_code == 200


def test_a_lookup_of_an_unknown_number_is_404_and_of_nothing_is_422(client, headers, db):
    h = headers("hotline")
    assert (
        client.post(f"{PERSONS}/lookup", json={"id_number": new_id_number()}, headers=h).status_code
        == 404
    )
    blank = client.post(f"{PERSONS}/lookup", json={"id_number": "  "}, headers=h)
    assert blank.status_code == 422
    assert blank.json()["errors"][0]["field"] == "id_number"


# Search ----------------------------------------------------------------------------------------


@pytest.fixture
def neighbourhood(db):
    """Three people in Nanguan, one in its second grid, one namesake in Jilin City."""
    return {
        "wang_fang": register(db, name="王芳", special_groups=["bedridden"]),
        "wang_xm": register(db, name="王小明", special_groups=["独居", "低保"]),
        "li_si": register(db, name="李四"),
        "wang_2": register(db, name="王五", region_code=NANGUAN_GRID_2),
        "wang_out": register_outside(db, name="王六", special_groups=["bedridden"]),
        "percent": register(db, name="%王"),
    }


def _search(client, h, **params):
    return client.get(PERSONS, params=params, headers=h)


def test_search_by_name_prefix_stays_within_the_region(client, headers, neighbourhood):
    h = headers("sampler")
    city = _search(client, h, region="220100", name="王")
    assert city.status_code == 200
    assert city.json()["total"] == 3
    assert {p["name"] for p in city.json()["items"]} == {"王*", "王**"}
    grid = _search(client, h, region=NANGUAN_GRID, name="王")
    assert {p["id"] for p in grid.json()["items"]} == {
        neighbourhood["wang_fang"].id,
        neighbourhood["wang_xm"].id,
    }
    literal = _search(client, h, region="220100", name="%")
    assert [p["id"] for p in literal.json()["items"]] == [neighbourhood["percent"].id]


def test_search_by_special_group(client, headers, neighbourhood):
    h = headers("supply")
    bedridden = _search(client, h, region="220100", special_group="bedridden")
    assert [p["id"] for p in bedridden.json()["items"]] == [neighbourhood["wang_fang"].id]
    low_income = _search(client, h, region="220100", special_group="low_income")
    assert [p["id"] for p in low_income.json()["items"]] == [neighbourhood["wang_xm"].id]
    unknown = _search(client, h, region="220100", special_group="astronaut")
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "special_group"


def test_search_pages_through_the_results(client, headers, neighbourhood):
    h = headers("sampler")
    seen = []
    for offset in range(4):
        page = _search(client, h, region="220100", limit=1, offset=offset).json()
        assert page["total"] == 5
        assert page["limit"] == 1
        seen += [p["id"] for p in page["items"]]
    assert len(seen) == len(set(seen)) == 4
    assert _search(client, h, region="220100", limit=500).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 100_000_001}, "offset"),
        ({"offset": 99999999999999999999}, "offset"),
        ({"limit": "ten"}, "limit"),
        ({"region": None}, "region"),
    ],
)
def test_search_refuses_bad_paging_naming_the_parameter(client, headers, params, field):
    query = {"region": "220100"} | params
    query = {k: v for k, v in query.items() if v is not None}
    response = client.get(PERSONS, params=query, headers=headers("sampler"))
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_search_refuses_a_region_outside_the_user_and_an_unknown_one(client, headers):
    h = headers("sampler")
    assert _search(client, h, region="220200").status_code == 403
    assert _search(client, h, region="229999").status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"region": "220100\x00"},
        {"region": "220100", "name": "王\x00"},
        {"region": "220100", "name": "王\x07"},
        {"region": "220100", "special_group": "bedridden\x00"},
    ],
)
def test_search_refuses_a_control_character_naming_the_parameter(client, headers, params):
    response = _search(client, headers("sampler"), **params)
    assert response.status_code == 422, response.text
    [spoilt] = [k for k, v in params.items() if not v.isprintable()]
    assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
        (spoilt, "field.control_chars")
    ]


def test_search_by_a_name_written_with_a_zero_width_non_joiner_is_answered(client, headers):
    # Persian and Indic names are written with format characters such as the ZWNJ (U+200C):
    # a search by such a name is answered, never refused as a control character.
    response = _search(client, headers("sampler"), region="220100", name="علی\u200cرضا")
    assert response.status_code == 200, response.text
    assert response.json()["total"] == 0


# Update ----------------------------------------------------------------------------------------


def test_an_update_changes_the_fields_given_and_is_audited(client, headers, db):
    person = register(db, phone="13812345678", address="旧地址")
    response = client.patch(
        f"{PERSONS}/{person.id}",
        json={"phone": "0431-88888888", "address": "新地址", "special_groups": ["卧床"]},
        headers=headers("investigator"),
    )
    assert response.status_code == 200, response.text
    db.expire_all()
    assert (person.phone, person.address, person.special_groups) == ("0431-88888888", "新地址", 2)
    entries = audit_entries(db, "person.update")
    assert len(entries) == 1
    assert '"fields": ["address", "phone", "special_groups"]' in entries[0].details


def test_an_update_may_clear_the_phone(client, headers, db):
    person = register(db, phone="13812345678")
    response = client.patch(
        f"{PERSONS}/{person.id}", json={"phone": None}, headers=headers("grid_worker")
    )
    assert response.status_code == 200
    db.expire_all()
    assert person.phone is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "12"}, "phone"),
        ({"name": ""}, "name"),
        ({"region_code": "229999"}, "region_code"),
        ({"region_code": f"{NANGUAN_GRID}\x00"}, "region_code"),
        ({"special_groups": ["pilot"]}, "special_groups"),
        ({"name": ["王"]}, "name"),
    ],
)
def test_a_bad_update_is_refused_naming_the_field_and_changes_nothing(
    client, headers, db, body, field
):
    person = register(db, name="王芳", phone="13812345678")
    before = footprint(db)
    response = client.patch(f"{PERSONS}/{person.id}", json=body, headers=headers("grid_worker"))
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]
    db.expire_all()
    assert (person.name, person.phone) == ("王芳", "13812345678")
    assert footprint(db) == before


def test_an_update_may_not_move_a_person_out_of_the_users_region(client, headers, db):
    person = register(db)
    response = client.patch(
        f"{PERSONS}/{person.id}", json={"region_code": CHANGYI_GRID}, headers=headers("grid_worker")
    )
    assert response.status_code == 403
    db.expire_all()
    assert person.region_code == NANGUAN_GRID


def test_an_update_of_a_person_outside_the_users_region_is_not_found(client, headers, db):
    outsider = register_outside(db, phone="13812345678")
    response = client.patch(
        f"{PERSONS}/{outsider.id}", json={"phone": "13900000000"}, headers=headers("grid_worker")
    )
    assert response.status_code == 404
    db.expire_all()
    assert outsider.phone == "13812345678"


def test_the_id_number_is_not_changed_by_an_update(client, headers, db):
    number = make_resident_id("220102", date(1990, 5, 5), 124)
    person = register(db, id_number=number)
    other = new_id_number()
    client.patch(f"{PERSONS}/{person.id}", json={"id_number": other}, headers=headers("admin"))
    unmasked = client.get(f"{PERSONS}/{person.id}?unmask=true", headers=headers("admin")).json()
    assert unmasked["id_number"] == number


@pytest.mark.parametrize("person_id", ["0", "-1", str(2**63), "99999999999999999999", "1.5"])
@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_an_impossible_person_id_is_refused_naming_it_never_a_500(
    client, headers, method, person_id
):
    response = client.request(method, f"{PERSONS}/{person_id}", json={}, headers=headers("admin"))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["person_id"]


def test_the_largest_possible_person_id_is_simply_not_found(client, headers):
    assert client.get(f"{PERSONS}/{2**63 - 1}", headers=headers("admin")).status_code == 404
