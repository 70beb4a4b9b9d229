"""Investigation: recorded exposures and the contacts they make; contacts listed and released."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock, crypto
from bastion.core.auth import Perm, Principal
from bastion.core.db import bulk_insert
from bastion.core.errors import FieldProblem, InvalidInput, NotFound
from bastion.protocols import service as protocol_service
from bastion.registry.idnumber import IdNumberError, parse_resident_id
from bastion.registry.models import Person
from bastion.tracing import classify, counters, expansion
from bastion.tracing.cases import MAX_PAGE, parse_ref, require_any
from bastion.tracing.enums import SETTINGS
from bastion.tracing.models import Case, Contact, ContactLink, Exposure
from bastion.tracing.schemas import ExposureIn


@dataclass
class ExposureReport:
    rows: int = 0
    accepted: int = 0
    #: Exposures recorded but outside the lookback window (or whose level is not traced).
    not_counted: int = 0
    close_ids: list[int] = field(default_factory=list)
    secondary_ids: list[int] = field(default_factory=list)
    refused: int = 0
    problems: list[FieldProblem] = field(default_factory=list)
    exposure_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    item: ExposureIn
    case: Case | None
    contact: Contact | None
    source_person_id: int
    root_case_id: int
    #: The exposed person (named by id or found by ID number).
    person_id: int


def _problem(report: ExposureReport, row: int, field_name: str, reason: str, **params: Any) -> None:
    report.refused += 1
    report.problems.append(FieldProblem(field_name, reason, params, row))


def _resolve(
    db_session: Session, principal: Principal, items: Sequence[ExposureIn], report: ExposureReport
) -> list[_Row]:
    """Row-by-row checks in Python, with the cases, contacts and persons read in one query
    each."""
    case_ids = {parse_ref(i.case) for i in items if i.case}
    cases = {
        c.id: c
        for c in db_session.execute(
            select(Case).where(Case.id.in_(sorted(i for i in case_ids if i)))
        ).scalars()
    }
    contact_ids = {i.contact_id for i in items if i.contact_id}
    contacts = {
        c.id: c
        for c in db_session.execute(
            select(Contact).where(Contact.id.in_(sorted(contact_ids)))
        ).scalars()
    }
    today = clock.today()
    by_number = _people_by_id_number(db_session, principal, items, today)
    persons = set(
        db_session.execute(
            select(Person.id).where(
                Person.id.in_(sorted({i.person_id for i in items if i.person_id}))
            )
        ).scalars()
    )
    good: list[_Row] = []
    for n, item in enumerate(items, start=1):
        if (item.case is None) == (item.contact_id is None):
            _problem(report, n, "case", "exposure.one_source")
            continue
        if (item.person_id is None) == (item.id_number is None):
            _problem(report, n, "person_id", "exposure.one_person")
            continue
        if item.id_number is not None:
            found = by_number.get(item.id_number)
            if isinstance(found, FieldProblem):
                _problem(report, n, found.field, found.reason, **found.params)
                continue
            if found is None:
                _problem(report, n, "id_number", "person.not_found")
                continue
            person_id = found
        else:
            assert item.person_id is not None  # one of the two, checked above
            person_id = item.person_id
            if person_id not in persons:
                _problem(report, n, "person_id", "person.not_found")
                continue
        if item.exposed_on > today:
            _problem(
                report, n, "exposed_on", "tracing.date_in_future", day=item.exposed_on.isoformat()
            )
            continue
        if item.setting not in SETTINGS:
            _problem(report, n, "setting", "case.value_unknown", allowed=", ".join(SETTINGS))
            continue
        case = contact = None
        if item.case is not None:
            case_id = parse_ref(item.case)
            case = cases.get(case_id) if case_id else None
            if case is None or not principal.scope.contains(case.region_code):
                # A contact of an unknown case is refused: every contact hangs off a case.
                _problem(report, n, "case", "exposure.case_unknown", case=item.case)
                continue
            source_person, root = case.person_id, case.id
        else:
            contact = contacts.get(item.contact_id or 0)
            if contact is None or not principal.scope.contains(contact.region_code):
                _problem(
                    report, n, "contact_id", "exposure.contact_unknown", contact=item.contact_id
                )
                continue
            if contact.level != "close" or contact.status != "active":
                _problem(report, n, "contact_id", "exposure.contact_not_close", contact=contact.id)
                continue
            source_person, root = contact.person_id, contact.case_id
        if person_id == source_person:
            _problem(report, n, "id_number" if item.id_number else "person_id", "exposure.self")
            continue
        good.append(_Row(item, case, contact, source_person, root, person_id))
    return good


def _people_by_id_number(
    db_session: Session, principal: Principal, items: Sequence[ExposureIn], today: date
) -> dict[str, int | FieldProblem | None]:
    """Each ID number of ``items``: the registry id of its person, a problem when the number
    itself is malformed (GB 11643), or None when nobody has it. One query for the batch, and one
    audit entry naming how many numbers were looked up and found (probing numbers is itself
    worth seeing, as with the registry's own lookup)."""
    numbers = sorted({i.id_number for i in items if i.id_number is not None})
    if not numbers:
        return {}
    out: dict[str, int | FieldProblem | None] = {}
    hashes: dict[str, str] = {}
    for raw in numbers:
        try:
            parsed = parse_resident_id(raw.strip(), today=today)
        except IdNumberError as err:
            out[raw] = FieldProblem("id_number", err.reason, dict(err.params))
            continue
        hashes[raw] = crypto.lookup_hash(parsed.number)
    if not hashes:
        return out
    found: dict[str, int] = {  # noqa: C416 - rows, not pairs
        digest: person_id
        for digest, person_id in db_session.execute(
            select(Person.id_hash, Person.id).where(
                Person.id_hash.in_(sorted(set(hashes.values())))
            )
        )
    }
    for raw, digest in hashes.items():
        out[raw] = found.get(digest)
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="person.lookup",
        target_type="person",
        target_id="",
        region_code=None,
        details={
            "purpose": "exposures",
            "numbers": len(hashes),
            "found": sum(1 for v in out.values() if isinstance(v, int)),
        },
    )
    return out


