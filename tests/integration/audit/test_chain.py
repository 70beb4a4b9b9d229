"""The audit log: a hash chain that verifies, that the database will not let anyone rewrite,
and that never holds the personal data it protects."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from bastion.accounts import service as account_service
from bastion.audit import service as audit_service
from bastion.audit.models import AuditEntry, AuditHead
from bastion.core.auth import system_principal
from bastion.regions import service as region_service
from bastion.registry import service as registry_service
from tests.integration.registry.people import new_id_number, register
from tests.support.world import NANGUAN_GRID


def a_day_of_work(db, principal) -> dict[str, str]:
    """Several audited acts by several people; returns the personal data they touched."""
    number = new_id_number()
    person = register(db, principal("grid_worker"), name="欧阳娜娜", id_number=number)
    registry_service.read(
        db_session=db, principal=principal("investigator"), person_id=person.id, unmask=True
    )
    registry_service.find_by_id_number(
        db_session=db, principal=principal("hotline"), id_number=number
    )
    registry_service.export_csv(db_session=db, principal=principal("analyst"), region_code="220100")
    region_service.designate_zone(
        db_session=db,
        principal=principal("commander"),
        region_code=NANGUAN_GRID,
        kind="lockdown",
        starts_on=date(2022, 3, 12),
        reason="cluster in building 3",
    )
    account_service.create(
        db_session=db,
        principal=system_principal(),
        username="audited.user",
        password="long-enough-1",
        role="sampler",
        region_code="220100",
    )
    return {"number": number, "name": "欧阳娜娜"}


def test_the_chain_verifies_after_a_series_of_acts(db, principal):
    a_day_of_work(db, principal)
    report = audit_service.verify(db_session=db)
    assert report.ok, report.problems
    entries = db.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
    assert report.entries == len(entries) == 6
    assert [e.action for e in entries] == [
        "person.create",
        "person.unmask",
        "person.lookup",
        "registry.export",
        "zone.designate",
        "user.create",
    ]
    assert [e.seq for e in entries] == list(range(1, 7))
    assert entries[0].prev_hash == audit_service.GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    assert report.head_hash == entries[-1].hash == db.get(AuditHead, 1).last_hash


def test_entries_name_the_actor_but_never_hold_the_personal_data(db, principal):
    secrets = a_day_of_work(db, principal)
    for entry in db.execute(select(AuditEntry)).scalars():
        assert entry.actor
        for secret in secrets.values():
            assert secret not in entry.details
            assert secret not in entry.target_id


def test_an_empty_log_verifies(db):
    report = audit_service.verify(db_session=db)
    assert report.ok
    assert report.entries == 0


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEntry).where(AuditEntry.seq == 1).values(details="{}"),
        update(AuditEntry).values(actor="nobody"),
        delete(AuditEntry).where(AuditEntry.seq == 1),
        delete(AuditEntry),
    ],
    ids=["update-one", "update-all", "delete-one", "delete-all"],
)
def test_the_database_refuses_to_update_or_delete_audit_entries(db, principal, statement):
    a_day_of_work(db, principal)
    db.flush()
    with pytest.raises(DBAPIError, match="append-only"), db.begin_nested():
        db.execute(statement)
    assert audit_service.verify(db_session=db).ok


def test_the_triggers_are_in_place(db):
    if db.get_bind().dialect.name == "postgresql":
        names = db.execute(
            text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass")
        ).scalars()
        assert "audit_log_no_change" in set(names)
    else:
        names = db.execute(
            text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")
        ).scalars()
        assert {"audit_log_no_update", "audit_log_no_delete"} <= set(names)


def test_verification_through_the_api_needs_the_audit_permission(client, headers, db, principal):
    a_day_of_work(db, principal)
    db.commit()
    response = client.get("/api/v1/audit/verify", headers=headers("commander"))
    assert response.status_code == 200
    assert response.json()["ok"] is True
    assert response.json()["entries"] == 6
    assert client.get("/api/v1/audit/verify", headers=headers("analyst")).status_code == 403
