"""Cases, exposures, contacts, chains and contact expansion (流调).

Region-scoped: investigators write (cases.write, contacts.write), analysts and commanders read
(tracing.read). People are shown masked (surname, first and last ID characters); unmasking is
the registry's audited ``GET /persons/{id}?unmask=true``. New cases and contacts are handed to
isolation in the same transaction (placements and transfer tasks appear at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.api.deps import CurrentPrincipal, LangDep, RowId, SessionDep
from bastion.core.errors import InvalidInput, NotFound
from bastion.core.text import Line
from bastion.registry import service as registry_service
from bastion.registry.models import Person
from bastion.registry.schemas import PersonRead
from bastion.tracing import handover
from bastion.tracing import service as tracing_service
from bastion.tracing.cases import MAX_ID, MAX_PAGE
from bastion.tracing.models import Case, Contact
from bastion.tracing.schemas import (
    CaseClose,
    CaseCreate,
    ExpansionRequest,
    ExposureBatch,
    ExposureIn,
    Reclassify,
)

router = APIRouter(tags=["tracing"])

CaseRef = Annotated[Line, Path(max_length=24)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


class CaseRead(BaseModel):
    id: int
    code: str
    person: PersonRead
    region_code: str
    reporting_city: str
    classification: str
    clinical_type: str | None
    origin: str
    found_by: str
    onset_on: date | None
    sampled_on: date | None
    reported_on: date
    reclassified_on: date | None
    status: str
    closed_on: date | None
    note: str


class CasePage(BaseModel):
    items: list[CaseRead]
    total: int
    offset: int
    limit: int


class LinkRead(BaseModel):
    case_id: int
    case_code: str
    via_contact_id: int | None
    level: str
    last_exposure_on: date | None


class ContactRead(BaseModel):
    id: int
    person: PersonRead
    region_code: str
    level: str
    case_id: int
    identified_on: date
    last_exposure_on: date | None
    status: str
    released_on: date | None
    links: list[LinkRead] | None = None


class ContactPage(BaseModel):
    items: list[ContactRead]
    total: int
    offset: int
    limit: int


class RowProblemOut(BaseModel):
    row: int | None
    field: str
    reason: str
    code: str


class ExposureReportOut(BaseModel):
    rows: int
    accepted: int
    refused: int
    not_counted: int
    exposure_ids: list[int]
    close_contacts: int
    secondary_contacts: int
    problems: list[RowProblemOut]


class ChainNode(BaseModel):
    key: str
    kind: str
    id: int
    code: str | None
    region_code: str
    classification: str | None
    status: str
    person: PersonRead | None


class ChainEdge(BaseModel):
    source: str
    target: str
    kind: str


class ChainRead(BaseModel):
    root: str
    nodes: list[ChainNode]
    edges: list[ChainEdge]
    truncated: bool


class ExpansionOut(BaseModel):
    cases: int
    profile: str
    secondary_traced: bool
    close_created: int
    secondary_created: int
    links_created: int


def _persons(session: Session, ids: Sequence[int]) -> dict[int, PersonRead]:
    rows = session.execute(select(Person).where(Person.id.in_(sorted(set(ids))))).scalars()
    return {p.id: registry_service.to_read(p) for p in rows}


def _case_out(case: Case, person: PersonRead) -> CaseRead:
    return CaseRead(
        id=case.id,
        code=case.code,
        person=person,
        region_code=case.region_code,
        reporting_city=case.reporting_city,
        classification=case.classification,
        clinical_type=case.clinical_type,
        origin=case.origin,
        found_by=case.found_by,
        onset_on=case.onset_on,
        sampled_on=case.sampled_on,
        reported_on=case.reported_on,
        reclassified_on=case.reclassified_on,
        status=case.status,
        closed_on=case.closed_on,
        note=case.note,
    )


def _one_case(session: Session, case: Case) -> CaseRead:
    return _case_out(case, _persons(session, [case.person_id])[case.person_id])


def _contact_out(contact: Contact, person: PersonRead, links: Any = None) -> ContactRead:
    return ContactRead(
        id=contact.id,
        person=person,
        region_code=contact.region_code,
        level=contact.level,
        case_id=contact.case_id,
        identified_on=contact.identified_on,
        last_exposure_on=contact.last_exposure_on,
        status=contact.status,
        released_on=contact.released_on,
        links=links,
    )


@router.post("/cases", response_model=CaseRead, status_code=201)
def report_case(body: CaseCreate, session: SessionDep, principal: CurrentPrincipal) -> CaseRead:
    """Report a case (hospital, fever clinic, investigator); it is handed to isolation."""
    case = tracing_service.create_case(db_session=session, principal=principal, data=body)
    handover.hand_over(session, case_ids=[case.id], contact_ids=[])
    return _one_case(session, case)


@router.get("/cases", response_model=CasePage)
def list_cases(
    session: SessionDep,
    principal: CurrentPrincipal,
    region: Annotated[Line | None, Query(max_length=15)] = None,
    status: Annotated[Line | None, Query(max_length=16)] = None,
    classification: Annotated[Line | None, Query(max_length=16)] = None,
    reported_from: date | None = None,
    reported_to: date | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> CasePage:
    items, total = tracing_service.list_cases(
        db_session=session,
        principal=principal,
        region_code=region,
        status=status,
        classification=classification,
        reported_from=reported_from,
        reported_to=reported_to,
        offset=offset,
        limit=limit,
    )
    people = _persons(session, [c.person_id for c in items])
    return CasePage(
        items=[_case_out(c, people[c.person_id]) for c in items],
        total=total,
        offset=offset,
        limit=limit,
    )


@router.get("/cases/{ref}", response_model=CaseRead)
def get_case(ref: CaseRef, session: SessionDep, principal: CurrentPrincipal) -> CaseRead:
    case = tracing_service.get_case(db_session=session, principal=principal, ref=ref)
    return _one_case(session, case)


@router.post("/cases/{ref}/reclassify", response_model=CaseRead)
def reclassify_case(
    ref: CaseRef, body: Reclassify, session: SessionDep, principal: CurrentPrincipal
) -> CaseRead:
    """Asymptomatic → confirmed, dated (counted once, on that day)."""
    case = tracing_service.reclassify(
        db_session=session,
        principal=principal,
        ref=ref,
        clinical_type=body.clinical_type,
        day=body.day,
    )
    return _one_case(session, case)


@router.post("/cases/{ref}/close", response_model=CaseRead)
def close_case(
    ref: CaseRef, body: CaseClose, session: SessionDep, principal: CurrentPrincipal
) -> CaseRead:
    """Discharge (confirmed), release from observation (asymptomatic) or death."""
    case = tracing_service.close_case(
        db_session=session, principal=principal, ref=ref, action=body.action, day=body.day
    )
    return _one_case(session, case)


@router.get("/cases/{ref}/chain", response_model=ChainRead)
def case_chain(ref: CaseRef, session: SessionDep, principal: CurrentPrincipal) -> ChainRead:
    """The case's chain both ways: what it was traced from (up) and everything traced from it
    (down), as nodes and edges."""
    down = tracing_service.chain_down(db_session=session, principal=principal, ref=ref)
    up = tracing_service.chain_up(db_session=session, principal=principal, case=ref)
    nodes = {**up.nodes, **down.nodes}
    people = _persons(session, [n["person_id"] for n in nodes.values()])
    root = next(k for k, n in down.nodes.items() if n["kind"] == "case")
    return ChainRead(
        root=root,
        nodes=[
            ChainNode(
                key=k,
                kind=n["kind"],
                id=n["id"],
                code=n["code"],
                region_code=n["region_code"],
                classification=n["classification"],
                status=n["status"],
                # People outside the caller's region stay in the graph, without their details.
                person=people.get(n["person_id"])
                if principal.scope.contains(n["region_code"])
                else None,
            )
            for k, n in sorted(nodes.items())
        ],
        edges=[
            ChainEdge(source=a, target=b, kind=kind) for a, b, kind in sorted(up.edges | down.edges)
        ],
        truncated=up.truncated or down.truncated,
    )


def _report_out(report: tracing_service.ExposureReport, lang: Any) -> ExposureReportOut:
    problems = []
    for p in report.problems:
        rendered = p.render(lang)
        problems.append(
            RowProblemOut(
                row=rendered.get("row"),
                field=rendered["field"],
                reason=rendered["reason"],
                code=rendered["code"],
            )
        )
    return ExposureReportOut(
        rows=report.rows,
        accepted=report.accepted,
        refused=report.refused,
        not_counted=report.not_counted,
        exposure_ids=report.exposure_ids,
        close_contacts=len(report.close_ids),
        secondary_contacts=len(report.secondary_ids),
        problems=problems,
    )


@router.post("/exposures", response_model=ExposureReportOut, status_code=201)
def record_exposure(
    body: ExposureIn, session: SessionDep, principal: CurrentPrincipal, lang: LangDep
) -> ExposureReportOut:
    """Record one exposure; the contact it makes (if any) is classified and placed. A contact
    of an unknown case (or one outside the caller's region) is 404."""
    report = tracing_service.record_exposures(db_session=session, principal=principal, items=[body])
    if report.problems:
        problem = report.problems[0]
        if problem.reason == "exposure.case_unknown":
            raise NotFound("case.not_found", case=body.case or "")
        if problem.reason == "exposure.contact_unknown":
            raise NotFound("contact.not_found", contact=body.contact_id or 0)
        raise InvalidInput(problems=[problem])
    handover.hand_over(session, case_ids=[], contact_ids=report.close_ids + report.secondary_ids)
    return _report_out(report, lang)


@router.post("/exposures/batch", response_model=ExposureReportOut)
def record_exposures(
    body: ExposureBatch, session: SessionDep, principal: CurrentPrincipal, lang: LangDep
) -> ExposureReportOut:
    """Record many exposures: good rows land, each refused row is reported (row, field,
    reason)."""
    report = tracing_service.record_exposures(
        db_session=session, principal=principal, items=body.items
    )
    handover.hand_over(session, case_ids=[], contact_ids=report.close_ids + report.secondary_ids)
    return _report_out(report, lang)


@router.get("/contacts", response_model=ContactPage)
def list_contacts(
    session: SessionDep,
    principal: CurrentPrincipal,
    level: Annotated[Line | None, Query(max_length=16)] = None,
    status: Annotated[Line | None, Query(max_length=16)] = None,
    case: Annotated[Line | None, Query(max_length=24)] = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> ContactPage:
    items, total = tracing_service.list_contacts(
        db_session=session,
        principal=principal,
        level=level,
        status=status,
        case=case,
        offset=offset,
        limit=limit,
    )
    people = _persons(session, [c.person_id for c in items])
    return ContactPage(
        items=[_contact_out(c, people[c.person_id]) for c in items],
        total=total,
        offset=offset,
        limit=limit,
    )


@router.get("/contacts/{contact_id}", response_model=ContactRead)
def get_contact(contact_id: RowId, session: SessionDep, principal: CurrentPrincipal) -> ContactRead:
    contact = tracing_service.get_contact(
        db_session=session, principal=principal, contact_id=contact_id
    )
    links = [
        LinkRead(
            case_id=link.case_id,
            case_code=f"C{link.case_id:08d}",
            via_contact_id=link.via_contact_id,
            level=link.level,
            last_exposure_on=link.last_exposure_on,
        )
        for link in tracing_service.links_of(session, contact.id)
    ]
    return _contact_out(contact, _persons(session, [contact.person_id])[contact.person_id], links)


@router.post("/contacts/expand", response_model=ExpansionOut)
def expand_contacts(
    body: ExpansionRequest, session: SessionDep, principal: CurrentPrincipal
) -> ExpansionOut:
    """Expand the given cases' close and secondary contacts over the exposure graph, store
    them, and hand the new ones to isolation."""
    result = tracing_service.expand(db_session=session, principal=principal, case_refs=body.cases)
    handover.hand_over(session, case_ids=[], contact_ids=result.close_ids + result.secondary_ids)
    return ExpansionOut(
        cases=result.cases,
        profile=result.profile,
        secondary_traced=result.secondary_traced,
        close_created=len(result.close_ids),
        secondary_created=len(result.secondary_ids),
        links_created=result.links_created,
    )
