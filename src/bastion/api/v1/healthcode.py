"""Health-code status over HTTP: a person's status and history with reasons in plain words,
recompute, manual changes under four eyes, alarms, contests and proxy bindings.

Staff read people in their subtree (healthcode.read); residents read their own (``/me``).
A refused manual request or approval is answered with its problem *and* its audit entry kept:
the route returns the problem instead of raising, so the request's transaction commits the
entry (bastion.healthcode.manual).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from bastion.api.deps import CurrentPrincipal, RowId, SessionDep
from bastion.api.errors import problem, request_language
from bastion.core.errors import BastionError
from bastion.core.text import Line, Text
from bastion.healthcode import manual, store, views
from bastion.healthcode.models import CodeAlarm, ManualRequest, ProxyBinding, ReviewRequest

router = APIRouter(prefix="/healthcode", tags=["healthcode"])

RegionQuery = Annotated[str | None, Query(alias="region", pattern=r"^\d{2,15}$")]


class StatusRead(BaseModel):
    person_id: int
    colour: str
    rule: str
    reason_key: str
    reason: str
    evidence_type: str | None
    evidence_id: str | None
    popup: str | None
    popup_reason: str | None
    popup_clears: str | None
    valid_until: datetime | None
    version: int
    changed_at: datetime | None


class HistoryRead(BaseModel):
    at: datetime
    old_colour: str | None
    new_colour: str
    rule: str
    reason: str
    evidence_type: str | None
    evidence_id: str | None
    popup: str | None
    cause: str


def _status(view: views.StatusView) -> StatusRead:
    return StatusRead(**view.__dict__)


@router.get("/status/me", response_model=StatusRead)
def my_status(request: Request, session: SessionDep, principal: CurrentPrincipal) -> StatusRead:
    """The caller's own status and why."""
    return _status(
        views.get_status(
            db_session=session,
            principal=principal,
            person_id=None,
            lang=request_language(request),
        )
    )


@router.get("/history/me", response_model=list[HistoryRead])
def my_history(
    request: Request, session: SessionDep, principal: CurrentPrincipal
) -> list[HistoryRead]:
    rows = views.get_history(
        db_session=session, principal=principal, person_id=None, lang=request_language(request)
    )
    return [HistoryRead(**r.__dict__) for r in rows]


