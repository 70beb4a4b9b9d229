"""A person's status and history in plain words, and proxy bindings.

Staff with ``healthcode_read`` read people in their subtree; a resident reads their own
(``self_read``). A proxy (a family member) reads the holder's code only through a binding the
holder accepted, or a grid worker recorded on the holder's documented consent; never by name and
ID number alone. What a proxy sees is masked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import Forbidden, InvalidInput, InvalidTransition, NotFound
from bastion.core.i18n import Language, t
from bastion.healthcode.models import CodeHistory, CodeStatus, ProxyBinding
from bastion.healthcode.rules import POPUPS
from bastion.registry import service as registry_service
from bastion.registry.idnumber import mask_name
from bastion.registry.models import Person

RELATIONS = ("parent", "child", "spouse", "sibling", "grandparent", "grandchild", "other")


@dataclass(frozen=True)
class StatusView:
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


def _rule_key(rule: str) -> str:
    return rule.split(":", 1)[-1].split("#", 1)[0]


def status_view(status: CodeStatus | None, person_id: int, lang: Language) -> StatusView:
    if status is None:
        return StatusView(
            person_id,
            "green",
            "default",
            "healthcode.reason.default",
            t("healthcode.reason.default", lang),
            None,
            None,
            None,
            None,
            None,
            None,
            0,
            None,
        )
    popup = POPUPS.get(status.popup or "")
    params = {"evidence": f"{status.evidence_type} {status.evidence_id}"}
    return StatusView(
        person_id=person_id,
        colour=status.colour,
        rule=status.rule,
        reason_key=status.reason_key,
        reason=t(status.reason_key, lang, **params),
        evidence_type=status.evidence_type,
        evidence_id=status.evidence_id,
        popup=status.popup,
        popup_reason=t(popup.reason_key, lang) if popup else None,
        popup_clears=t(popup.clears_key, lang) if popup else None,
        valid_until=status.valid_until,
        version=status.version,
        changed_at=status.changed_at,
    )


def _person_for(db_session: Session, principal: Principal, person_id: int | None) -> Person:
    """The person a status read concerns: staff in scope, or the resident themselves."""
    if person_id is None or (principal.person_id is not None and person_id == principal.person_id):
        principal.require(Perm.self_read)
        if principal.person_id is None:
            raise NotFound("healthcode.no_person")
        person = db_session.get(Person, principal.person_id)
    else:
        principal.require(Perm.healthcode_read)
        person = db_session.get(Person, person_id) if 0 < person_id < 2**63 else None
        if person is None or not principal.scope.contains(person.region_code):
            raise NotFound("person.not_found")
    if person is None:
        raise NotFound("person.not_found")
    return person


def get_status(
    *, db_session: Session, principal: Principal, person_id: int | None, lang: Language = "zh-CN"
) -> StatusView:
    person = _person_for(db_session, principal, person_id)
    return status_view(db_session.get(CodeStatus, person.id), person.id, lang)


@dataclass(frozen=True)
class HistoryView:
    at: datetime
    old_colour: str | None
    new_colour: str
    rule: str
    reason: str
    evidence_type: str | None
    evidence_id: str | None
    popup: str | None
    cause: str


def get_history(
    *,
    db_session: Session,
    principal: Principal,
    person_id: int | None,
    lang: Language = "zh-CN",
    limit: int = 100,
) -> list[HistoryView]:
    person = _person_for(db_session, principal, person_id)
    rows = db_session.execute(
        select(CodeHistory)
        .where(CodeHistory.person_id == person.id)
        .order_by(CodeHistory.at.desc(), CodeHistory.id.desc())
        .limit(max(1, min(limit, 500)))
    ).scalars()
    return [
        HistoryView(
            at=r.at,
            old_colour=r.old_colour,
            new_colour=r.new_colour,
            rule=r.rule,
            reason=t(r.reason_key, lang, evidence=f"{r.evidence_type} {r.evidence_id}"),
            evidence_type=r.evidence_type,
            evidence_id=r.evidence_id,
            popup=r.popup,
            cause=r.cause,
        )
        for r in rows
    ]


# Proxy bindings -------------------------------------------------------------------------------


def _audit(
    db_session: Session, principal: Principal, action: str, b: ProxyBinding, **d: Any
) -> None:
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action=action,
        target_type="code_proxy_binding",
        target_id=b.id,
        region_code=b.region_code,
        details={"holder": b.holder_person_id, "proxy_user": b.proxy_user_id} | d,
    )


def request_binding(
    *, db_session: Session, principal: Principal, id_number: str, relation: str
) -> ProxyBinding | None:
    """A resident asks to look up a holder's code. The holder is found by ID number (sent in the
    body), but nothing is shown until the holder accepts; the answer is the same whether or not
    the number is registered (no enumeration). Audited."""
    principal.require(Perm.self_read)
    if principal.user_id is None:
        raise Forbidden("healthcode.proxy_needs_user")
    if relation not in RELATIONS:
        raise InvalidInput.one(
            "relation", "healthcode.relation_unknown", choices=", ".join(RELATIONS)
        )
    holder = registry_service.get_by_id_number(db_session=db_session, number=id_number.strip())
    if holder is None or holder.id == principal.person_id:
        audit_service.record(
            db_session=db_session,
            actor=principal,
            action="healthcode.proxy_request",
            target_type="code_proxy_binding",
            details={"found": False},
        )
        return None
    existing = db_session.execute(
        select(ProxyBinding).where(
            ProxyBinding.holder_person_id == holder.id,
            ProxyBinding.proxy_user_id == principal.user_id,
            ProxyBinding.status.in_(("requested", "accepted")),
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    b = ProxyBinding(
        holder_person_id=holder.id,
        proxy_user_id=principal.user_id,
        relation=relation,
        region_code=holder.region_code,
        status="requested",
        requested_at=clock.now(),
    )
    db_session.add(b)
    db_session.flush()
    _audit(db_session, principal, "healthcode.proxy_request", b, relation=relation)
    return b


def _binding(db_session: Session, binding_id: int) -> ProxyBinding:
    b = db_session.get(ProxyBinding, binding_id) if 0 < binding_id < 2**63 else None
    if b is None:
        raise NotFound("healthcode.binding_not_found")
    return b


def answer_binding(
    *,
    db_session: Session,
    principal: Principal,
    binding_id: int,
    accept: bool,
    consent_document: str = "",
) -> ProxyBinding:
    """The holder accepts or refuses; or a grid worker (registry_write + healthcode_read in the
    holder's region) records the holder's documented consent (the document reference is
    required)."""
    b = _binding(db_session, binding_id)
    holder_self = principal.person_id is not None and principal.person_id == b.holder_person_id
    if holder_self:
        principal.require(Perm.self_read)
        via = "holder"
    else:
        principal.require(Perm.registry_write)
        principal.require(Perm.healthcode_read)
        if not principal.scope.contains(b.region_code):
            raise NotFound("healthcode.binding_not_found")
        if accept and not consent_document.strip():
            raise InvalidInput.one("consent_document", "healthcode.consent_required")
        via = "grid_worker"
    if b.status != "requested":
        raise InvalidTransition("healthcode.binding_answered", status=b.status)
    b.status = "accepted" if accept else "refused"
    b.decided_by = principal.user_id
    b.decided_at = clock.now()
    b.consent_via = via
    b.consent_document = consent_document.strip()
    db_session.flush()
    _audit(
        db_session,
        principal,
        "healthcode.proxy_accept" if accept else "healthcode.proxy_refuse",
        b,
        via=via,
        document=b.consent_document,
    )
    return b


def revoke_binding(*, db_session: Session, principal: Principal, binding_id: int) -> ProxyBinding:
    """Either side ends an accepted or requested binding."""
    principal.require(Perm.self_read)
    b = _binding(db_session, binding_id)
    if principal.user_id != b.proxy_user_id and principal.person_id != b.holder_person_id:
        raise NotFound("healthcode.binding_not_found")
    if b.status not in ("requested", "accepted"):
        raise InvalidTransition("healthcode.binding_answered", status=b.status)
    b.status = "revoked"
    b.decided_at = clock.now()
    db_session.flush()
    _audit(db_session, principal, "healthcode.proxy_revoke", b)
    return b


def list_bindings(*, db_session: Session, principal: Principal) -> list[ProxyBinding]:
    """A resident's bindings, as proxy or as holder; staff (registry_write + healthcode_read):
    the requested ones in their subtree, waiting for documented consent."""
    if principal.can(Perm.self_read):
        clauses = [ProxyBinding.proxy_user_id == principal.user_id]
        if principal.person_id is not None:
            clauses.append(ProxyBinding.holder_person_id == principal.person_id)
        stmt = select(ProxyBinding).where(or_(*clauses))
    else:
        principal.require(Perm.healthcode_read)
        principal.require(Perm.registry_write)
        stmt = select(ProxyBinding).where(
            ProxyBinding.status == "requested", principal.scope.clause(ProxyBinding.region_code)
        )
    return list(db_session.execute(stmt.order_by(ProxyBinding.id.desc()).limit(200)).scalars())


@dataclass(frozen=True)
class ProxyView:
    binding_id: int
    relation: str
    name_masked: str
    id_masked: str
    status: StatusView


def proxy_lookup(
    *, db_session: Session, principal: Principal, binding_id: int, lang: Language = "zh-CN"
) -> ProxyView:
    """The holder's code, masked, through an accepted binding of the caller's. Audited."""
    principal.require(Perm.self_read)
    b = _binding(db_session, binding_id)
    if b.proxy_user_id != principal.user_id:
        raise NotFound("healthcode.binding_not_found")
    if b.status != "accepted":
        raise Forbidden("healthcode.binding_not_accepted")
    holder = db_session.get(Person, b.holder_person_id)
    if holder is None:
        raise NotFound("person.not_found")
    _audit(db_session, principal, "healthcode.proxy_lookup", b)
    return ProxyView(
        binding_id=b.id,
        relation=b.relation,
        name_masked=mask_name(holder.name),
        id_masked=holder.id_masked,
        # The proxy sees the colour and the reason, not the record numbers behind it.
        status=replace(
            status_view(db_session.get(CodeStatus, holder.id), holder.id, lang),
            person_id=0,
            evidence_type=None,
            evidence_id=None,
        ),
    )
