"""The flow from lab results to cases, contacts and placements, in one transaction.

After a results upload lands (:func:`bastion.testing.results.upload_results`, which runs
:func:`bastion.testing.pools.process_results` for each chunk), the people it made positive — an
escalated single-tube retest (after a positive pool or a positive antigen test) or a positive
single tube — become cases (set-based, one open case per person, idempotent), those cases'
close and secondary contacts are expanded over the exposure graph, and every new case and
contact is handed to isolation (``bastion.isolation.service.place_needs``). All of it in the
caller's transaction: the API request or the CLI command commits it, or none of it.

A result changed in place (a result conflict resolved for the other result,
:func:`bastion.testing.results.resolve_conflict`) runs the very same steps for its tube through
:func:`after_result_change`: the chunk step of an upload
(:func:`bastion.testing.results.upload.process_results`: coverage counters, holds, retests,
withdrawn holds), then :func:`cases_and_contacts_from_results`, then the health codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.auth import Principal, system_principal
from bastion.testing import results
from bastion.testing.models import TubeMember
from bastion.testing.results import RawResult, ResultReport
from bastion.testing.results.upload import process_results
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


@dataclass
class ChangeOutcome:
    """What a result changed in place set in motion (:func:`after_result_change`)."""

    #: The upload-shaped report: ``pool_summaries`` (one) and ``tracing``.
    report: ResultReport
    #: Cases, contacts and placements (the report's ``tracing``).
    tracing: TracingOutcome
    #: People whose health code was recomputed, and how many of them changed colour or reason.
    recomputed: int = 0
    codes_changed: int = 0


def after_result_change(
    *,
    db_session: Session,
    principal: Principal,
    tube_ids: Sequence[int],
    cause: str = "result_conflict",
) -> ChangeOutcome:
    """Run, for ``tube_ids`` whose result was just changed in place (the old value already
    taken out of the coverage counters with ``coverage.remove_results``), what an upload runs
    for the tubes of a chunk, in the caller's transaction and with the same set-based steps:
    the chunk step (coverage counters, holds and retest tasks of a positive pool, retest
    answers, the withdrawal of the hold of a pool no longer positive, retests owed for an
    invalid tube), then cases, contacts and placements for the people made positive, then the
    health codes of everyone the upload flow would recompute plus the tubes' own members (a
    tube's negative result counts for zone rules, and a positive single tube taken back changes
    no hold). The testing and tracing steps act as the system (the resolver, command staff,
    holds no results.write; their own action is audited by the caller); the health-code batch
    is sealed under ``principal`` with ``cause``."""
    from bastion.healthcode.store import people_touched_by_results, recompute_people

    report = ResultReport()
    system = system_principal()
    summary = process_results(db_session, system, list(tube_ids))
    if summary is not None:
        report.pool_summaries.append(summary)
    tracing = cases_and_contacts_from_results(
        db_session=db_session, principal=system, report=report
    )
    report.tracing = tracing  # type: ignore[attr-defined]
    people = set(people_touched_by_results(db_session, report))
    if tube_ids:
        people.update(
            db_session.execute(
                select(TubeMember.person_id).where(TubeMember.tube_id.in_(sorted(set(tube_ids))))
            ).scalars()
        )
    outcome = ChangeOutcome(report=report, tracing=tracing, recomputed=len(people))
    if people:
        codes = recompute_people(
            db_session=db_session, person_ids=sorted(people), cause=cause, actor=principal
        )
        outcome.codes_changed = codes.changed
    return outcome


def _recompute_health_codes(db_session: Session, report: ResultReport) -> None:
    """Last step: targeted health-code recompute of everyone the upload and the flow touched
    (held, released, escalated, new cases and their contacts)."""
    from bastion.healthcode.store import recompute_after_results

    recompute_after_results(db_session=db_session, report=report)
