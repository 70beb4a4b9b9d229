"""Manual changes under four eyes, the alarms they raise, and the person's contest.

A request names people, a colour (yellow or red: a colour is lowered by fixing the record it
rests on, never by hand), a reason and an evidence record that must exist. Red needs a case or
contact record that concerns every person named (the case's own person, or a contact traced from
it; a contact record names its own person). A second user with ``healthcode_approve``, never the
requester, approves or refuses. Approval makes the manual rule part of the people's status
(``<version>:manual_red#<request>``) through the ordinary recompute, so history and seals are the
same as for any change.

Every request, approval and refusal is audited. A refused attempt leaves its audit entry even
though nothing else is written: the service raises an :class:`Audited` error *after* recording,
and the API and CLI commit the entry before answering (see ``commit_refusal``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.config import get_settings
from bastion.core.errors import BastionError, Forbidden, InvalidInput, InvalidTransition, NotFound
from bastion.healthcode import store
from bastion.healthcode.models import (
    CodeAlarm,
    CodeStatus,
    ManualRequest,
    ManualRequestPerson,
    ReviewRequest,
)
from bastion.registry.models import Person

#: Evidence records a manual request may rest on: type → (table, id column).
EVIDENCE_TABLES: dict[str, str] = {
    "case": "bastion.tracing.models:Case",
    "contact": "bastion.tracing.models:Contact",
    "placement": "bastion.isolation.models:Placement",
    "pool_hold": "bastion.testing.models:PoolHold",
    "antigen": "bastion.testing.models:AntigenReport",
    "tube": "bastion.testing.models:Tube",
    "round": "bastion.testing.models:Round",
    "zone": "bastion.regions.models:Zone",
}
RED_EVIDENCE = ("case", "contact")
MAX_PEOPLE = 10_000


def alarm_threshold() -> int:
    """People in one request above which province administrators are alarmed
    (``BASTION_HEALTHCODE_ALARM_THRESHOLD``, default 20)."""
    return get_settings().healthcode_alarm_threshold


def _model(path: str) -> Any:
    import importlib

    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def _refuse(
    db_session: Session,
    principal: Principal,
    action: str,
    err: BastionError,
    *,
    target_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> BastionError:
    """Audit a refused attempt and mark the error so the edge commits the entry."""
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action=action,
        target_type="code_manual_request",
        target_id=target_id,
        region_code=principal.region_code or None,
        details={"refused": err.key, "problems": [p.reason for p in err.problems]}
        | (details or {}),
    )
    err.audited = True  # type: ignore[attr-defined]
    return err


def is_audited(err: BaseException) -> bool:
    return bool(getattr(err, "audited", False))


@dataclass(frozen=True)
class RequestIn:
    person_ids: Sequence[int]
    colour: str
    reason: str
    evidence_type: str
    evidence_id: int
    expires_at: datetime | None = None


def _related(db_session: Session, evidence_type: str, record: Any, ids: list[int]) -> bool:
    """Red evidence concerns every person named."""
    if evidence_type == "contact":
        return ids == [record.person_id] and record.level == "close"
    from bastion.tracing.models import Contact, ContactLink

    linked = set(
        db_session.execute(
            select(Contact.person_id)
            .outerjoin(ContactLink, ContactLink.contact_id == Contact.id)
            .where(
                Contact.person_id.in_(ids),
                Contact.level == "close",
                or_(Contact.case_id == record.id, ContactLink.case_id == record.id),
            )
        ).scalars()
    )
    linked.add(record.person_id)
    return set(ids) <= linked


def create_request(*, db_session: Session, principal: Principal, data: RequestIn) -> ManualRequest:
    """Record a request (pending). Refusals are audited (see the module's doc)."""
    principal.require(Perm.healthcode_request)
    ids = sorted({int(i) for i in data.person_ids})
    attempt = {
        "colour": data.colour,
        "people": len(ids),
        "evidence_type": data.evidence_type,
        "evidence_id": str(data.evidence_id),
    }
    action = "healthcode.manual_request"

    def refuse(err: BastionError) -> BastionError:
        return _refuse(db_session, principal, action, err, details=attempt)

    if not ids:
        raise refuse(InvalidInput.one("person_ids", "field.required"))
    if len(ids) > MAX_PEOPLE:
        raise refuse(InvalidInput.one("person_ids", "healthcode.too_many_people", max=MAX_PEOPLE))
    if data.colour not in ("yellow", "red"):
        raise refuse(InvalidInput.one("colour", "healthcode.manual_colour"))
    if not data.reason.strip():
        raise refuse(InvalidInput.one("reason", "field.required"))
    if data.evidence_type not in EVIDENCE_TABLES:
        raise refuse(InvalidInput.one("evidence_type", "healthcode.evidence_type_unknown"))
    if data.colour == "red" and data.evidence_type not in RED_EVIDENCE:
        raise refuse(InvalidInput.one("evidence_type", "healthcode.red_needs_case"))
    record = None
    if 0 < data.evidence_id < 2**63:
        record = db_session.get(_model(EVIDENCE_TABLES[data.evidence_type]), data.evidence_id)
    if record is None:
        raise refuse(InvalidInput.one("evidence_id", "healthcode.evidence_missing"))
    people = db_session.execute(
        select(Person.id, Person.region_code).where(Person.id.in_(ids))
    ).all()
    if len(people) != len(ids):
        raise refuse(InvalidInput.one("person_ids", "healthcode.person_unknown"))
    for _, code in people:
        if not principal.scope.contains(code):
            raise refuse(Forbidden("error.region_outside", region=code))
    if data.colour == "red" and not _related(db_session, data.evidence_type, record, ids):
        raise refuse(InvalidInput.one("evidence_id", "healthcode.evidence_unrelated"))
    now = clock.now()
    if data.expires_at is not None and data.expires_at <= now:
        raise refuse(InvalidInput.one("expires_at", "healthcode.expiry_past"))
    req = ManualRequest(
        colour=data.colour,
        reason=data.reason.strip(),
        evidence_type=data.evidence_type,
        evidence_id=str(data.evidence_id),
        region_code=principal.region_code,
        people=len(ids),
        status="pending",
        requested_by=principal.user_id,
        requested_at=now,
        expires_at=data.expires_at,
    )
    db_session.add(req)
    db_session.flush()
    db_session.add_all(ManualRequestPerson(request_id=req.id, person_id=i) for i in ids)
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action=action,
        target_type="code_manual_request",
        target_id=req.id,
        region_code=principal.region_code or None,
        details=attempt | {"reason": req.reason},
    )
    if len(ids) > alarm_threshold():
        _raise_alarm(db_session, principal, req)
    return req


