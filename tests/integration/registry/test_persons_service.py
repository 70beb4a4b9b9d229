"""The registry service itself: what it stores, what it refuses, whom it shows what."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bastion.core import crypto
from bastion.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from bastion.regions import service as region_service
from bastion.registry import service as registry_service
from bastion.registry.schemas import PersonCreate
from tests.integration.registry.people import (
    audit_entries,
    footprint,
    new_id_number,
    payload,
    register,
    register_outside,
)
from tests.support.world import CHANGYI_GRID, MEIHEKOU_GRID


def test_the_id_number_is_stored_encrypted_hashed_and_masked(db, principal):
    number = new_id_number()
    person = register(db, principal("grid_worker"), id_number=number)
    assert number.encode() not in person.id_cipher
    assert crypto.decrypt(person.id_cipher) == number
    assert person.id_hash == crypto.lookup_hash(number)
    assert person.id_masked == number[0] + "*" * 16 + number[-1]
    assert len(person.token) == 24
    assert number not in person.token


def test_create_reports_every_bad_field_at_once(db, principal):
    before = footprint(db)
    with pytest.raises(InvalidInput) as caught:
        registry_service.create(
            db_session=db,
            principal=principal("grid_worker"),
            data=PersonCreate(**payload(name="", id_number="123", phone="x", region_code="229999")),
        )
    assert {p.field for p in caught.value.problems} == {
        "name",
        "id_number",
        "phone",
        "region_code",
    }
    assert footprint(db) == before


@pytest.mark.parametrize(
    ("role", "region", "error"),
    [
        ("grid_worker", CHANGYI_GRID, Forbidden),  # outside the user's region
        ("sampler", None, Forbidden),  # no registry.write
        ("resident", None, Forbidden),
    ],
)
def test_create_refuses_the_wrong_user_or_region(db, principal, role, region, error):
    data = PersonCreate(**payload(**({"region_code": region} if region else {})))
    before = footprint(db)
    with pytest.raises(error):
        registry_service.create(db_session=db, principal=principal(role), data=data)
    assert footprint(db) == before


def test_create_refuses_a_number_already_registered_anywhere(db, principal):
    number = new_id_number(region="220202")
    register_outside(db, id_number=number)
    with pytest.raises(Conflict):
        register(db, principal("grid_worker"), id_number=number)


def test_an_unmasked_read_needs_the_permission_and_is_audited(db, principal):
    person = register(db, name="张三丰")
    with pytest.raises(Forbidden):
        registry_service.read(
            db_session=db, principal=principal("sampler"), person_id=person.id, unmask=True
        )
    assert audit_entries(db, "person.unmask") == []
    view = registry_service.read(
        db_session=db, principal=principal("isolation"), person_id=person.id, unmask=True
    )
    assert (view.name, view.masked) == ("张三丰", False)
    assert [e.actor for e in audit_entries(db, "person.unmask")] == ["isolation_in"]


def test_a_resident_reads_only_their_own_record(db, principal):
    own, other = register(db), register(db)
    resident = replace(principal("resident"), person_id=own.id)
    assert registry_service.get(db_session=db, principal=resident, person_id=own.id) is own
    with pytest.raises(NotFound):
        registry_service.get(db_session=db, principal=resident, person_id=other.id)
    with pytest.raises(NotFound):
        registry_service.get(db_session=db, principal=principal("resident"), person_id=own.id)


def test_a_lookup_outside_the_region_finds_nothing_and_says_so_in_the_audit(db, principal):
    number = new_id_number(region="220202")
    register_outside(db, id_number=number)
    found = registry_service.find_by_id_number(
        db_session=db, principal=principal("hotline"), id_number=number
    )
    assert found is None
    [entry] = audit_entries(db, "person.lookup")
    assert json.loads(entry.details) == {"found": False}
    assert entry.actor == "hotline_in"


@pytest.mark.parametrize(
    ("offset", "limit", "field"),
    [(0, 0, "limit"), (0, 501, "limit"), (-1, 10, "offset"), (10**20, 10, "offset")],
)
def test_search_refuses_pages_out_of_range(db, principal, offset, limit, field):
    with pytest.raises(InvalidInput) as caught:
        registry_service.search(
            db_session=db,
            principal=principal("sampler"),
            region_code="220100",
            offset=offset,
            limit=limit,
        )
    assert caught.value.problems[0].field == field


def test_a_tonghua_search_leaves_out_meihekou(db, principal):
    register(db, name="梅河口人", region_code=MEIHEKOU_GRID)
    tonghua = replace(
        principal("sampler"),
        region_code="220500",
        scope=region_service.scope_of(db_session=db, code="220500"),
    )
    rows, total = registry_service.search(db_session=db, principal=tonghua, region_code="220500")
    assert (list(rows), total) == ([], 0)
    with pytest.raises(Forbidden):
        registry_service.search(db_session=db, principal=tonghua, region_code="220581")
