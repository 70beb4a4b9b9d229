"""Releasing placements in batches, set-based: every placement due on a day in one call; and
ending the placements of cases closed in tracing (:func:`end_for_cases`).

:func:`release_many` applies the rules of :func:`bastion.isolation.service.release` to each
placement of a batch: the refused ones are listed with every missing item; the others are
released by one ``UPDATE``, their home-monitoring placements and transfers home inserted through
the bulk path, and their contacts released in tracing with one ``release_contacts`` call. The
outcome is the same as releasing them one by one (tests/integration/isolation/test_batches.py
compares both on the same record). :func:`release_due` does it for every active placement whose
planned end is the day or earlier, in a region.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import column, select, table, update
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal, system_principal
from bastion.core.db import among, bulk_insert, id_chunks
from bastion.core.errors import FieldProblem, InvalidInput
from bastion.isolation import schedule
from bastion.isolation.enums import OPEN_TRANSFER, PlacementStatus, TransferStatus
from bastion.isolation.models import Placement, PlacementTest, TransferTask
from bastion.isolation.sql import TASK_COLUMNS, expire
from bastion.protocols.profiles import Profile, get_profile

#: An early release is a command decision (see :data:`bastion.isolation.service.OVERRIDE_PERM`).
OVERRIDE_PERM = Perm.zones_write
#: Refused placements reported in full up to this many (the count is always exact).
MAX_REPORTED = 1_000

_COLUMNS = (
    Placement.id,
    Placement.person_id,
    Placement.region_code,
    Placement.setting,
    Placement.reason,
    Placement.source_type,
    Placement.source_id,
    Placement.profile,
    Placement.status,
    Placement.starts_on,
    Placement.planned_end_on,
)


@dataclass(frozen=True)
class Refused:
    """A placement of the batch that was not released, with every reason (message keys)."""

    row: int
    placement_id: int
    problems: tuple[FieldProblem, ...]


@dataclass
class ReleaseReport:
    """What a batch release did."""

    rows: int = 0
    released: list[int] = field(default_factory=list)
    #: Released over missing items by an authorised override.
    overridden: int = 0
    monitoring: int = 0
    transfers: int = 0
    contacts: int = 0
    refused_count: int = 0
    refused: list[Refused] = field(default_factory=list)

    def refuse(self, row: int, placement_id: int, problems: Sequence[FieldProblem]) -> None:
        self.refused_count += 1
        if len(self.refused) < MAX_REPORTED:
            self.refused.append(Refused(row, placement_id, tuple(problems)))


def _problem(key: str, row: int, **params: Any) -> FieldProblem:
    return FieldProblem("release", key, params, row)


def _may_release(principal: Principal, override_reason: str) -> None:
    if not principal.can(Perm.isolation_write) and not (
        override_reason and principal.can(OVERRIDE_PERM)
    ):
        # The isolation team releases; the command may only release by override.
        principal.require(Perm.isolation_write)
    principal.require(Perm.isolation_read)


def _load(db_session: Session, ids: list[int]) -> tuple[dict[int, Any], dict[int, dict[int, Any]]]:
    placements: dict[int, Any] = {}
    results: dict[int, dict[int, Any]] = {}
    for chunk in id_chunks(db_session, ids):
        for row in db_session.execute(
            select(*_COLUMNS).where(among(db_session, Placement.id, chunk))
        ):
            placements[int(row.id)] = row
        for test in db_session.execute(
            select(PlacementTest.placement_id, PlacementTest.day_no, PlacementTest.result).where(
                among(db_session, PlacementTest.placement_id, chunk)
            )
        ):
            results.setdefault(int(test.placement_id), {})[int(test.day_no)] = test.result
    return placements, results


def _judge(
    principal: Principal,
    row: int,
    pid: int,
    placement: Any,
    tests: dict[int, Any],
    day: date,
    reason: str,
    case_open: bool = False,
) -> tuple[list[FieldProblem], bool]:
    """The problems refusing ``placement`` (empty: release it) and whether it is released by
    override — the checks of :func:`bastion.isolation.service.release`, in its order.
    ``case_open``: the placement rests on a case still open in tracing (its treatment ends
    when the case is closed; before that only by authorised override)."""
    if placement is None or not principal.scope.contains(placement.region_code):
        return [_problem("placement.not_found", row, placement=pid)], False
    if day < placement.starts_on:
        return [_problem("placement.release_before_start", row)], False
    if placement.status != PlacementStatus.active:
        return [_problem("placement.not_active", row, status=placement.status)], False
    blockers = schedule.release_blockers(
        starts_on=placement.starts_on,
        planned_end_on=placement.planned_end_on,
        test_days=tuple(tests),
        results=tests,
        on=day,
    )
    problems = [
        _problem(
            b.key,
            row,
            placement=int(placement.id),
            day=b.day_no or "",
            due_on=b.due_on.isoformat() if b.due_on else "",
        )
        for b in blockers
    ]
    if case_open:
        problems.insert(0, case_open_problem(int(placement.source_id), row))
    if not problems:
        return [], False
    if not reason:
        return problems, False
    if not principal.can(OVERRIDE_PERM):
        return [_problem("override.not_authorised", row, permission=OVERRIDE_PERM.value)], False
    if not schedule.overridable(blockers):
        return problems, False
    return [], True


def _mark_released(
    db_session: Session, principal: Principal, ids: list[int], day: date, reason: str | None
) -> None:
    for chunk in id_chunks(db_session, ids):
        db_session.execute(
            update(Placement)
            # status = active: a concurrent release of the same placement cannot apply twice.
            .where(among(db_session, Placement.id, chunk), Placement.status == "active")
            .values(
                status=PlacementStatus.released,
                released_on=day,
                released_by=principal.user_id,
                override_reason=reason,
            ),
            execution_options={"synchronize_session": False},
        )


#: The columns of a follow-on home-monitoring placement (bulk path).
_FOLLOW_COLUMNS = (
    "person_id",
    "region_code",
    "setting",
    "reason",
    "source_type",
    "source_id",
    "profile",
    "status",
    "starts_on",
    "planned_end_on",
    "follows_id",
    "created_at",
)


def _follow_on(db_session: Session, released: list[Any], day: date) -> tuple[int, int]:
    """The home-monitoring placements and transfers home that follow the released ones,
    through the bulk path. Returns (monitoring placements, transfer tasks) made."""
    from bastion.isolation.service import insert_tests

    now, today = clock.now(), clock.today()
    plans: dict[int, schedule.Plan] = {}
    for p in released:
        if p.setting == "home_monitoring":
            continue
        plan = schedule.plan_monitoring(get_profile(p.profile), p.reason, day)
        if plan is not None:
            plans[int(p.id)] = plan
    by_id = {int(p.id): p for p in released}
    monitoring: dict[int, int] = {}
    if plans:
        bulk_insert(
            db_session,
            Placement,
            _FOLLOW_COLUMNS,
            (
                (
                    by_id[pid].person_id,
                    by_id[pid].region_code,
                    "home_monitoring",
                    by_id[pid].reason,
                    by_id[pid].source_type,
                    by_id[pid].source_id,
                    by_id[pid].profile,
                    "active" if by_id[pid].setting == "home" else "pending",
                    plan.starts_on,
                    plan.planned_end_on,
                    pid,
                    now,
                )
                for pid, plan in plans.items()
            ),
        )
        monitoring = _followers(db_session, sorted(plans))
        insert_tests(db_session, [(monitoring[pid], plan) for pid, plan in plans.items()])
    home = [p for p in released if p.setting not in ("home", "home_monitoring")]
    bulk_insert(
        db_session,
        TransferTask,
        TASK_COLUMNS,
        (
            (
                p.person_id,
                monitoring.get(int(p.id), int(p.id)),
                p.region_code,
                "to_home",
                "home",
                "pending",
                "",
                today,
                now,
            )
            for p in home
        ),
    )
    return len(monitoring), len(home)


def release_many(
    *,
    db_session: Session,
    principal: Principal,
    placement_ids: Sequence[int],
    on: date | None = None,
    override_reason: str | None = None,
) -> ReleaseReport:
    """Release a batch of active placements on ``on`` (today by default), set-based, by the
    rules of :func:`bastion.isolation.service.release`: each placement not found in the
    principal's region, not active, begun after ``on``, or with missing items (each test day
    not done or invalid, each positive test, the planned end not reached) is refused and listed
    with every item, unless ``override_reason`` is given by command authority (never over a
    positive test). A case's placement whose case is still open is refused naming the case
    (``placement.case_open``: closing the case ends it), unless overridden likewise. The
    released get their home monitoring and transfer home as one release would, and their
    contacts are released in tracing in one call. Refuses a date in the future
    for the whole batch. One ``placement.release`` audit entry per batch."""
    reason = (override_reason or "").strip()
    _may_release(principal, reason)
    day = on or clock.today()
    if day > clock.today():
        raise InvalidInput.one("on", "placement.date_in_future", day=day.isoformat())
    report = ReleaseReport(rows=len(placement_ids))
    ids = sorted({int(i) for i in placement_ids})
    placements, results = _load(db_session, ids)
    still_open = open_cases(
        db_session, [int(p.source_id) for p in placements.values() if p.source_type == "case"]
    )
    clean: list[Any] = []
    overridden: list[Any] = []
    seen: set[int] = set()
    for row, pid in enumerate(placement_ids, start=1):
        if int(pid) in seen:
            continue  # the same placement twice in a batch is released once
        seen.add(int(pid))
        placement = placements.get(int(pid))
        problems, by_override = _judge(
            principal,
            row,
            int(pid),
            placement,
            results.get(int(pid), {}),
            day,
            reason,
            case_open=placement is not None
            and placement.source_type == "case"
            and int(placement.source_id) in still_open,
        )
        if problems:
            report.refuse(row, int(pid), problems)
        else:
            (overridden if by_override else clean).append(placement)
    if not clean and not overridden:
        return report
    _mark_released(db_session, principal, [int(p.id) for p in clean], day, None)
    _mark_released(db_session, principal, [int(p.id) for p in overridden], day, reason)
    expire(db_session, Placement)
    released = clean + overridden
    report.released = [int(p.id) for p in released]
    report.overridden = len(overridden)
    report.monitoring, report.transfers = _follow_on(db_session, released, day)
    contacts = sorted(
        {
            int(p.source_id)
            for p in released
            if p.source_type == "contact" and p.setting != "home_monitoring"
        }
    )
    if contacts:
        report.contacts = _release_contacts(db_session, contacts, day)
    one = released[0] if len(released) == 1 else None
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="placement.release",
        target_type="placement",
        target_id=int(one.id) if one is not None else "",
        region_code=one.region_code if one is not None else None,
        details={
            "on": day.isoformat(),
            "released": len(released),
            "override": reason if overridden else None,
            "overridden": len(overridden),
            "refused": report.refused_count,
        },
    )
    return report


def _release_contacts(db_session: Session, contact_ids: list[int], day: date) -> int:
    """The contact records follow their placements (as the system: a consequence of releases
    the caller was authorised to make)."""
    try:
        from bastion.tracing import service as tracing_service
    except ImportError:  # pragma: no cover - tracing not installed
        return 0
    release_contacts = getattr(tracing_service, "release_contacts", None)
    if release_contacts is None:  # pragma: no cover
        return 0
    return int(
        release_contacts(
            db_session=db_session, principal=system_principal(), contact_ids=contact_ids, day=day
        )
    )


def release_due(
    *,
    db_session: Session,
    principal: Principal,
    day: date | None = None,
    region_code: str | None = None,
    reason: str | None = None,
) -> ReleaseReport:
    """Release every active placement in the region (the principal's own by default) whose
    planned end is ``day`` (today by default) or earlier and whose release check passes;
    the others are listed with what still blocks them. ``reason`` narrows to cases or one
    contact level. No override: early and forced releases are decided one by one."""
    from bastion.isolation.placements import _scope

    _may_release(principal, "")
    day = day or clock.today()
    scope = _scope(db_session, principal, region_code)
    conds: list[Any] = [
        Placement.status == "active",
        Placement.planned_end_on <= day,
        scope.clause(Placement.region_code),
        principal.scope.clause(Placement.region_code),
    ]
    if reason:
        conds.append(Placement.reason == reason)
    ids = [
        int(i)
        for i in db_session.execute(
            select(Placement.id).where(*conds).order_by(Placement.id)
        ).scalars()
    ]
    return release_many(db_session=db_session, principal=principal, placement_ids=ids, on=day)


# Cases closed in tracing ------------------------------------------------------------------------

#: How a case ends (tracing's case statuses other than ``open``).
CASE_OUTCOMES = ("discharged", "released", "died")
_CASES = table("cases", column("id"), column("person_id"), column("status"))


def case_code(case_id: int) -> str:
    """A case's code as tracing shows it (C + id, zero-padded)."""
    return f"C{int(case_id):08d}"


def open_cases(db_session: Session, case_ids: Sequence[int]) -> set[int]:
    """Which of ``case_ids`` are open cases (the ``cases`` table read per
    docs/dev/shared-records.md: isolation never imports tracing's models)."""
    found: set[int] = set()
    ids = sorted({int(i) for i in case_ids})
    for chunk in id_chunks(db_session, ids):
        found.update(
            int(i)
            for i in db_session.execute(
                select(_CASES.c.id).where(
                    among(db_session, _CASES.c.id, chunk), _CASES.c.status == "open"
                )
            ).scalars()
        )
    return found


def case_open_problem(case_id: int, row: int | None = None) -> FieldProblem:
    """The refusal of a release whose case is still open (the clinical closure decides)."""
    return FieldProblem("release", "placement.case_open", {"case": case_code(case_id)}, row)


@dataclass
class CaseClosure:
    """What closing cases did to their isolation: placements ended (released: the person was
    there; cancelled: a pending placement that never started), open transfer tasks cancelled,
    and, after a discharge or a release from observation, the home health monitoring the
    profile in force prescribes and the transfers home."""

    outcome: str
    released: list[int] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    transfers_cancelled: list[int] = field(default_factory=list)
    monitoring: list[int] = field(default_factory=list)
    transfers_home: list[int] = field(default_factory=list)


def end_for_cases(
    *,
    db_session: Session,
    principal: Principal,
    case_ids: Sequence[int],
    outcome: str,
    day: date,
) -> CaseClosure:
    """End the isolation of cases just closed in tracing (``outcome``: discharged, released
    from observation, or died) on ``day``, set-based, in the caller's transaction (tracing's
    :func:`~bastion.tracing.cases.close_case` calls it right after closing the case).

    Discharge / release: the case's active placement is released (dated ``day``, the closure
    as its reason), a pending one that never started is cancelled with its open transfer
    tasks; when the profile in force on ``day`` prescribes home health monitoring after
    discharge, a ``home_monitoring`` placement follows (pending until the transfer home arrives
    for someone who was at a site, active at once otherwise), and someone who was at a site
    gets a transfer task home. Death: every open placement of the person ends (released if
    active, cancelled if pending) and every open transfer task of theirs is cancelled; no
    monitoring, no transfer home. One ``placement.release`` audit entry, under the actor who
    closed the case. A consequence of the case closure: the caller needs the right to write
    cases (or isolation's)."""
    if not principal.can(Perm.cases_write):
        principal.require(Perm.isolation_write)
    if outcome not in CASE_OUTCOMES:
        raise InvalidInput.one("outcome", "placement.unknown_outcome", value=outcome)
    from bastion.core.i18n import t

    out = CaseClosure(outcome=outcome)
    ids = sorted({int(i) for i in case_ids})
    if not ids:
        return out
    reason = t(f"placement.ended_case_{outcome}", "zh-CN")
    died = outcome == "died"
    people: list[int] = []
    rows: list[Any] = []
    for chunk in id_chunks(db_session, ids):
        if died:
            people += [
                int(i)
                for i in db_session.execute(
                    select(_CASES.c.person_id).where(among(db_session, _CASES.c.id, chunk))
                ).scalars()
            ]
        else:
            rows += db_session.execute(
                select(*_COLUMNS)
                .where(
                    Placement.source_type == "case",
                    among(db_session, Placement.source_id, chunk),
                    Placement.status.in_((PlacementStatus.pending, PlacementStatus.active)),
                )
                # Lock the placements: an overriding release or a vehicle's arrival committed
                # between this read and the updates below would otherwise get a second
                # follow-on (monitoring, transfer home) from us. (SQLite: the write lock.)
                .with_for_update()
            ).all()
    people = sorted(set(people))
    for chunk in id_chunks(db_session, people):
        # A person who died: every open placement of theirs ends, whatever it rests on.
        rows += db_session.execute(
            select(*_COLUMNS)
            .where(
                among(db_session, Placement.person_id, chunk),
                Placement.status.in_((PlacementStatus.pending, PlacementStatus.active)),
            )
            .with_for_update()  # the same race as above
        ).all()
    rows.sort(key=lambda r: int(r.id))
    active = [r for r in rows if r.status == PlacementStatus.active]
    pending = [r for r in rows if r.status == PlacementStatus.pending]
    _end(db_session, principal, [int(r.id) for r in active], "active", "released", day, reason)
    _end(db_session, principal, [int(r.id) for r in pending], "pending", "cancelled", day, reason)
    out.released = [int(r.id) for r in active]
    out.cancelled = [int(r.id) for r in pending]
    out.transfers_cancelled = _cancel_tasks(
        db_session,
        placement_ids=[] if died else out.cancelled,
        person_ids=people,
        reason=reason,
    )
    expire(db_session, Placement)
    expire(db_session, TransferTask)
    if not died:
        out.monitoring, out.transfers_home = _after_discharge(db_session, active, pending, day)
    if rows or out.transfers_cancelled:
        one = ids[0] if len(ids) == 1 else None
        audit_service.record(
            db_session=db_session,
            actor=principal,
            action="placement.release",
            target_type="case",
            target_id=case_code(one) if one is not None else "",
            region_code=rows[0].region_code if one is not None and rows else None,
            details={
                "on": day.isoformat(),
                "case_closure": outcome,
                "cases": len(ids),
                "released": len(out.released),
                "cancelled": len(out.cancelled),
                "transfers_cancelled": len(out.transfers_cancelled),
                "monitoring": len(out.monitoring),
                "transfers_home": len(out.transfers_home),
            },
        )
    return out


def _end(
    db_session: Session,
    principal: Principal,
    ids: list[int],
    was: str,
    to: str,
    day: date,
    reason: str,
) -> None:
    for chunk in id_chunks(db_session, ids):
        db_session.execute(
            update(Placement)
            # status = was: a release or an arrival racing the closure applies once or not at all.
            .where(among(db_session, Placement.id, chunk), Placement.status == was)
            .values(
                status=to,
                released_on=day,
                released_by=principal.user_id,
                override_reason=reason,
            ),
            execution_options={"synchronize_session": False},
        )


def _cancel_tasks(
    db_session: Session, *, placement_ids: list[int], person_ids: list[int], reason: str
) -> list[int]:
    """Cancel the open transfer tasks (pending, dispatched or failed) of the placements, or of
    the people, with ``reason``. Returns the tasks cancelled."""
    found: list[int] = []
    for by, values in (
        (TransferTask.placement_id, placement_ids),
        (TransferTask.person_id, person_ids),
    ):
        for chunk in id_chunks(db_session, sorted(set(values))):
            cond = (among(db_session, by, chunk), TransferTask.status.in_(OPEN_TRANSFER))
            task_ids = [
                int(i) for i in db_session.execute(select(TransferTask.id).where(*cond)).scalars()
            ]
            if not task_ids:
                continue
            db_session.execute(
                update(TransferTask)
                .where(*cond)
                .values(status=TransferStatus.cancelled, failure_reason=reason),
                execution_options={"synchronize_session": False},
            )
            found += task_ids
    return sorted(set(found))


def _after_discharge(
    db_session: Session, active: list[Any], pending: list[Any], day: date
) -> tuple[list[int], list[int]]:
    """The home health monitoring the profile in force on ``day`` prescribes after discharge
    (following each ended case placement), and a transfer home for each person who was at a
    site, through the bulk path. Returns (monitoring placements, transfer tasks) made."""
    from bastion.isolation.service import insert_tests
    from bastion.protocols import service as protocol_service

    now, today = clock.now(), clock.today()
    at_site = {int(r.id) for r in active if r.setting not in ("home", "home_monitoring")}
    ended = [r for r in active + pending if r.setting != "home_monitoring"]
    profile = protocol_service.profile_on(db_session, day)
    plan = plan_after_discharge(profile, day)
    monitoring: dict[int, int] = {}
    if plan is not None and ended:
        bulk_insert(
            db_session,
            Placement,
            _FOLLOW_COLUMNS,
            (
                (
                    r.person_id,
                    r.region_code,
                    "home_monitoring",
                    r.reason,
                    r.source_type,
                    r.source_id,
                    profile.key,
                    "pending" if int(r.id) in at_site else "active",
                    plan.starts_on,
                    plan.planned_end_on,
                    int(r.id),
                    now,
                )
                for r in ended
            ),
        )
        monitoring = _followers(db_session, sorted(int(r.id) for r in ended))
        insert_tests(db_session, [(monitoring[int(r.id)], plan) for r in ended])
    home = [r for r in active if int(r.id) in at_site]
    bulk_insert(
        db_session,
        TransferTask,
        TASK_COLUMNS,
        (
            (
                r.person_id,
                monitoring.get(int(r.id), int(r.id)),
                r.region_code,
                "to_home",
                "home",
                "pending",
                "",
                today,
                now,
            )
            for r in home
        ),
    )
    tasks: list[int] = []
    targets = sorted(monitoring.get(int(r.id), int(r.id)) for r in home)
    for chunk in id_chunks(db_session, targets):
        tasks += [
            int(i)
            for i in db_session.execute(
                select(TransferTask.id).where(
                    among(db_session, TransferTask.placement_id, chunk),
                    TransferTask.kind == "to_home",
                )
            ).scalars()
        ]
    return sorted(monitoring.values()), sorted(tasks)


def plan_after_discharge(profile: Profile, closed_on: date) -> schedule.Plan | None:
    """The home health monitoring ``profile`` prescribes after a case's discharge or release
    from observation on ``closed_on`` (None when it prescribes none): from the next day."""
    days = profile.discharge_monitoring_days
    if days <= 0:
        return None
    starts = closed_on + timedelta(days=1)
    tests = tuple(d for d in profile.discharge_monitoring_test_days if 1 <= d <= days)
    return schedule.Plan(starts, schedule.day_on(starts, days), tests)


def _followers(db_session: Session, placement_ids: list[int]) -> dict[int, int]:
    """The placement following each of ``placement_ids`` (its home monitoring)."""
    found: dict[int, int] = {}
    for chunk in id_chunks(db_session, placement_ids):
        for follows_id, new_id in db_session.execute(
            select(Placement.follows_id, Placement.id).where(
                among(db_session, Placement.follows_id, chunk)
            )
        ):
            found[int(follows_id or 0)] = int(new_id)
    return found


__all__ = [
    "CASE_OUTCOMES",
    "MAX_REPORTED",
    "CaseClosure",
    "Refused",
    "ReleaseReport",
    "end_for_cases",
    "open_cases",
    "release_due",
    "release_many",
]