def _raise_alarm(db_session: Session, principal: Principal, req: ManualRequest) -> None:
    province = (principal.region_code or "22")[:2] + "0000"
    params = {"request": req.id, "people": req.people, "threshold": alarm_threshold()}
    db_session.add(
        CodeAlarm(
            kind="bulk_manual_request",
            province_code=province,
            region_code=req.region_code,
            request_id=req.id,
            message_key="healthcode.alarm.bulk_manual_request",
            params=json.dumps(params),
            raised_by=principal.user_id,
            raised_at=clock.now(),
        )
    )
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="healthcode.alarm",
        target_type="code_manual_request",
        target_id=req.id,
        region_code=province,
        details=params,
    )


def get_request(*, db_session: Session, principal: Principal, request_id: int) -> ManualRequest:
    principal.require(Perm.healthcode_read)
    req = db_session.get(ManualRequest, request_id)
    if req is None or not principal.scope.contains(req.region_code):
        raise NotFound("healthcode.request_not_found", request=str(request_id))
    return req


def request_people(db_session: Session, request_id: int) -> list[int]:
    return list(
        db_session.execute(
            select(ManualRequestPerson.person_id)
            .where(ManualRequestPerson.request_id == request_id)
            .order_by(ManualRequestPerson.person_id)
        ).scalars()
    )


