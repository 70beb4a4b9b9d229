"""Single-tube result reads, and listing and resolving result conflicts."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from bastion.testing import coverage, rules
from bastion.testing.models import Lab, PoolHold, ResultConflict, Tube, TubeMember

if TYPE_CHECKING:
    from bastion.testing.flows import ChangeOutcome

# One tube, conflicts -----------------------------------------------------------------------


@dataclass(frozen=True)
class TubeResult:
    barcode: str
    state: str
    region_code: str
    lab_code: str | None
    received_at: datetime | None
    tested_at: datetime | None
    uploaded_at: datetime | None
    result: str | None
    ct_orf1ab: float | None
    ct_n: float | None
    open_conflicts: int


def _visible(principal: Principal, tube: Tube, lab: Lab | None) -> bool:
    return principal.scope.contains(tube.region_code) or (
        lab is not None and principal.scope.contains(lab.region_code)
    )


def get_tube_result(*, db_session: Session, principal: Principal, barcode: str) -> TubeResult:
    """A tube's result (if any) with its times, for users whose subtree holds the tube's site
    or its lab; otherwise, or for an unknown tube, 404."""
    principal.require(Perm.testing_read)
    code = rules.normalise_barcode(barcode)
    tube = (
        db_session.execute(select(Tube).where(Tube.barcode == code)).scalar_one_or_none()
        if rules.is_valid_barcode(code)
        else None
    )
    lab = db_session.get(Lab, tube.lab_id) if tube is not None and tube.lab_id else None
    if tube is None or not _visible(principal, tube, lab):
        raise NotFound(
            "result.unknown_tube",
            value=barcode[:40],
            problems=[FieldProblem("tube", "result.unknown_tube", {"value": barcode[:40]})],
        )
    open_conflicts = len(
        db_session.execute(
            select(ResultConflict.id).where(
                ResultConflict.tube_id == tube.id, ResultConflict.resolved_at.is_(None)
            )
        ).all()
    )
    return TubeResult(
        barcode=tube.barcode,
        state=tube.state,
        region_code=tube.region_code,
        lab_code=lab.code if lab else None,
        received_at=tube.received_at,
        tested_at=tube.tested_at,
        uploaded_at=tube.uploaded_at,
        result=tube.result,
        ct_orf1ab=tube.ct_orf1ab,
        ct_n=tube.ct_n,
        open_conflicts=open_conflicts,
    )


@dataclass(frozen=True)
class ConflictView:
    id: int
    tube: str
    lab_code: str
    region_code: str
    #: What the tube holds now (the first result, unless a resolution replaced it).
    current_result: str | None
    current_ct_orf1ab: float | None
    current_ct_n: float | None
    first_result: str
    second_result: str
    second_ct_orf1ab: float | None
    second_ct_n: float | None
    reported_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    note: str


def _conflict_view(conflict: ResultConflict, tube: Tube, lab: Lab) -> ConflictView:
    return ConflictView(
        id=conflict.id,
        tube=tube.barcode,
        lab_code=lab.code,
        region_code=tube.region_code,
        current_result=tube.result,
        current_ct_orf1ab=tube.ct_orf1ab,
        current_ct_n=tube.ct_n,
        first_result=conflict.first_result,
        second_result=conflict.second_result,
        second_ct_orf1ab=conflict.second_ct_orf1ab,
        second_ct_n=conflict.second_ct_n,
        reported_at=conflict.reported_at,
        resolved_at=conflict.resolved_at,
        resolution=conflict.resolution,
        note=conflict.note,
    )


def list_conflicts(
    *, db_session: Session, principal: Principal, open_only: bool = True, limit: int = 500
) -> list[ConflictView]:
    """Result conflicts whose tube's site or lab lies in the user's subtree, oldest first."""
    principal.require(Perm.testing_read)
    stmt = (
        select(ResultConflict, Tube, Lab)
        .join(Tube, Tube.id == ResultConflict.tube_id)
        .join(Lab, Lab.id == ResultConflict.lab_id)
        .where(principal.scope.clause(Tube.region_code) | principal.scope.clause(Lab.region_code))
        .order_by(ResultConflict.reported_at, ResultConflict.id)
        .limit(max(1, min(limit, 5_000)))
    )
    if open_only:
        stmt = stmt.where(ResultConflict.resolved_at.is_(None))
    return [_conflict_view(c, t, lab) for c, t, lab in db_session.execute(stmt)]


@dataclass(frozen=True)
class ResolutionEffects:
    """What a resolution set in motion: the same processing a results upload runs for the tube
    (:func:`bastion.testing.flows.after_result_change`), when the pick changed its result."""

    #: The pick changed what the tube holds (``second`` with a different value); when False
    #: nothing below ran and every figure is zero.
    result_changed: bool = False
    #: The hold of the tube when it is a positive pool (every member held, a retest task each).
    holds: list[int] = field(default_factory=list)
    #: The tube's open hold withdrawn because the tube is no longer positive: its members
    #: released, their hold tasks no longer owed.
    holds_withdrawn: list[int] = field(default_factory=list)
    #: Retest tasks created (positive pool, or invalid result).
    tasks_created: int = 0
    #: Retest answers that followed a retest tube's new result (released ↔ escalated).
    tasks_reanswered: int = 0
    #: Cases opened for the people the new result made positive, and what tracing did for them.
    cases_opened: list[str] = field(default_factory=list)
    close_contacts: int = 0
    secondary_contacts: int = 0
    placements: int = 0
    #: Health codes recomputed (everyone touched, and the tube's members) and how many changed.
    codes_recomputed: int = 0
    codes_changed: int = 0
    #: The tube was a person's own sample (single tube or retest), it was positive and no
    #: longer is, and these cases of its people are open: they are NOT closed automatically
    #: (closing a case is a clinical decision); review them (tracing: close or keep).
    cases_left_open: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ResolvedConflict(ConflictView):
    """The resolved conflict and what its resolution set in motion."""

    effects: ResolutionEffects = field(default_factory=ResolutionEffects)


def _open_cases_of_own_sample(db_session: Session, tube: Tube) -> list[str]:
    """Open cases of the people of ``tube`` when it was their own sample (no pool hold: a case
    of a pooled tube's member rests on their own retest, not on the pool)."""
    from bastion.tracing.models import Case, case_code

    if db_session.execute(select(PoolHold.id).where(PoolHold.tube_id == tube.id)).first():
        return []
    ids = db_session.execute(
        select(Case.id)
        .join(TubeMember, TubeMember.person_id == Case.person_id)
        .where(TubeMember.tube_id == tube.id, Case.status == "open")
        .order_by(Case.id)
    ).scalars()
    return [case_code(i) for i in ids]


def resolve_conflict(
    *, db_session: Session, principal: Principal, conflict_id: int, pick: str, note: str
) -> ResolvedConflict:
    """Settle a conflict by picking the ``first`` result (the tube keeps what it holds) or the
    ``second`` (the tube takes the conflicting result and its Ct values); audited with both
    values, the reason and what it set in motion. Needs ``labs.manage`` (command staff, not the
    lab that produced the conflict). Refuses an unknown pick, an empty or over-long note, an
    unknown conflict or one outside the user's subtree (404), and a conflict already resolved
    (409).

    A pick that changes the tube's result runs, in the same transaction, what an upload of
    that result runs (:func:`bastion.testing.flows.after_result_change`): a positive pool holds
    its members and owes each a retest, a positive single tube or retest opens a case whose
    contacts are traced and placed, an invalid tube owes its members a retest, and the health
    codes of everyone touched (and of the tube's members) are recomputed. The other way round,
    a tube that is no longer positive has its open hold withdrawn (members released, codes
    recomputed) and a retest's answer follows its tube; an open case that rested on the tube
    is not closed, only listed in ``effects.cases_left_open`` (and in the audit entry)."""
    principal.require(Perm.labs_manage)
    problems: list[FieldProblem] = []
    if pick not in ("first", "second"):
        problems.append(FieldProblem("pick", "result.bad_pick", {"value": str(pick)[:20]}))
    reason = note.strip()
    if not reason:
        problems.append(FieldProblem("note", "field.required"))
    elif len(reason) > 200:
        problems.append(FieldProblem("note", "field.too_long", {"max": 200}))
    elif not reason.isprintable():
        problems.append(FieldProblem("note", "field.control_chars"))
    if problems:
        raise InvalidInput(problems=problems)
    # Lock the conflict: two supervisors resolving it at once would both apply (perhaps
    # opposite) picks and both be audited as the final word.
    conflict = db_session.execute(
        select(ResultConflict).where(ResultConflict.id == conflict_id).with_for_update()
    ).scalar_one_or_none()
    tube = db_session.get(Tube, conflict.tube_id) if conflict is not None else None
    lab = db_session.get(Lab, conflict.lab_id) if conflict is not None else None
    if conflict is None or tube is None or lab is None or not _visible(principal, tube, lab):
        raise NotFound(
            "result.conflict_not_found",
            problems=[FieldProblem("id", "result.conflict_not_found")],
        )
    if conflict.resolved_at is not None:
        raise Conflict(
            "result.conflict_resolved",
            problems=[FieldProblem("id", "result.conflict_resolved")],
        )
    before = {"result": tube.result, "ct_orf1ab": tube.ct_orf1ab, "ct_n": tube.ct_n}
    second = {
        "result": conflict.second_result,
        "ct_orf1ab": conflict.second_ct_orf1ab,
        "ct_n": conflict.second_ct_n,
    }
    changed = pick == "second" and before != second
    if changed:
        coverage.remove_results(db_session=db_session, tube_ids=[tube.id])
    if pick == "second":
        tube.result = conflict.second_result
        tube.ct_orf1ab = conflict.second_ct_orf1ab
        tube.ct_n = conflict.second_ct_n
    conflict.resolved_at = clock.now()
    conflict.resolved_by = principal.user_id
    conflict.resolution = pick
    conflict.note = reason
    db_session.flush()
    effects = ResolutionEffects()
    if changed:
        # The flow imports this package (for the upload path): imported when it runs.
        from bastion.testing import flows

        outcome = flows.after_result_change(
            db_session=db_session, principal=principal, tube_ids=[tube.id]
        )
        db_session.refresh(tube)
        effects = _effects(db_session, tube, outcome, taken_back=before["result"] == "positive")
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="result_conflict.resolve",
        target_type="tube",
        target_id=tube.id,
        region_code=tube.region_code,
        details={
            "conflict": conflict.id,
            "tube": tube.barcode,
            "lab": lab.code,
            "pick": pick,
            "held": before,
            "second": second,
            "note": reason,
            "effects": {
                "result_changed": effects.result_changed,
                "holds": effects.holds,
                "holds_withdrawn": effects.holds_withdrawn,
                "tasks_created": effects.tasks_created,
                "tasks_reanswered": effects.tasks_reanswered,
                "cases_opened": effects.cases_opened,
                "codes_changed": effects.codes_changed,
                # Not closed by the resolution: a case is a clinical decision.
                "cases_left_open": effects.cases_left_open,
            },
        },
    )
    view = _conflict_view(conflict, tube, lab)
    return ResolvedConflict(
        **{f.name: getattr(view, f.name) for f in fields(view)}, effects=effects
    )


def _effects(
    db_session: Session, tube: Tube, outcome: ChangeOutcome, *, taken_back: bool
) -> ResolutionEffects:
    from bastion.tracing.models import case_code

    summaries = outcome.report.pool_summaries
    tracing = outcome.tracing
    return ResolutionEffects(
        result_changed=True,
        holds=sorted({i for s in summaries for i in s.hold_ids}),
        holds_withdrawn=sorted({i for s in summaries for i in s.withdrawn_holds}),
        tasks_created=sum(s.tasks_created for s in summaries),
        tasks_reanswered=sum(s.tasks_reanswered for s in summaries),
        cases_opened=[case_code(i) for i in tracing.case_ids],
        close_contacts=tracing.close_contacts,
        secondary_contacts=tracing.secondary_contacts,
        placements=tracing.placements,
        codes_recomputed=outcome.recomputed,
        codes_changed=outcome.codes_changed,
        cases_left_open=(
            _open_cases_of_own_sample(db_session, tube)
            if taken_back and tube.result != "positive"
            else []
        ),
    )
