"""Small factories for registry tests: valid ID numbers, request bodies, persons, counts."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit.models import AuditEntry
from bastion.core.auth import Principal, system_principal
from bastion.registry import service as registry_service
from bastion.registry.idnumber import make_resident_id
from bastion.registry.models import Household, ImportBatch, Person
from bastion.registry.schemas import PersonCreate
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID

_serial = itertools.count(1)


def new_id_number(*, sex: str = "F", born: date | None = None, region: str = "220102") -> str:
    """A valid resident ID number no other call in this process has returned."""
    n = next(_serial)
    born = born or date(1950, 1, 1) + timedelta(days=(n * 37) % 20000)
    sequence = (n * 2) % 1000 + (1 if sex == "M" else 0)
    # The sequence repeats every 500 numbers; the birth date moves on with n, so pairs differ.
    return make_resident_id(region, born, sequence)


def payload(**overrides: Any) -> dict[str, Any]:
    """A JSON body for POST /persons: a woman in the Nanguan test grid (inside Changchun)."""
    body: dict[str, Any] = {
        "name": "王芳",
        "id_number": new_id_number(),
        "phone": "13812345678",
        "region_code": NANGUAN_GRID,
        "address": "南关区测试街道1号",
        "household": "H-001",
        "special_groups": [],
    }
    body.update(overrides)
    return body


def register(db: Session, principal: Principal | None = None, **overrides: Any) -> Person:
    """Register a person through the service (as the system unless ``principal`` is given)."""
    return registry_service.create(
        db_session=db,
        principal=principal or system_principal(),
        data=PersonCreate(**payload(**overrides)),
    )


def register_outside(db: Session, **overrides: Any) -> Person:
    """A person in Jilin City (outside the cast's "in" users' Changchun)."""
    return register(db, region_code=CHANGYI_GRID, **overrides)


def count(db: Session, model: type[Any]) -> int:
    db.expire_all()
    return db.execute(select(func.count()).select_from(model)).scalar_one()


def audit_entries(db: Session, action: str) -> list[AuditEntry]:
    db.expire_all()
    return list(
        db.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq))
        .scalars()
        .all()
    )


def footprint(db: Session) -> dict[str, int]:
    """How many persons, households, import batches and audit entries exist (for "nothing was
    written" checks)."""
    return {
        "persons": count(db, Person),
        "households": count(db, Household),
        "batches": count(db, ImportBatch),
        "audit": count(db, AuditEntry),
    }
