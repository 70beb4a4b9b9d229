"""The tracing service: the one module other domains import (``from bastion.tracing import
service as tracing_service``). Cases (:mod:`.cases`), exposures, contacts and chains
(:mod:`.investigation`), contact expansion (:mod:`.expansion`), figures (:mod:`.figures`),
and the hand-over of new cases and contacts to isolation (:mod:`.handover`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core.auth import Perm, Principal
from bastion.tracing.cases import (
    cases_from_positives,
    close_case,
    create_case,
    get_case,
    list_cases,
    reclassify,
    require_any,
)
from bastion.tracing.chains import Chain, chain_down, chain_up
from bastion.tracing.expansion import ExpansionResult, expand_cases
from bastion.tracing.figures import TracingFigures, figures, latest_case_day
from bastion.tracing.investigation import (
    ExposureReport,
    get_contact,
    links_of,
    list_contacts,
    record_exposures,
    release_contacts,
)


def expand(
    *,
    db_session: Session,
    principal: Principal,
    case_refs: Sequence[str | int],
    day: date | None = None,
) -> ExpansionResult:
    """Compute and store the close (and, when the profile traces them, secondary) contacts of
    the given open cases over the exposure graph, set-based (see :mod:`.expansion`). Refuses a
    caller without the right to write contacts; a case outside the principal's region or
    unknown is NotFound."""
    principal.require(Perm.contacts_write)
    ids = [get_case(db_session=db_session, principal=principal, ref=ref).id for ref in case_refs]
    return _expand(db_session, principal, ids, day)


def expand_new_cases(
    *, db_session: Session, principal: Principal, case_ids: Sequence[int]
) -> ExpansionResult:
    """:func:`expand` for the cases the flow from testing has just opened, under the lab's
    right to record results (the cases were made by :func:`cases_from_positives` in the same
    transaction, so they are not looked up one by one)."""
    require_any(principal, Perm.contacts_write, Perm.results_write)
    return _expand(db_session, principal, list(case_ids), None)


def _expand(
    db_session: Session, principal: Principal, ids: list[int], day: date | None
) -> ExpansionResult:
    result = expand_cases(db_session, ids, day=day)
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="contact.create",
        target_type="case",
        target_id=ids[0] if ids else "",
        details={
            "cases": result.cases,
            "close": len(result.close_ids),
            "secondary": len(result.secondary_ids),
        },
    )
    return result


__all__ = [
    "Chain",
    "ExpansionResult",
    "ExposureReport",
    "TracingFigures",
    "cases_from_positives",
    "chain_down",
    "chain_up",
    "close_case",
    "create_case",
    "expand",
    "expand_new_cases",
    "figures",
    "get_case",
    "get_contact",
    "latest_case_day",
    "links_of",
    "list_cases",
    "list_contacts",
    "reclassify",
    "record_exposures",
    "release_contacts",
]
