"""Small factories for isolation tests: people with needs, sites, placements made active."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from bastion.core.auth import Principal, system_principal
from bastion.isolation import service, sites, transfers
from bastion.isolation.models import Placement, TransferTask
from bastion.isolation.needs import PlacementNeed
from bastion.isolation.schemas import BatchCreate, SiteCreate
from tests.integration.registry.people import register
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID

#: 12:00 in Changchun on 25 March 2022.
NOW = datetime(2022, 3, 25, 4, 0, tzinfo=UTC)
TODAY = date(2022, 3, 25)
GRID = {"in": NANGUAN_GRID, "out": CHANGYI_GRID}
COMMUNITY = {"in": NANGUAN_GRID[:12], "out": CHANGYI_GRID[:12]}
_n = itertools.count(1)


def n() -> int:
    return next(_n)


def need(
    db: Session,
    *,
    reason: str = "close_contact",
    destination: str = "centralised",
    starts_on: date = TODAY,
    where: str = "in",
    person_id: int | None = None,
    source_id: int | None = None,
    region: str | None = None,
    **extra: Any,
) -> PlacementNeed:
    """A need for a freshly registered person (or ``person_id``) living in ``where`` (or in
    ``region``)."""
    region = region or GRID[where]
    if person_id is None:
        person_id = register(db, region_code=region).id
    return PlacementNeed(
        person_id=person_id,
        region_code=region,
        reason=reason,  # type: ignore[arg-type]
        source_type="case" if reason == "case" else "contact",
        source_id=source_id if source_id is not None else 100_000 + n(),
        destination=destination,  # type: ignore[arg-type]
        starts_on=starts_on,
        **extra,
    )


def place(db: Session, *needs: PlacementNeed, principal: Principal | None = None) -> list[int]:
    report = service.place_needs(
        db_session=db, principal=principal or system_principal(), needs=list(needs)
    )
    return [pid for pid in report.placement_ids if pid is not None]


def site(db: Session, *, kind: str = "hotel", beds: int = 10, where: str = "in") -> Any:
    return sites.create_site(
        db_session=db,
        principal=system_principal(),
        data=SiteCreate(
            code=f"ISO-{n()}",
            name="隔离酒店",
            kind=kind,
            region_code=COMMUNITY[where],
            rooms=beds,
            beds=beds,
        ),
    )


def task_of(db: Session, placement_id: int, kind: str = "to_site") -> TransferTask:
    from sqlalchemy import select

    db.expire_all()
    return db.execute(
        select(TransferTask).where(
            TransferTask.placement_id == placement_id, TransferTask.kind == kind
        )
    ).scalar_one()


def batch(db: Session, task_ids: list[int], site_code: str | None, **extra: Any) -> Any:
    return transfers.create_batch(
        db_session=db,
        principal=system_principal(),
        data=BatchCreate(
            code=f"B-{n()}",
            vehicle="吉A12345",
            escort="张医生",
            site=site_code,
            tasks=task_ids,
            **extra,
        ),
    )


def arrive_at_site(db: Session, placement_ids: list[int], site_code: str) -> Any:
    """Carry the placements' people to ``site_code`` and make their placements active."""
    b = batch(db, [task_of(db, pid).id for pid in placement_ids], site_code)
    transfers.dispatch(db_session=db, principal=system_principal(), batch_id=b.id)
    transfers.arrive(db_session=db, principal=system_principal(), batch_id=b.id)
    db.expire_all()
    return b


def record_all_negative(db: Session, placement_id: int) -> None:
    for test in service.tests_of(db, placement_id):
        service.record_test(
            db_session=db,
            principal=system_principal(),
            placement_id=placement_id,
            day_no=test.day_no,
            result="negative",
            tested_on=test.due_on,
        )


def get(db: Session, placement_id: int) -> Placement:
    db.expire_all()
    p = db.get(Placement, placement_id)
    assert p is not None
    return p
