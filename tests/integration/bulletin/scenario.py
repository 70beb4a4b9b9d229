"""Hand-built bulletin scenarios whose every figure is known.

Cases go through the tracing service (report, reclassify, close); contacts and placements are
rows with the columns docs/dev/shared-records.md guarantees."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.isolation.models import Placement
from bastion.tracing import counters
from bastion.tracing import service as tracing_service
from bastion.tracing.models import Case, Contact
from bastion.tracing.schemas import CaseCreate
from tests.support import factories
from tests.support.world import CHANGYI_GRID, MEIHEKOU_GRID, NANGUAN_GRID

SHANGHAI = ZoneInfo("Asia/Shanghai")
D = date(2022, 3, 25)
#: 10:00 on the 27th in Shanghai: every day of the scenario is over.
NOW = datetime(2022, 3, 27, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
CHANGCHUN, JILIN, MEIHEKOU = NANGUAN_GRID, CHANGYI_GRID, MEIHEKOU_GRID


def case(
    db: Session,
    grid: str,
    kind: str = "confirmed",
    clinical_type: str | None = "mild",
    *,
    on: date | None = None,
    origin: str = "local",
    reported_by: str | None = None,
) -> Case:
    """A case of a new person living in ``grid``, reported on ``on`` (default: today).
    ``reported_by``: a city other than the residence's reports it (a hospital there)."""
    person = factories.person(db, region_code=grid)
    made = tracing_service.create_case(
        db_session=db,
        principal=system_principal(),
        data=CaseCreate(
            person_id=person.id,
            classification=kind,
            clinical_type=clinical_type if kind == "confirmed" else None,
            origin=origin,
            reported_on=on,
        ),
    )
    if reported_by is not None:
        # The tracing service attributes a case to its residence's city; a case found by a
        # hospital in another city is that city's (shared-records: reporting_city).
        made.reporting_city = reported_by
        db.flush()
    return made


def reclassify(db: Session, made: Case, day: date, clinical_type: str = "ordinary") -> None:
    tracing_service.reclassify(
        db_session=db,
        principal=system_principal(),
        ref=made.id,
        clinical_type=clinical_type,
        day=day,
    )


def close(db: Session, made: Case, day: date) -> None:
    action = "discharge" if made.classification == "confirmed" else "release"
    tracing_service.close_case(
        db_session=db, principal=system_principal(), ref=made.id, action=action, day=day
    )


def contact(
    db: Session,
    source: Case,
    grid: str,
    *,
    level: str = "close",
    on: date,
    released_on: date | None = None,
) -> Contact:
    person = factories.person(db, region_code=grid)
    row = Contact(
        person_id=person.id,
        region_code=grid,
        level=level,
        case_id=source.id,
        identified_on=on,
        status="released" if released_on else "active",
        released_on=released_on,
        created_at=clock.now(),
    )
    db.add(row)
    db.flush()
    # What the tracing writers do for the contacts they store (bastion.tracing.counters).
    events = {"identified": [(on, grid, level)], "released": []}
    if released_on:
        events["released"] = [(released_on, grid, level)]
    counters.add(db, counters.deltas(**events))
    return row


def placement(
    db: Session,
    grid: str,
    setting: str,
    *,
    starts_on: date,
    status: str = "active",
    released_on: date | None = None,
) -> Placement:
    person = factories.person(db, region_code=grid)
    row = Placement(
        person_id=person.id,
        region_code=grid,
        setting=setting,
        reason="close_contact",
        source_type="contact",
        source_id=person.id,
        profile="jilin-2022-03",
        status=status,
        starts_on=starts_on,
        planned_end_on=starts_on + timedelta(days=14),
        released_on=released_on,
        created_at=clock.now(),
    )
    db.add(row)
    db.flush()
    return row


def build(db: Session) -> None:
    """The scenario of docs/bulletin.md's worked example (figures of 25 March 2022):

    new confirmed 10 (8 mild, 2 ordinary; 1 reclassified): Jilin City 6 (one of them living in
    Changchun), Changchun 4 (one reported and reclassified the same day); new asymptomatic 4:
    Jilin City 2, Changchun 1, Meihekou 1; discharged 1 + released 1 (Changchun 1, Jilin City
    1), 3 in all; close contacts 3 (1 released), secondary 1; isolation 3 (2 centralised, 1
    home)."""
    d1, d2, d3 = D - timedelta(days=1), D - timedelta(days=2), D - timedelta(days=3)
    # Changchun: 2 mild + 1 ordinary, and one reported and reclassified on D (plain confirmed).
    case(db, CHANGCHUN, on=D)
    case(db, CHANGCHUN, on=D)
    case(db, CHANGCHUN, clinical_type="ordinary", on=D)
    same_day = case(db, CHANGCHUN, "asymptomatic", on=D)
    reclassify(db, same_day, D, clinical_type="mild")
    case(db, CHANGCHUN, "asymptomatic", on=D)
    # Jilin City: 4 mild, one reclassified (reported D-2), one living in Changchun, 2 asymptomatic.
    for _ in range(4):
        case(db, JILIN, on=D)
    earlier = case(db, JILIN, "asymptomatic", on=d2)
    reclassify(db, earlier, D)
    case(db, CHANGCHUN, on=D, reported_by="220200")
    case(db, JILIN, "asymptomatic", on=D)
    case(db, JILIN, "asymptomatic", on=D)
    # Meihekou (run by the province, not by Tonghua).
    case(db, MEIHEKOU, "asymptomatic", on=D)
    # Not counted on D: imported, and reported the day before.
    case(db, CHANGCHUN, on=D, origin="imported")
    discharged_on_d = case(db, CHANGCHUN, on=d1)
    discharged_later = case(db, CHANGCHUN, on=d1)
    released_on_d = case(db, JILIN, "asymptomatic", on=d1)
    discharged_before = case(db, CHANGCHUN, on=d3)
    close(db, discharged_on_d, D)
    close(db, released_on_d, D)
    close(db, discharged_later, D + timedelta(days=1))
    close(db, discharged_before, d1)
    # Contacts, by residence.
    contact(db, discharged_on_d, CHANGCHUN, on=d1, released_on=D)
    contact(db, discharged_on_d, CHANGCHUN, on=D)
    contact(db, discharged_on_d, CHANGCHUN, on=D + timedelta(days=1))
    contact(db, discharged_on_d, CHANGCHUN, level="secondary", on=D)
    contact(db, earlier, JILIN, on=D)
    # Placements at the end of D.
    placement(db, CHANGCHUN, "centralised", starts_on=d1)
    placement(db, CHANGCHUN, "home", starts_on=D)
    placement(db, CHANGCHUN, "centralised", starts_on=d3, status="released", released_on=D)
    placement(
        db,
        CHANGCHUN,
        "centralised",
        starts_on=d3,
        status="released",
        released_on=D + timedelta(days=1),
    )
    placement(db, CHANGCHUN, "home_monitoring", starts_on=D)
    placement(db, CHANGCHUN, "centralised", starts_on=D, status="pending")
    placement(db, JILIN, "centralised", starts_on=D + timedelta(days=1))
