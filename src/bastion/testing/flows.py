"""The flow from lab results to cases, contacts and placements, in one transaction.

After a results upload lands (:func:`bastion.testing.results.upload_results`, which runs
:func:`bastion.testing.pools.process_results` for each chunk), the people it made positive — an
escalated single-tube retest (after a positive pool or a positive antigen test) or a positive
single tube — become cases (set-based, one open case per person, idempotent), those cases'
close and secondary contacts are expanded over the exposure graph, and every new case and
contact is handed to isolation (``bastion.isolation.service.place_needs``). All of it in the
caller's transaction: the API request or the CLI command commits it, or none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy.orm import Session

from bastion.core.auth import Principal
from bastion.testing import results
from bastion.testing.results import RawResult, ResultReport
from bastion.tracing import handover
from bastion.tracing import service as tracing_service


@dataclass
class TracingOutcome:
    """What the results set in motion for tracing and isolation."""

    case_ids: list[int] = field(default_factory=list)
    close_contacts: int = 0
    secondary_contacts: int = 0
    placements: int = 0


def positives_of(report: ResultReport) -> list[int]:
    """The people the upload made positive (escalated retests and positive single tubes)."""
    people: set[int] = set()
    for summary in report.pool_summaries:
        people.update(getattr(summary, "escalated", []))
        people.update(getattr(summary, "positive", []))
    return sorted(people)


def cases_and_contacts_from_results(
    *, db_session: Session, principal: Principal, report: ResultReport
) -> TracingOutcome:
    """Cases for the upload's positives, their contacts expanded, all handed to isolation."""
    outcome = TracingOutcome()
    people = positives_of(report)
    if not people:
        return outcome
    outcome.case_ids = tracing_service.cases_from_positives(
        db_session=db_session, principal=principal, person_ids=people
    )
    if not outcome.case_ids:
        return outcome
    expanded = tracing_service.expand_new_cases(
        db_session=db_session, principal=principal, case_ids=outcome.case_ids
    )
    outcome.close_contacts = len(expanded.close_ids)
    outcome.secondary_contacts = len(expanded.secondary_ids)
    placed = handover.hand_over(
        db_session,
        case_ids=outcome.case_ids,
        contact_ids=expanded.close_ids + expanded.secondary_ids,
    )
    outcome.placements = int(getattr(placed, "created", 0) or 0)
    return outcome


def upload_results(
    *,
    db_session: Session,
    principal: Principal,
    rows: Iterable[RawResult],
    on_chunk: Callable[[ResultReport], None] | None = None,
    **kwargs: Any,
) -> ResultReport:
    """:func:`bastion.testing.results.upload_results`, then the flow to cases and contacts.
    The report's ``tracing`` attribute holds the :class:`TracingOutcome`."""
    report = results.upload_results(
        db_session=db_session, principal=principal, rows=rows, on_chunk=on_chunk, **kwargs
    )
    report.tracing = cases_and_contacts_from_results(  # type: ignore[attr-defined]
        db_session=db_session, principal=principal, report=report
    )
    _recompute_health_codes(db_session, report)
    return report


def import_results_file(
    *,
    db_session: Session,
    principal: Principal,
    binary: IO[bytes],
    on_chunk: Callable[[ResultReport], None] | None = None,
    **kwargs: Any,
) -> ResultReport:
    """:func:`bastion.testing.results.import_results_file`, then the flow to cases and
    contacts."""
    report = results.import_results_file(
        db_session=db_session, principal=principal, binary=binary, on_chunk=on_chunk, **kwargs
    )
    report.tracing = cases_and_contacts_from_results(  # type: ignore[attr-defined]
        db_session=db_session, principal=principal, report=report
    )
    _recompute_health_codes(db_session, report)
    return report


def _recompute_health_codes(db_session: Session, report: ResultReport) -> None:
    """Last step: targeted health-code recompute of everyone the upload and the flow touched
    (held, released, escalated, new cases and their contacts)."""
    from bastion.healthcode.store import recompute_after_results

    recompute_after_results(db_session=db_session, report=report)
