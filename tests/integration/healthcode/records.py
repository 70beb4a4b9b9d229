"""Rows of other domains written straight, with only the documented columns
(docs/dev/shared-records.md), for health-code scenarios."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.isolation.models import Placement
from bastion.registry.models import Person
from bastion.tracing.models import Case, Contact


def case(db: Session, person: Person, *, status: str = "open") -> Case:
    row = Case(
        person_id=person.id,
        region_code=person.region_code,
        reporting_city=person.region_code[:4] + "00",
        classification="confirmed",
        clinical_type="mild",
        origin="local",
        found_by="community_screening",
        reported_on=clock.today(),
        status=status,
        created_at=clock.now(),
    )
    db.add(row)
    db.flush()
    return row


def contact(
    db: Session, person: Person, source: Case, *, level: str = "close", status: str = "active"
) -> Contact:
    row = Contact(
        person_id=person.id,
        region_code=person.region_code,
        level=level,
        case_id=source.id,
        identified_on=clock.today(),
        status=status,
        created_at=clock.now(),
    )
    db.add(row)
    db.flush()
    return row


def placement(
    db: Session,
    person: Person,
    *,
    reason: str,
    source_type: str,
    source_id: int,
    setting: str = "centralised",
    status: str = "active",
) -> Placement:
    start = clock.today()
    row = Placement(
        person_id=person.id,
        region_code=person.region_code,
        setting=setting,
        reason=reason,
        source_type=source_type,
        source_id=source_id,
        profile="jilin-2022-03",
        status=status,
        starts_on=start,
        planned_end_on=start + timedelta(days=7),
        created_at=clock.now(),
    )
    db.add(row)
    db.flush()
    return row


__all__ = ["case", "contact", "placement"]
