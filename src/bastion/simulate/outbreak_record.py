"""What a simulated outbreak day writes, through the tracing and isolation services only.

Each function takes the day's events from :mod:`bastion.simulate.outbreak_process` and hands
them to the public service functions (cases, exposures, expansion, placements, test days,
releases, transfer batches), batch-wise where the service takes batches. The tracing and
isolation tables are only ever read here (for the ids the next step needs), never written.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.auth import Principal
from bastion.core.errors import BastionError
from bastion.isolation.needs import PlacementNeed
from bastion.protocols import service as protocol_service
from bastion.simulate import outbreak_process as op
from bastion.simulate.outbreak_world import stable_hash
from bastion.tracing import classify
from bastion.tracing import service as tracing_service

#: Transfer batches: people a vehicle carries, and the chance a batch fails on the way (with
#: one of these reasons; its people wait for the next day's batches, flagged red).
VEHICLE_SEATS = 30
BATCH_FAILS = 0.05
FAILURE_REASONS = ("车辆故障，改派车辆", "道路临时封闭，次日转运", "隔离点消杀未完成，暂缓接收")
#: Beds of the sites the simulation opens (a city gets another when one fills up).
SITE_BEDS = {"hotel": 300, "makeshift": 1_000, "hospital": 200}
SITE_NAMES = {"hotel": "集中隔离酒店", "makeshift": "方舱医院", "hospital": "定点医院"}
#: Where a placement's setting is served.
KIND_OF_DESTINATION = {"centralised": "hotel", "makeshift": "makeshift", "hospital": "hospital"}


@dataclass
class DayRecord:
    """What one day wrote (counted from the services' answers)."""

    cases: int = 0
    exposures: int = 0
    exposures_refused: int = 0
    close: int = 0
    secondary: int = 0
    placements: int = 0
    batches: int = 0
    failed_batches: int = 0
    arrived: int = 0
    left_pending: int = 0
    tests: int = 0
    released: int = 0
    reclassified: int = 0
    closed: int = 0
    refusals: list[str] = field(default_factory=list)


# Cases -----------------------------------------------------------------------------------------


def open_cases(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    cases: Sequence[op.NewCase],
    onset: Mapping[int, date | None],
    out: DayRecord,
) -> dict[int, int]:
    """Open the day's cases: the testing round's positives through the flow from positive
    results (as screening finds them), the others as reports (fever clinic, hospital, isolation,
    screening). A confirmed positive is classified by the clinician the same day. Returns
    person → case id for every case of the day (new or found open)."""
    from bastion.tracing.schemas import CaseCreate

    known = [c for c in cases if c.known]
    if known:
        tracing_service.cases_from_positives(
            db_session=db_session, principal=principal, person_ids=[c.person_id for c in known]
        )
    for case in cases:
        if case.known:
            continue
        try:
            tracing_service.create_case(
                db_session=db_session,
                principal=principal,
                data=CaseCreate(
                    person_id=case.person_id,
                    classification=case.classification,
                    clinical_type=case.clinical_type,
                    found_by=case.found_by,
                    onset_on=onset.get(case.person_id),
                    sampled_on=day if case.found_by != "fever_clinic" else None,
                    reported_on=day,
                ),
            )
        except BastionError as err:
            out.refusals.append(f"case {case.person_id}: {err.message('en')}")
    ids = open_case_ids(db_session, [c.person_id for c in cases])
    for case in known:
        case_id = ids.get(case.person_id)
        if case.classification == "confirmed" and case_id is not None:
            _reclassify(db_session, principal, case_id, case.clinical_type or "mild", day, out)
    out.cases += len(ids)
    return ids


def open_case_ids(db_session: Session, person_ids: Iterable[int]) -> dict[int, int]:
    """person → open case id (read from the tracing record)."""
    from bastion.tracing.models import Case

    wanted = sorted(set(person_ids))
    found: dict[int, int] = {}
    for chunk in _chunks(wanted, 900):
        for person, case_id in db_session.execute(
            select(Case.person_id, Case.id).where(Case.person_id.in_(chunk), Case.status == "open")
        ).all():
            found[int(person)] = int(case_id)
    return found


def _reclassify(
    db_session: Session,
    principal: Principal,
    case_id: int,
    clinical_type: str,
    day: date,
    out: DayRecord,
) -> None:
    try:
        tracing_service.reclassify(
            db_session=db_session,
            principal=principal,
            ref=case_id,
            clinical_type=clinical_type,
            day=day,
        )
        out.reclassified += 1
    except BastionError as err:
        out.refusals.append(f"reclassify {case_id}: {err.message('en')}")


def courses(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    reclassified: Sequence[tuple[int, str]],
    closed: Sequence[tuple[int, str]],
    out: DayRecord,
) -> dict[int, str]:
    """Reclassify (asymptomatic → confirmed, counted once) and close the day's cases
    (discharge, release from observation, death). Returns the closed cases' ids and how."""
    ids = open_case_ids(db_session, [p for p, _ in reclassified] + [p for p, _ in closed])
    for person, kind in reclassified:
        if person in ids:
            _reclassify(db_session, principal, ids[person], kind, day, out)
    action = {"discharged": "discharge", "released": "release", "died": "death"}
    done: dict[int, str] = {}
    for person, how in closed:
        case_id = ids.get(person)
        if case_id is None:
            continue
        try:
            tracing_service.close_case(
                db_session=db_session,
                principal=principal,
                ref=case_id,
                action=action[how],
                day=day,
            )
            out.closed += 1
            done[case_id] = how
        except BastionError as err:
            out.refusals.append(f"close {case_id}: {err.message('en')}")
    return done


# Exposures and contacts ------------------------------------------------------------------------


def exposures(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    close: Sequence[op.Exposure],
    secondary: Sequence[op.Secondary],
    case_of: Mapping[int, int],
    out: DayRecord,
) -> None:
    """Record the investigations' exposures (each case's close contacts; then each close
    contact's household, whose members become secondary contacts), through the tracing
    service, which makes the contacts and feeds the graph expansion walks."""
    from bastion.tracing.schemas import ExposureIn

    items = []
    for e in close:
        case_id = case_of.get(e.case_person)
        if case_id is None:
            continue
        back = 0 if e.setting == "household" else stable_hash("exposed", e.person_id) % 3
        items.append(
            ExposureIn(
                case=str(case_id),
                person_id=e.person_id,
                exposed_on=day - timedelta(days=back),
                setting=e.setting,
            )
        )
    _record(db_session, principal, items, out)
    if secondary:
        contact_of = active_contact_ids(db_session, {s.close_person for s in secondary})
        items = [
            ExposureIn(
                contact_id=contact_of[s.close_person],
                person_id=s.person_id,
                exposed_on=day,
                setting="household",
            )
            for s in secondary
            if s.close_person in contact_of
        ]
        _record(db_session, principal, items, out)


def _record(db_session: Session, principal: Principal, items: list[Any], out: DayRecord) -> None:
    for chunk in _chunks(items, 5_000):
        report = tracing_service.record_exposures(
            db_session=db_session, principal=principal, items=chunk
        )
        out.exposures += report.accepted
        out.exposures_refused += report.refused
        out.close += len(report.close_ids)
        out.secondary += len(report.secondary_ids)


def expand(*, db_session: Session, principal: Principal, day: date, case_ids: Sequence[int]) -> Any:
    """Contact expansion for the day's cases through the tracing service (it finds what the
    graph knows beyond the recorded exposures: e.g. the household of a case who was a contact)."""
    if not case_ids:
        return None
    return tracing_service.expand(
        db_session=db_session, principal=principal, case_refs=list(case_ids), day=day
    )


def active_contact_ids(db_session: Session, person_ids: Iterable[int]) -> dict[int, int]:
    from bastion.tracing.models import Contact

    found: dict[int, int] = {}
    for chunk in _chunks(sorted(set(person_ids)), 900):
        for person, contact_id in db_session.execute(
            select(Contact.person_id, Contact.id).where(
                Contact.person_id.in_(chunk), Contact.status == "active"
            )
        ).all():
            found[int(person)] = int(contact_id)
    return found


def new_contacts(db_session: Session, day: date) -> list[Any]:
    """(id, person_id, region_code, level) of the contacts identified on ``day``."""
    from bastion.tracing.models import Contact

    return list(
        db_session.execute(
            select(Contact.id, Contact.person_id, Contact.region_code, Contact.level)
            .where(Contact.identified_on == day, Contact.status == "active")
            .order_by(Contact.id)
        ).all()
    )


# Placements ------------------------------------------------------------------------------------


def special_needs(age: int | None) -> str:
    """一人一策: what a transfer team must know about a person (by age here)."""
    if age is None:
        return ""
    if age >= 80:
        return "高龄老人，需家属或社区人员陪同，备轮椅"
    if age < 3:
        return "婴幼儿，需监护人陪同"
    return ""


def place(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    case_ids: Mapping[int, int],
    ages: Mapping[int, int],
    out: DayRecord,
) -> None:
    """Hand the day's new cases (to treatment) and new contacts (to isolation) to isolation,
    in one batch of needs."""
    from bastion.isolation import service as isolation_service
    from bastion.tracing.models import Case

    profile = protocol_service.profile_on(db_session, day)
    needs: list[PlacementNeed] = []
    rows = db_session.execute(
        select(
            Case.id, Case.person_id, Case.region_code, Case.classification, Case.clinical_type
        ).where(Case.id.in_(sorted(set(case_ids.values()))))
    ).all()
    for case_id, person, region, classification, kind in rows:
        destination = classify.case_destination(profile, classification, kind)
        needs.append(
            PlacementNeed(
                person_id=int(person),
                region_code=region,
                reason="case",
                source_type="case",
                source_id=int(case_id),
                destination=destination,  # type: ignore[arg-type]
                starts_on=day,
                special_needs=special_needs(ages.get(int(person))),
            )
        )
    for contact_id, person, region, level in new_contacts(db_session, day):
        if not profile.rule(level).traced:
            continue
        needs.append(
            PlacementNeed(
                person_id=int(person),
                region_code=region,
                reason="close_contact" if level == "close" else "secondary_contact",
                source_type="contact",
                source_id=int(contact_id),
                destination=classify.contact_destination(profile, level),  # type: ignore[arg-type]
                starts_on=day,
                special_needs=special_needs(ages.get(int(person))),
            )
        )
    if needs:
        report = isolation_service.place_needs(
            db_session=db_session, principal=principal, needs=needs
        )
        out.placements += report.created


# Helpers ---------------------------------------------------------------------------------------


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def rng_for(seed: int, *names: object) -> random.Random:
    return random.Random(f"bastion/outbreak/{seed}/" + "/".join(map(str, names)))