def record_exposures(
    *, db_session: Session, principal: Principal, items: Sequence[ExposureIn]
) -> ExposureReport:
    """Record exposures between a case (or an active close contact) and people, and the
    contacts they make under the profile in force: a person exposed to a case on or after its
    lookback start becomes (or stays) a close contact linked to that case; a person exposed to
    a close contact since that contact's own exposure becomes a secondary contact linked
    through it, when the profile traces secondary contacts. Each bad row is refused with its
    row number (a contact of an unknown case, a date in the future, an unknown person or
    setting, a person exposed to themselves); the good rows land. Set-based."""
    principal.require(Perm.contacts_write)
    report = ExposureReport(rows=len(items))
    rows = _resolve(db_session, principal, items, report)
    if not rows:
        return report
    now = clock.now()
    today = clock.today()
    profile = protocol_service.profile_on(db_session, today)
    first_id = int(db_session.execute(select(func.coalesce(func.max(Exposure.id), 0))).scalar_one())
    bulk_insert(
        db_session,
        Exposure,
        [
            "case_id",
            "contact_id",
            "source_person_id",
            "person_id",
            "region_code",
            "place",
            "exposed_on",
            "setting",
            "recorded_by",
            "created_at",
        ],
        [
            (
                r.case.id if r.case else None,
                r.contact.id if r.contact else None,
                r.source_person_id,
                r.person_id,
                r.item.region_code,
                r.item.place.strip(),
                r.item.exposed_on,
                r.item.setting,
                principal.user_id,
                now,
            )
            for r in rows
        ],
    )
    report.accepted = len(rows)
    report.exposure_ids = list(
        db_session.execute(
            select(Exposure.id).where(Exposure.id > first_id).order_by(Exposure.id)
        ).scalars()
    )
    _add_edges(db_session, rows)
    open_cases = set(
        db_session.execute(
            select(Case.person_id).where(
                Case.status == "open", Case.person_id.in_(sorted({r.person_id for r in rows}))
            )
        ).scalars()
    )
    close: dict[tuple[int, int], date] = {}
    secondary: dict[tuple[int, int, int], date] = {}
    for r in rows:
        person, day = r.person_id, r.item.exposed_on
        if person in open_cases:
            report.not_counted += 1
        elif r.case is not None:
            since = classify.lookback_start(
                onset_on=r.case.onset_on,
                sampled_on=r.case.sampled_on,
                reported_on=r.case.reported_on,
                lookback_days=profile.lookback_days,
            )
            if r.case.status == "open" and classify.exposure_counts(
                source="case", exposed_on=day, since=since
            ):
                key = (person, r.case.id)
                close[key] = max(day, close.get(key, day))
            else:
                report.not_counted += 1
        else:
            assert r.contact is not None
            since = r.contact.last_exposure_on or r.contact.identified_on
            level = classify.contact_level(source="close", profile=profile)
            if level and classify.exposure_counts(source="close", exposed_on=day, since=since):
                key3 = (person, r.contact.id, r.root_case_id)
                secondary[key3] = max(day, secondary.get(key3, day))
            else:
                report.not_counted += 1
    expansion.temp_tables(db_session, "exp_close", "exp_secondary")
    try:
        bulk_insert(
            db_session,
            "exp_close",
            ["person_id", "case_id", "last_on"],
            [(p, c, d) for (p, c), d in close.items()],
        )
        stored = expansion.store_contacts(db_session, day=today, now=now, secondary=False)
        bulk_insert(
            db_session,
            "exp_secondary",
            ["person_id", "via_contact_id", "case_id", "last_on"],
            [(p, v, c, d) for (p, v, c), d in secondary.items()],
        )
        report.secondary_ids, _ = expansion.store_secondary(db_session, day=today, now=now)
        report.close_ids = stored.close_ids
    finally:
        expansion.temp_tables(db_session, "exp_close", "exp_secondary")
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="exposure.create",
        target_type="exposure",
        target_id=report.exposure_ids[0] if report.exposure_ids else "",
        details={
            "exposures": report.accepted,
            "close": len(report.close_ids),
            "secondary": len(report.secondary_ids),
        },
    )
    return report


