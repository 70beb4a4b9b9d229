"""Factories for integration tests, one function per thing, through the public services."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time

from sqlalchemy.orm import Session

from bastion.core.auth import system_principal
from bastion.registry import service as registry_service
from bastion.registry.idnumber import make_resident_id
from bastion.registry.models import Person
from bastion.registry.schemas import PersonCreate
from bastion.testing import service as testing_service
from bastion.testing.models import Lab, Round, Site
from bastion.testing.schemas import LabCreate, RoundCreate, SiteCreate
from tests.support.world import NANGUAN_GRID

_seq = itertools.count(1)


def person(
    db: Session,
    *,
    region_code: str = NANGUAN_GRID,
    name: str = "张伟",
    born: date = date(1980, 5, 17),
    household: str | None = None,
) -> Person:
    """A registered person with a fresh valid ID number."""
    n = next(_seq)
    number = make_resident_id("220102", born, (n * 2 + 1) % 1000)
    while registry_service.get_by_id_number(db_session=db, number=number) is not None:
        n = next(_seq)
        number = make_resident_id("220102", born.replace(day=1 + n % 28), (n * 2 + 1) % 1000)
    return registry_service.create(
        db_session=db,
        principal=system_principal(),
        data=PersonCreate(
            name=name, id_number=number, region_code=region_code, household=household
        ),
    )


def round_(
    db: Session,
    *,
    code: str = "R-TEST-1",
    region_code: str = "220100",
    starts_at: datetime,
    pool_policy: dict[str, int | str] | None = None,
) -> Round:
    return testing_service.create_round(
        db_session=db,
        principal=system_principal(),
        data=RoundCreate(
            code=code,
            name=f"Round {code}",
            region_code=region_code,
            starts_at=starts_at,
            pool_policy=pool_policy or {},
        ),
    )


def site(
    db: Session,
    *,
    code: str = "SITE-1",
    region_code: str = "220102001001",
    grids: list[str] | None = None,
) -> Site:
    return testing_service.create_site(
        db_session=db,
        principal=system_principal(),
        data=SiteCreate(
            code=code,
            name=f"采样点 {code}",
            region_code=region_code,
            capacity_per_hour=300,
            opens_at=time(6, 0),
            closes_at=time(23, 0),
            grids=grids if grids is not None else [NANGUAN_GRID],
        ),
    )


def lab(db: Session, *, code: str = "LAB-1", capacity: int = 10_000) -> Lab:
    return testing_service.create_lab(
        db_session=db,
        principal=system_principal(),
        data=LabCreate(
            code=code, name=f"实验室 {code}", region_code="220100", daily_capacity=capacity
        ),
    )
