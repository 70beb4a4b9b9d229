"""Cases: reported, reclassified, closed; and made in bulk from positive results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.db import bulk_insert
from bastion.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from bastion.isolation import service as isolation_service
from bastion.regions.models import Region
from bastion.registry import service as registry_service
from bastion.registry.models import Person
from bastion.tracing import classify
from bastion.tracing.expansion import run
from bastion.tracing.models import Case, case_code
from bastion.tracing.schemas import CaseCreate

MAX_PAGE = 500
MAX_ID = 2**63 - 1


def require_any(principal: Principal, *perms: Perm) -> None:
    """At least one of ``perms`` (the flow from testing acts under the lab's results right)."""
    if not any(principal.can(p) for p in perms):
        principal.require(perms[0])


def parse_ref(ref: str | int, field_name: str = "case") -> int | None:
    """A case id from ``123``, ``"123"`` or a code ``"C00000123"``; None when it names none."""
    if isinstance(ref, int):
        return ref if 0 < ref <= MAX_ID else None
    value = ref.strip().upper().removeprefix("C")
    if not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None


def province_cities(db_session: Session) -> frozenset[str]:
    rows = db_session.execute(select(Region.code).where(Region.level == "city")).scalars()
    return frozenset(rows)


#: The reporting city of a residence code, in SQL (see classify.reporting_city).
CITY_SQL = (
    "CASE WHEN substr({col}, 1, 6) IN (SELECT code FROM regions WHERE level = 'city') "
    "THEN substr({col}, 1, 6) ELSE substr({col}, 1, 4) || '00' END"
)


def get_case(*, db_session: Session, principal: Principal, ref: str | int) -> Case:
    """One case inside the principal's subtree; outside it (or unknown): NotFound."""
    principal.require(Perm.tracing_read)
    case_id = parse_ref(ref)
    case = db_session.get(Case, case_id) if case_id is not None else None
    if case is None or not principal.scope.contains(case.region_code):
        raise NotFound("case.not_found", case=str(ref))
    return case


def _open_case(db_session: Session, person_id: int) -> Case | None:
    return db_session.execute(
        select(Case).where(Case.person_id == person_id, Case.status == "open")
    ).scalar_one_or_none()


def create_case(*, db_session: Session, principal: Principal, data: CaseCreate) -> Case:
    """Report a case (hospital, fever clinic, investigator). Refuses: an unknown person or one
    outside the principal's region, a confirmed case without a clinical type (or an
    asymptomatic one with one), unknown origin or found_by, a date in the future or after the
    report, and a second open case for the same person (Conflict)."""
    principal.require(Perm.cases_write)
    person = registry_service.get(
        db_session=db_session, principal=principal, person_id=data.person_id
    )
    principal.require_region(person.region_code)
    today = clock.today()
    reported_on = data.reported_on or today
    classify.check_kind(data.classification, data.clinical_type)
    classify.check_case_fields(data.origin, data.found_by)
    classify.check_case_dates(
        onset_on=data.onset_on, sampled_on=data.sampled_on, reported_on=reported_on, today=today
    )
    cities = province_cities(db_session)
    if data.reporting_city is not None and data.reporting_city not in cities:
        raise InvalidInput.one(
            "reporting_city", "case.value_unknown", allowed=", ".join(sorted(cities))
        )
    existing = _open_case(db_session, person.id)
    if existing is not None:
        raise Conflict("case.open_exists", case=existing.code)
    case = Case(
        person_id=person.id,
        region_code=person.region_code,
        reporting_city=data.reporting_city or classify.reporting_city(person.region_code, cities),
        classification=data.classification,
        clinical_type=data.clinical_type,
        origin=data.origin,
        found_by=data.found_by,
        onset_on=data.onset_on,
        sampled_on=data.sampled_on,
        reported_on=reported_on,
        status="open",
        note=data.note.strip(),
        created_by=principal.user_id,
        created_at=clock.now(),
    )
    try:
        # The unique index on open cases settles a race the check above cannot see: another
        # transaction reporting the same person commits between our check and our insert.
        with db_session.begin_nested():
            db_session.add(case)
            db_session.flush()
    except IntegrityError:
        raise Conflict("case.open_exists", case="?") from None
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="case.create",
        target_type="case",
        target_id=case.id,
        region_code=case.region_code,
        details={"classification": case.classification, "found_by": case.found_by},
    )
    return case