@router.get("/status/{person_id}", response_model=StatusRead)
def person_status(
    person_id: RowId, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> StatusRead:
    return _status(
        views.get_status(
            db_session=session,
            principal=principal,
            person_id=person_id,
            lang=request_language(request),
        )
    )


@router.get("/history/{person_id}", response_model=list[HistoryRead])
def person_history(
    person_id: RowId, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> list[HistoryRead]:
    rows = views.get_history(
        db_session=session,
        principal=principal,
        person_id=person_id,
        lang=request_language(request),
    )
    return [HistoryRead(**r.__dict__) for r in rows]


class RecomputeIn(BaseModel):
    region: str | None = Field(default=None, pattern=r"^\d{2,15}$")
    person_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] | None = Field(
        default=None, max_length=100_000
    )


class RecomputeOut(BaseModel):
    batch_id: str
    changed: int
    rule_set: str


@router.post("/recompute", response_model=RecomputeOut)
def recompute(body: RecomputeIn, session: SessionDep, principal: CurrentPrincipal) -> RecomputeOut:
    """Recompute a region (default: the caller's) or a list of people; writes only changes."""
    result = store.recompute(
        db_session=session,
        principal=principal,
        region_code=body.region,
        person_ids=body.person_ids,
    )
    return RecomputeOut(**result.__dict__)


# Manual changes -------------------------------------------------------------------------------


class RequestIn(BaseModel):
    person_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(max_length=10_000)
    colour: Line = Field(max_length=6)
    reason: Text = Field(max_length=2000)
    evidence_type: Line = Field(max_length=24)
    evidence_id: int = Field(ge=1, le=2**63 - 1)
    expires_at: datetime | None = None


class RequestRead(BaseModel):
    id: int
    colour: str
    reason: str
    evidence_type: str
    evidence_id: str
    region_code: str
    people: int
    status: str
    requested_by: int | None
    requested_at: datetime
    decided_by: int | None
    decided_at: datetime | None
    decision_note: str
    expires_at: datetime | None
    person_ids: list[int] | None = None


def _request(r: ManualRequest, person_ids: list[int] | None = None) -> RequestRead:
    return RequestRead(
        id=r.id,
        colour=r.colour,
        reason=r.reason,
        evidence_type=r.evidence_type,
        evidence_id=r.evidence_id,
        region_code=r.region_code,
        people=r.people,
        status=r.status,
        requested_by=r.requested_by,
        requested_at=r.requested_at,
        decided_by=r.decided_by,
        decided_at=r.decided_at,
        decision_note=r.decision_note,
        expires_at=r.expires_at,
        person_ids=person_ids,
    )


def _audited_problem(request: Request, err: BastionError) -> JSONResponse:
    """Answer a refusal whose audit entry must be kept (the transaction still commits)."""
    lang = request_language(request)
    return problem(
        err.status, err.message(lang), errors=[p.render(lang) for p in err.problems], code=err.key
    )


@router.post("/requests", response_model=RequestRead, status_code=201)
def create_request(
    body: RequestIn, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> Any:
    try:
        req = manual.create_request(
            db_session=session,
            principal=principal,
            data=manual.RequestIn(**body.model_dump()),
        )
    except BastionError as err:
        if manual.is_audited(err):
            return _audited_problem(request, err)
        raise
    return _request(req, manual.request_people(session, req.id))


@router.get("/requests", response_model=list[RequestRead])
def list_requests(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[Line | None, Query(max_length=12)] = None,
) -> list[RequestRead]:
    return [
        _request(r)
        for r in manual.list_requests(db_session=session, principal=principal, status=status)
    ]


@router.get("/requests/{request_id}", response_model=RequestRead)
def get_request(request_id: RowId, session: SessionDep, principal: CurrentPrincipal) -> RequestRead:
    req = manual.get_request(db_session=session, principal=principal, request_id=request_id)
    return _request(req, manual.request_people(session, req.id))


class DecisionIn(BaseModel):
    note: Text = Field(default="", max_length=2000)


def _decide(
    request_id: int,
    body: DecisionIn,
    request: Request,
    session: Any,
    principal: Any,
    approve: bool,
) -> Any:
    try:
        req = manual.decide(
            db_session=session,
            principal=principal,
            request_id=request_id,
            approve=approve,
            note=body.note,
        )
    except BastionError as err:
        if manual.is_audited(err):
            return _audited_problem(request, err)
        raise
    return _request(req)


@router.post("/requests/{request_id}/approve", response_model=RequestRead)
def approve_request(
    request_id: RowId,
    body: DecisionIn,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> Any:
    """Approve (a second, different user with healthcode.approve); the change applies at once."""
    return _decide(request_id, body, request, session, principal, True)


@router.post("/requests/{request_id}/refuse", response_model=RequestRead)
def refuse_request(
    request_id: RowId,
    body: DecisionIn,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> Any:
    return _decide(request_id, body, request, session, principal, False)


class AlarmRead(BaseModel):
    id: int
    kind: str
    province_code: str
    region_code: str
    request_id: int | None
    message: str
    raised_by: int | None
    raised_at: datetime


@router.get("/alarms", response_model=list[AlarmRead])
def alarms(request: Request, session: SessionDep, principal: CurrentPrincipal) -> list[AlarmRead]:
    """Alarms for province-level administrators (bulk manual requests)."""
    import json

    from bastion.core.i18n import t

    lang = request_language(request)

    def read(a: CodeAlarm) -> AlarmRead:
        return AlarmRead(
            id=a.id,
            kind=a.kind,
            province_code=a.province_code,
            region_code=a.region_code,
            request_id=a.request_id,
            message=t(a.message_key, lang, **json.loads(a.params)),
            raised_by=a.raised_by,
            raised_at=a.raised_at,
        )

    return [read(a) for a in manual.list_alarms(db_session=session, principal=principal)]


# Contests -------------------------------------------------------------------------------------


class ContestIn(BaseModel):
    statement: Text = Field(min_length=1, max_length=4000)


class ReviewRead(BaseModel):
    id: int
    person_id: int
    region_code: str
    colour: str
    rule: str
    evidence_type: str | None
    evidence_id: str | None
    statement: str
    status: str
    created_at: datetime


def _review(r: ReviewRequest) -> ReviewRead:
    return ReviewRead(
        id=r.id,
        person_id=r.person_id,
        region_code=r.region_code,
        colour=r.colour,
        rule=r.rule,
        evidence_type=r.evidence_type,
        evidence_id=r.evidence_id,
        statement=r.statement,
        status=r.status,
        created_at=r.created_at,
    )


@router.post("/reviews", response_model=ReviewRead, status_code=201)
def contest(body: ContestIn, session: SessionDep, principal: CurrentPrincipal) -> ReviewRead:
    """The caller contests their own status (a review request, until appeals exist)."""
    return _review(
        manual.contest(db_session=session, principal=principal, statement=body.statement)
    )


@router.get("/reviews", response_model=list[ReviewRead])
def reviews(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[Line | None, Query(max_length=12)] = "open",
) -> list[ReviewRead]:
    return [
        _review(r)
        for r in manual.list_reviews(db_session=session, principal=principal, status=status)
    ]


# Proxy bindings -------------------------------------------------------------------------------


class BindingIn(BaseModel):
    #: The holder's ID number, in the body (never a URL).
    id_number: Line = Field(min_length=1, max_length=40)
    relation: Line = Field(max_length=24)


class BindingAnswer(BaseModel):
    #: Which document recorded the holder's consent (a reference, one line).
    consent_document: Line = Field(default="", max_length=200)


class BindingRead(BaseModel):
    id: int
    relation: str
    status: str
    region_code: str
    requested_at: datetime
    decided_at: datetime | None
    consent_via: str | None
    #: True when the caller is the holder (may accept), False when the caller is the proxy.
    holder: bool


def _binding(b: ProxyBinding, principal: Any) -> BindingRead:
    return BindingRead(
        id=b.id,
        relation=b.relation,
        status=b.status,
        region_code=b.region_code,
        requested_at=b.requested_at,
        decided_at=b.decided_at,
        consent_via=b.consent_via,
        holder=principal.person_id is not None and principal.person_id == b.holder_person_id,
    )


class BindingAck(BaseModel):
    #: Always true: whether the number is registered is not revealed.
    requested: bool


@router.post("/proxy", response_model=BindingAck, status_code=202)
def request_binding(
    body: BindingIn, session: SessionDep, principal: CurrentPrincipal
) -> BindingAck:
    """Ask a holder to let the caller see their code; nothing is shown until they accept."""
    views.request_binding(
        db_session=session, principal=principal, id_number=body.id_number, relation=body.relation
    )
    return BindingAck(requested=True)


@router.get("/proxy", response_model=list[BindingRead])
def list_bindings(session: SessionDep, principal: CurrentPrincipal) -> list[BindingRead]:
    return [
        _binding(b, principal) for b in views.list_bindings(db_session=session, principal=principal)
    ]


@router.post("/proxy/{binding_id}/accept", response_model=BindingRead)
def accept_binding(
    binding_id: RowId, body: BindingAnswer, session: SessionDep, principal: CurrentPrincipal
) -> BindingRead:
    """The holder accepts; or a grid worker on the holder's documented consent."""
    b = views.answer_binding(
        db_session=session,
        principal=principal,
        binding_id=binding_id,
        accept=True,
        consent_document=body.consent_document,
    )
    return _binding(b, principal)


@router.post("/proxy/{binding_id}/refuse", response_model=BindingRead)
def refuse_binding(
    binding_id: RowId, session: SessionDep, principal: CurrentPrincipal
) -> BindingRead:
    b = views.answer_binding(
        db_session=session, principal=principal, binding_id=binding_id, accept=False
    )
    return _binding(b, principal)


@router.post("/proxy/{binding_id}/revoke", response_model=BindingRead)
def revoke_binding(
    binding_id: RowId, session: SessionDep, principal: CurrentPrincipal
) -> BindingRead:
    b = views.revoke_binding(db_session=session, principal=principal, binding_id=binding_id)
    return _binding(b, principal)


class ProxyRead(BaseModel):
    binding_id: int
    relation: str
    name_masked: str
    id_masked: str
    status: StatusRead


@router.get("/proxy/{binding_id}/status", response_model=ProxyRead)
def proxy_status(
    binding_id: RowId, request: Request, session: SessionDep, principal: CurrentPrincipal
) -> ProxyRead:
    """The holder's colour and reason, masked, through an accepted binding."""
    v = views.proxy_lookup(
        db_session=session,
        principal=principal,
        binding_id=binding_id,
        lang=request_language(request),
    )
    return ProxyRead(
        binding_id=v.binding_id,
        relation=v.relation,
        name_masked=v.name_masked,
        id_masked=v.id_masked,
        status=_status(v.status),
    )