def list_requests(
    *, db_session: Session, principal: Principal, status: str | None = None, limit: int = 100
) -> list[ManualRequest]:
    principal.require(Perm.healthcode_read)
    stmt = select(ManualRequest).where(principal.scope.clause(ManualRequest.region_code))
    if status:
        stmt = stmt.where(ManualRequest.status == status)
    stmt = stmt.order_by(ManualRequest.id.desc()).limit(max(1, min(limit, 500)))
    return list(db_session.execute(stmt).scalars())


def decide(
    *,
    db_session: Session,
    principal: Principal,
    request_id: int,
    approve: bool,
    note: str = "",
) -> ManualRequest:
    """Approve or refuse a pending request: a second, different user with approval rights."""
    action = "healthcode.manual_approve" if approve else "healthcode.manual_refuse"

    def refuse(err: BastionError) -> BastionError:
        return _refuse(db_session, principal, action, err, target_id=request_id)

    if not principal.can(Perm.healthcode_approve):
        raise refuse(
            Forbidden(
                "error.permission_missing",
                permission=Perm.healthcode_approve.value,
                role=principal.role,
            )
        )
    req = db_session.get(ManualRequest, request_id)
    if req is None or not principal.scope.contains(req.region_code):
        raise refuse(NotFound("healthcode.request_not_found", request=str(request_id)))
    if req.requested_by is not None and req.requested_by == principal.user_id:
        raise refuse(Forbidden("healthcode.self_approval"))
    if req.status != "pending":
        raise refuse(InvalidTransition("healthcode.request_decided", status=req.status))
    req.status = "approved" if approve else "refused"
    req.decided_by = principal.user_id
    req.decided_at = clock.now()
    req.decision_note = note.strip()
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action=action,
        target_type="code_manual_request",
        target_id=req.id,
        region_code=req.region_code,
        details={"people": req.people, "colour": req.colour, "note": req.decision_note},
    )
    if approve:
        store.recompute_people(
            db_session=db_session,
            person_ids=request_people(db_session, req.id),
            cause="manual",
            actor=principal,
        )
    return req


def list_alarms(*, db_session: Session, principal: Principal, limit: int = 100) -> list[CodeAlarm]:
    """Alarms go to province-level administrators: an administrator (users_manage) sees the
    alarms of the provinces their region covers, so a city administrator sees none."""
    principal.require(Perm.users_manage)
    stmt = (
        select(CodeAlarm)
        .where(principal.scope.clause(CodeAlarm.province_code))
        .order_by(CodeAlarm.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    return list(db_session.execute(stmt).scalars())


# Contest (review requests) --------------------------------------------------------------------


def contest(*, db_session: Session, principal: Principal, statement: str) -> ReviewRequest:
    """The person contests their own current status (kept until the appeals work exists)."""
    principal.require(Perm.self_read)
    if principal.person_id is None:
        raise NotFound("healthcode.no_person")
    if not statement.strip():
        raise InvalidInput.one("statement", "field.required")
    person = db_session.get(Person, principal.person_id)
    if person is None:
        raise NotFound("healthcode.no_person")
    status = db_session.get(CodeStatus, person.id)
    if status is None or status.colour == "green":
        raise InvalidTransition("healthcode.nothing_to_contest")
    review = ReviewRequest(
        person_id=person.id,
        region_code=person.region_code,
        colour=status.colour,
        rule=status.rule,
        evidence_type=status.evidence_type,
        evidence_id=status.evidence_id,
        statement=statement.strip(),
        status="open",
        created_by=principal.user_id,
        created_at=clock.now(),
    )
    db_session.add(review)
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="healthcode.contest",
        target_type="code_review_request",
        target_id=review.id,
        region_code=person.region_code,
        details={"colour": status.colour, "rule": status.rule},
    )
    return review


def list_reviews(
    *, db_session: Session, principal: Principal, status: str | None = "open", limit: int = 100
) -> list[ReviewRequest]:
    principal.require(Perm.healthcode_read)
    stmt = select(ReviewRequest).where(principal.scope.clause(ReviewRequest.region_code))
    if status:
        stmt = stmt.where(ReviewRequest.status == status)
    stmt = stmt.order_by(ReviewRequest.id.desc()).limit(max(1, min(limit, 500)))
    return list(db_session.execute(stmt).scalars())