def list_cases(
    *,
    db_session: Session,
    principal: Principal,
    region_code: str | None = None,
    status: str | None = None,
    classification: str | None = None,
    reported_from: date | None = None,
    reported_to: date | None = None,
    person_id: int | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Case], int]:
    """Cases in the principal's subtree (narrowed to ``region_code``), newest first."""
    principal.require(Perm.tracing_read)
    query = select(Case).where(principal.scope.clause(Case.region_code))
    if region_code:
        principal.require_region(region_code)
        from bastion.regions import service as region_service

        query = query.where(
            region_service.scope_of(db_session=db_session, code=region_code).clause(
                Case.region_code
            )
        )
    if status:
        query = query.where(Case.status == status)
    if classification:
        query = query.where(Case.classification == classification)
    if reported_from:
        query = query.where(Case.reported_on >= reported_from)
    if reported_to:
        query = query.where(Case.reported_on <= reported_to)
    if person_id:
        query = query.where(Case.person_id == person_id)
    total = int(db_session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    items = db_session.execute(
        query.order_by(Case.id.desc()).offset(offset).limit(min(limit, MAX_PAGE))
    ).scalars()
    return list(items), total


def _writable(db_session: Session, principal: Principal, ref: str | int) -> Case:
    principal.require(Perm.cases_write)
    case = get_case(db_session=db_session, principal=principal, ref=ref)
    # Lock the case: a reclassification and a discharge sent at once would each check the
    # open, asymptomatic row and both write, leaving a discharged asymptomatic case.
    db_session.refresh(case, with_for_update=True)
    return case


def reclassify(
    *,
    db_session: Session,
    principal: Principal,
    ref: str | int,
    clinical_type: str,
    day: date | None = None,
) -> Case:
    """Asymptomatic → confirmed with ``clinical_type``, dated ``day`` (today). Counted once:
    the case keeps its first report day; refuses a confirmed or closed case, a future day and
    a day before the report."""
    case = _writable(db_session, principal, ref)
    day = day or clock.today()
    classify.check_not_future("day", day, clock.today())
    classify.reclassification(
        classification=case.classification,
        status=case.status,
        reported_on=case.reported_on,
        day=day,
    )
    classify.check_kind("confirmed", clinical_type)
    case.classification = "confirmed"
    case.clinical_type = clinical_type
    case.reclassified_on = day
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="case.update",
        target_type="case",
        target_id=case.id,
        region_code=case.region_code,
        details={"reclassified_on": day.isoformat(), "clinical_type": clinical_type},
    )
    return case


def close_case(
    *,
    db_session: Session,
    principal: Principal,
    ref: str | int,
    action: str,
    day: date | None = None,
) -> Case:
    """Discharge (confirmed), release from observation (asymptomatic) or death, on ``day``.
    Refuses a closed case, the wrong action for the classification, a future day and a day
    before the report.

    The person's isolation follows, in the same transaction
    (:func:`bastion.isolation.service.end_for_cases`): on discharge or release the case's
    active placement is released on ``day`` and a pending one cancelled with its transfer,
    then the home health monitoring the profile in force prescribes after discharge and a
    transfer home for someone who was at a site; on death every open placement and transfer
    task of the person ends (no monitoring, no transfer home). What was done is audited as
    ``placement.release`` next to ``case.close``."""
    case = _writable(db_session, principal, ref)
    day = day or clock.today()
    classify.check_not_future("day", day, clock.today())
    case.status = classify.closing(
        action=action,
        classification=case.classification,
        status=case.status,
        reported_on=case.reported_on,
        day=day,
    )
    case.closed_on = day
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="case.close",
        target_type="case",
        target_id=case.id,
        region_code=case.region_code,
        details={"status": case.status, "closed_on": day.isoformat()},
    )
    isolation_service.end_for_cases(
        db_session=db_session,
        principal=principal,
        case_ids=[case.id],
        outcome=case.status,
        day=day,
    )
    return case


# Cases from positive results (the flow from testing) -----------------------------------------

#: Per person: the latest positive retest task, and the scan of the positive sample (the retest
#: tube, or the person's latest positive tube when it was not a retest).
_POSITIVES = """
SELECT p.id, p.region_code,
       (SELECT r.id FROM retest_tasks r WHERE r.person_id = p.id AND r.state = 'positive'
        ORDER BY r.closed_at DESC, r.id DESC LIMIT 1) AS task_id,
       (SELECT MAX(m.scanned_at) FROM tube_members m JOIN tubes t ON t.id = m.tube_id
        WHERE m.person_id = p.id AND t.result = 'positive') AS scanned_at,
       EXISTS (SELECT 1 FROM contacts c WHERE c.person_id = p.id AND c.status = 'active')
           AS under_control
FROM case_batch b JOIN persons p ON p.id = b.person_id
WHERE NOT EXISTS (SELECT 1 FROM cases k WHERE k.person_id = p.id AND k.status = 'open')
"""

