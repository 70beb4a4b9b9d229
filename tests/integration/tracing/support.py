"""Helpers for the tracing tests: cases and exposures through the public service."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from bastion.core.auth import system_principal
from bastion.tracing import service as tracing_service
from bastion.tracing.models import Case
from bastion.tracing.schemas import CaseCreate, ExposureIn

NOW = datetime(2022, 3, 25, 6, 0, tzinfo=UTC)
TODAY = date(2022, 3, 25)


def case(db: Session, person: Any, **fields: Any) -> Case:
    data = {"person_id": person.id, "classification": "asymptomatic", "found_by": "hospital"}
    data.update(fields)
    return tracing_service.create_case(
        db_session=db, principal=system_principal(), data=CaseCreate(**data)
    )


def expose(
    db: Session,
    source: Case | int,
    person: Any,
    day: date = TODAY,
    setting: str = "household",
) -> tracing_service.ExposureReport:
    """``source``: a case, or a contact id."""
    item = (
        ExposureIn(case=str(source.id), person_id=person.id, exposed_on=day, setting=setting)
        if isinstance(source, Case)
        else ExposureIn(contact_id=source, person_id=person.id, exposed_on=day, setting=setting)
    )
    return tracing_service.record_exposures(
        db_session=db, principal=system_principal(), items=[item]
    )