_EDGES = """
INSERT INTO exposure_edges (person_id, other_id, exposed_on, setting)
SELECT DISTINCT a, b, d, s FROM edge_stage WHERE true
ON CONFLICT DO NOTHING
"""


def _add_edges(db_session: Session, rows: Sequence[_Row]) -> None:
    """Both directions of each recorded exposure join the graph expansion walks."""
    db_session.execute(
        text(
            "CREATE TEMPORARY TABLE IF NOT EXISTS edge_stage "
            "(a BIGINT NOT NULL, b BIGINT NOT NULL, d DATE NOT NULL, s VARCHAR(16) NOT NULL)"
        )
    )
    db_session.execute(text("DELETE FROM edge_stage"))
    pairs = []
    for r in rows:
        a, b, d, s = r.source_person_id, r.person_id, r.item.exposed_on, r.item.setting
        pairs += [(a, b, d, s), (b, a, d, s)]
    bulk_insert(db_session, "edge_stage", ["a", "b", "d", "s"], pairs)
    db_session.execute(text(_EDGES))
    db_session.execute(text("DELETE FROM edge_stage"))


# Contacts --------------------------------------------------------------------------------------


def get_contact(*, db_session: Session, principal: Principal, contact_id: int) -> Contact:
    principal.require(Perm.tracing_read)
    contact = db_session.get(Contact, contact_id)
    if contact is None or not principal.scope.contains(contact.region_code):
        raise NotFound("contact.not_found", contact=contact_id)
    return contact


def links_of(db_session: Session, contact_id: int) -> list[ContactLink]:
    return list(
        db_session.execute(
            select(ContactLink).where(ContactLink.contact_id == contact_id).order_by(ContactLink.id)
        ).scalars()
    )


def list_contacts(
    *,
    db_session: Session,
    principal: Principal,
    level: str | None = None,
    status: str | None = None,
    case: str | None = None,
    person_id: int | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Contact], int]:
    """Contacts in the principal's subtree; ``case``: those linked to that case (directly or
    through a close contact)."""
    principal.require(Perm.tracing_read)
    query = select(Contact).where(principal.scope.clause(Contact.region_code))
    if level:
        query = query.where(Contact.level == level)
    if status:
        query = query.where(Contact.status == status)
    if person_id:
        query = query.where(Contact.person_id == person_id)
    if case:
        case_id = parse_ref(case)
        if case_id is None:
            raise InvalidInput.one("case", "exposure.case_unknown", case=case)
        query = query.where(
            Contact.id.in_(select(ContactLink.contact_id).where(ContactLink.case_id == case_id))
        )
    total = int(db_session.execute(select(func.count()).select_from(query.subquery())).scalar_one())
    items = db_session.execute(
        query.order_by(Contact.id.desc()).offset(offset).limit(min(limit, MAX_PAGE))
    ).scalars()
    return list(items), total


def release_contacts(
    *,
    db_session: Session,
    principal: Principal,
    contact_ids: Sequence[int],
    day: date | None = None,
) -> int:
    """Mark active contacts released on ``day`` (isolation calls this when their placement
    ends). Set-based; already released ones are left as they are. Returns how many changed."""
    require_any(principal, Perm.contacts_write, Perm.isolation_write)
    day = day or clock.today()
    classify.check_not_future("day", day, clock.today())
    released = db_session.execute(
        update(Contact)
        .where(Contact.id.in_(sorted(set(contact_ids))), Contact.status == "active")
        .values(status="released", released_on=day)
        .returning(Contact.region_code, Contact.level)
        .execution_options(synchronize_session=False)
    ).all()
    counters.add(db_session, counters.deltas(released=[(day, r, lvl) for r, lvl in released]))
    for obj in list(db_session.identity_map.values()):
        if isinstance(obj, Contact):
            db_session.expire(obj)
    return len(released)


__all__ = [
    "ExposureReport",
    "get_contact",
    "list_contacts",
    "record_exposures",
    "release_contacts",
]