_INSERT_STAGED = f"""
INSERT INTO cases (person_id, region_code, reporting_city, classification, origin, found_by,
                   sampled_on, reported_on, status, source_task_id, note, created_at)
SELECT s.person_id, s.region_code, {CITY_SQL.format(col="s.region_code")}, 'asymptomatic',
       'local', s.found_by, s.sampled_on, :day, 'open', s.task_id, '', :now
FROM case_stage s
WHERE NOT EXISTS (SELECT 1 FROM cases k WHERE k.person_id = s.person_id AND k.status = 'open')
  AND (s.task_id IS NULL OR NOT EXISTS (SELECT 1 FROM cases k WHERE k.source_task_id = s.task_id))
ON CONFLICT DO NOTHING
RETURNING id
"""  # noqa: S608 - fixed fragments, no input


@dataclass(frozen=True)
class _Staged:
    person_id: int
    region_code: str
    task_id: int | None
    found_by: str
    sampled_on: date | None


def _found_by(task_reason: str | None, under_control: bool) -> str:
    if under_control:
        return "isolation"
    if task_reason == "antigen":
        return "antigen"
    return "community_screening"


def _local_day(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return clock.to_local(value).date()


def cases_from_positives(
    *, db_session: Session, principal: Principal, person_ids: Sequence[int]
) -> list[int]:
    """Open a case for each of ``person_ids`` (people whose single-tube retest, or single tube,
    is positive) who has no open case: asymptomatic until a clinician classifies it, local,
    found by community screening (or antigen, or isolation for a person under control),
    reported today, sampled on the day of the positive sample. Set-based; idempotent (one case
    per escalated task, one open case per person). Returns the new cases' ids. Needs the right
    to record results (the flow) or to write cases."""
    require_any(principal, Perm.cases_write, Perm.results_write)
    unique = sorted({int(i) for i in person_ids if 0 < int(i) <= MAX_ID})
    if not unique:
        return []
    db_session.execute(
        text("CREATE TEMPORARY TABLE IF NOT EXISTS case_batch (person_id BIGINT PRIMARY KEY)")
    )
    db_session.execute(
        text(
            "CREATE TEMPORARY TABLE IF NOT EXISTS case_stage (person_id BIGINT PRIMARY KEY, "
            "region_code VARCHAR(15) NOT NULL, task_id BIGINT, found_by VARCHAR(24) NOT NULL, "
            "sampled_on DATE)"
        )
    )
    try:
        bulk_insert(db_session, "case_batch", ["person_id"], ((i,) for i in unique))
        rows = db_session.execute(text(_POSITIVES)).all()
        task_reason = _task_reasons(db_session, [r.task_id for r in rows if r.task_id])
        staged = [
            (
                r.id,
                r.region_code,
                r.task_id,
                _found_by(task_reason.get(r.task_id), bool(r.under_control)),
                _local_day(r.scanned_at),
            )
            for r in rows
        ]
        bulk_insert(
            db_session,
            "case_stage",
            ["person_id", "region_code", "task_id", "found_by", "sampled_on"],
            staged,
        )
        new_ids = [
            int(r[0]) for r in run(db_session, _INSERT_STAGED, day=clock.today(), now=clock.now())
        ]
    finally:
        db_session.execute(text("DELETE FROM case_batch"))
        db_session.execute(text("DELETE FROM case_stage"))
    if new_ids:
        audit_service.record(
            db_session=db_session,
            actor=principal,
            action="case.create",
            target_type="case",
            target_id=case_code(new_ids[0]),
            details={"cases": len(new_ids), "source": "positive_results"},
        )
    return new_ids


def _task_reasons(db_session: Session, task_ids: Sequence[int]) -> dict[int, str]:
    if not task_ids:
        return {}
    from bastion.testing.models import RetestTask

    rows = db_session.execute(
        select(RetestTask.id, RetestTask.reason).where(RetestTask.id.in_(sorted(set(task_ids))))
    ).all()
    return {int(i): str(reason) for i, reason in rows}


def check_case_in_scope(principal: Principal, case: Case) -> None:
    if not principal.scope.contains(case.region_code):
        raise Forbidden("error.region_outside", region=case.region_code)


def person_of(db_session: Session, case: Case) -> Person:
    person = db_session.get(Person, case.person_id)
    if person is None:  # pragma: no cover - foreign key
        raise NotFound("person.not_found")
    return person


__all__ = [
    "cases_from_positives",
    "close_case",
    "create_case",
    "get_case",
    "list_cases",
    "reclassify",
]
