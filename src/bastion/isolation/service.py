"""Placements: placing people (set-based, from tracing's needs) and releasing them, with the home
monitoring and transfer home that follow. Reading placements and recording tests is in
:mod:`bastion.isolation.placements` (re-exported here: other domains import this module); the
batch paths in :mod:`bastion.isolation.results` (a day's test results) and
:mod:`bastion.isolation.releases` (releases of many placements, and ``end_for_cases``: the
placements of cases closed in tracing), re-exported too. A case's placement follows its case:
isolation does not release it while the case is open (only by authorised override).

Sites are in :mod:`bastion.isolation.sites`, transfers in :mod:`bastion.isolation.transfers`,
zone lifting checks in :mod:`bastion.isolation.zones`, figures in :mod:`bastion.isolation.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal, system_principal
from bastion.core.db import among, bulk_insert, id_chunks
from bastion.core.errors import (
    FieldProblem,
    Forbidden,
    InvalidInput,
    InvalidTransition,
)
from bastion.isolation import schedule
from bastion.isolation.enums import OPEN_TRANSFER, PlacementStatus
from bastion.isolation.models import Placement, PlacementTest, TransferTask
from bastion.isolation.needs import PlacementNeed, PlacementReport
from bastion.isolation.placements import (
    blockers_of,
    due_tests,
    get,
    list_placements,
    profile_note,
    record_test,
    tests_of,
)
from bastion.isolation.releases import (
    CaseClosure,
    ReleaseReport,
    case_code,
    case_open_problem,
    end_for_cases,
    open_cases,
    release_due,
    release_many,
)
from bastion.isolation.results import TestBatchReport, TestItem, record_tests
from bastion.isolation.sql import TASK_COLUMNS
from bastion.protocols import service as protocol_service
from bastion.protocols.profiles import Profile, get_profile

#: Who may hand needs to isolation: the investigators who create cases and contacts, and the
#: isolation team itself.
PLACE_PERMS = (Perm.cases_write, Perm.contacts_write, Perm.isolation_write)
#: An early release (before the planned end, or with tests not done) is a command decision:
#: held by commanders and administrators (see docs/isolation.md).
OVERRIDE_PERM = Perm.zones_write


def _require_any(principal: Principal, perms: Sequence[Perm]) -> None:
    if not any(principal.can(p) for p in perms):
        principal.require(perms[-1])


def _validate(needs: Sequence[PlacementNeed], today: date) -> None:
    problems: list[FieldProblem] = []
    for row, need in enumerate(needs, start=1):
        allowed = schedule.DESTINATIONS_FOR.get(need.reason)
        if allowed is None:
            problems.append(FieldProblem("reason", "placement.unknown_reason", {}, row))
        elif need.destination not in allowed:
            problems.append(
                FieldProblem(
                    "destination",
                    "placement.destination_unfit",
                    {"destination": need.destination, "reason": need.reason},
                    row,
                )
            )
        if need.source_type not in ("case", "contact"):
            problems.append(FieldProblem("source_type", "placement.unknown_source", {}, row))
        if need.starts_on > today:
            problems.append(
                FieldProblem(
                    "starts_on",
                    "placement.date_in_future",
                    {"day": need.starts_on.isoformat()},
                    row,
                )
            )
    if problems:
        raise InvalidInput(problems=problems)


def _supersede_contact_placements(db_session: Session, person_ids: list[int]) -> int:
    """A contact who became a case leaves contact isolation for treatment: their open contact
    placements are cancelled (set-based) and their open transfers with them."""
    superseded = 0
    for chunk in id_chunks(db_session, person_ids):
        open_ids = select(Placement.id).where(
            among(db_session, Placement.person_id, chunk),
            Placement.reason != "case",
            Placement.status.in_((PlacementStatus.pending, PlacementStatus.active)),
        )
        db_session.execute(
            update(TransferTask)
            .where(TransferTask.placement_id.in_(open_ids), TransferTask.status.in_(OPEN_TRANSFER))
            .values(status="cancelled"),
            execution_options={"synchronize_session": False},
        )
        result = db_session.execute(
            update(Placement)
            .where(Placement.id.in_(open_ids.scalar_subquery()))
            .values(status=PlacementStatus.cancelled, released_on=clock.today()),
            execution_options={"synchronize_session": False},
        )
        superseded += int(getattr(result, "rowcount", 0) or 0)
    return superseded


def _existing(
    db_session: Session, keys: set[tuple[int, str, int]]
) -> dict[tuple[int, str, int], int]:
    """The placement already made for each (person, source type, source id) key, found by
    person (the leading column of the placements' unique index)."""
    found: dict[tuple[int, str, int], int] = {}
    people = sorted({k[0] for k in keys})
    for chunk in id_chunks(db_session, people):
        rows = db_session.execute(
            select(Placement.person_id, Placement.source_type, Placement.source_id, Placement.id)
            .where(among(db_session, Placement.person_id, chunk))
            .order_by(Placement.id)
        ).all()
        for person_id, source_type, source_id, pid in rows:
            key = (int(person_id), str(source_type), int(source_id))
            if key in keys:
                found.setdefault(key, int(pid))
    return found


def insert_tests(db_session: Session, rows: list[tuple[int, schedule.Plan]]) -> None:
    """The test-day rows of freshly made placements, through the one bulk path."""
    bulk_insert(
        db_session,
        PlacementTest,
        ("placement_id", "day_no", "due_on"),
        ((pid, d, plan.due_on(d)) for pid, plan in rows for d in plan.test_days),
    )


_PLACEMENT_COLUMNS = (
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
    "created_at",
)


def place_needs(
    *, db_session: Session, principal: Principal, needs: Sequence[PlacementNeed]
) -> PlacementReport:
    """Place a batch of people, set-based and idempotent per (person, source): a need already
    placed is left as it is. Each placement is made under the profile in force on its first
    day (kept for its whole life), with its planned end and test days from that profile; a
    person who must move (a case → hospital or makeshift; a contact → centralised site) gets a
    pending placement and a transfer task; home isolation needs no vehicle and starts active.
    A new case's open contact placements are cancelled (they move to treatment instead).

    Refuses (naming the row) a destination that does not fit the reason, an unknown source and
    a first day in the future; refuses needs outside the principal's region."""
    _require_any(principal, PLACE_PERMS)
    if not needs:
        return PlacementReport(created=0, unchanged=0, transfers=0)
    today = clock.today()
    _validate(needs, today)
    for region in sorted({n.region_code for n in needs}):
        principal.require_region(region)
    profiles: dict[date, Profile] = {}
    for day in sorted({n.starts_on for n in needs}):
        profiles[day] = protocol_service.profile_on(db_session, day)

    superseded = _supersede_contact_placements(
        db_session, sorted({n.person_id for n in needs if n.reason == "case"})
    )
    keys: set[tuple[int, str, int]] = {(n.person_id, n.source_type, n.source_id) for n in needs}
    existing = _existing(db_session, keys)
    now = clock.now()
    fresh: dict[tuple[int, str, int], tuple[PlacementNeed, schedule.Plan, Profile]] = {}
    not_managed = 0
    # Plans repeat across a batch (same profile, reason and first day): made once each.
    plans: dict[tuple[str, str, date], schedule.Plan] = {}
    for need in needs:
        key = (need.person_id, need.source_type, need.source_id)
        if key in existing or key in fresh:
            continue
        profile = profiles[need.starts_on]
        if not schedule.is_traced(profile, need.reason):
            not_managed += 1
            continue
        plan_key = (profile.key, need.reason, need.starts_on)
        if plan_key not in plans:
            plans[plan_key] = schedule.plan_main(profile, need.reason, need.starts_on)
        fresh[key] = (need, plans[plan_key], profile)

    created_ids: dict[tuple[int, str, int], int] = {}
    if fresh:
        # COPY (PostgreSQL) / executemany (SQLite) through the one bulk path, then the new ids
        # read back by person (the leading column of the placements' unique index).
        bulk_insert(
            db_session,
            Placement,
            _PLACEMENT_COLUMNS,
            (
                (
                    need.person_id,
                    need.region_code,
                    schedule.SETTING_OF_DESTINATION[need.destination],
                    need.reason,
                    need.source_type,
                    need.source_id,
                    profile.key,
                    "active" if need.destination == "home" else "pending",
                    plan.starts_on,
                    plan.planned_end_on,
                    now,
                )
                for need, plan, profile in fresh.values()
            ),
        )
        created_ids = _existing(db_session, set(fresh))
        insert_tests(db_session, [(created_ids[k], v[1]) for k, v in fresh.items()])
        tasks = [
            (
                need.person_id,
                created_ids[key],
                need.region_code,
                "to_site",
                need.destination,
                "pending",
                need.special_needs,
                today,
                now,
            )
            for key, (need, _plan, _profile) in fresh.items()
            if need.destination != "home"
        ]
        bulk_insert(db_session, TransferTask, TASK_COLUMNS, tasks)
        audit_service.record(
            db_session=db_session,
            actor=principal,
            action="placement.create",
            target_type="placement",
            details={"created": len(fresh), "transfers": len(tasks), "superseded": superseded},
        )
    else:
        tasks = []
    ids = {**existing, **created_ids}
    return PlacementReport(
        created=len(fresh),
        unchanged=sum(1 for n in needs if (n.person_id, n.source_type, n.source_id) in existing),
        transfers=len(tasks),
        superseded=superseded,
        not_managed=not_managed,
        placement_ids=tuple(ids.get((n.person_id, n.source_type, n.source_id)) for n in needs),
    )


# Release -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Released:
    placement: Placement
    #: The home-monitoring placement that follows, if the profile has one.
    monitoring: Placement | None
    #: The transfer home, if the person was at a site.
    transfer: TransferTask | None


def release(
    *,
    db_session: Session,
    principal: Principal,
    placement_id: int,
    on: date | None = None,
    override_reason: str | None = None,
) -> Released:
    """Release an active placement on ``on`` (today by default).

    Refused, listing every missing item, when a required test is not done or not negative or
    the planned end is not reached, unless an authorised override (command authority, a
    reason; audited) is given; a positive test is never overridden. A contact whose profile has
    home monitoring moves into it (a ``home_monitoring`` placement, pending until the transfer
    home arrives); someone at a site gets a transfer task home. Also refuses a release date in
    the future or before the placement began.

    A case's placement (treatment) is refused while the case is open, naming the case: it
    ends when tracing closes the case (:func:`end_for_cases`); only an authorised override
    releases it before."""
    if not principal.can(Perm.isolation_write) and not (
        (override_reason or "").strip() and principal.can(OVERRIDE_PERM)
    ):
        # The isolation team releases; the command may only release by override.
        principal.require(Perm.isolation_write)
    placement = get(db_session=db_session, principal=principal, placement_id=placement_id)
    day = on or clock.today()
    if day > clock.today():
        raise InvalidInput.one("on", "placement.date_in_future", day=day.isoformat())
    if day < placement.starts_on:
        raise InvalidInput.one("on", "placement.release_before_start")
    if placement.status != PlacementStatus.active:
        raise InvalidTransition("placement.not_active", status=placement.status)
    blockers = blockers_of(db_session, placement, day)
    reason = (override_reason or "").strip()
    # A case's treatment ends when tracing closes the case (discharge, release from
    # observation, death: tracing.service.close_case ends the placement itself); before that,
    # only by authorised override (see docs/isolation.md).
    case_open = placement.source_type == "case" and bool(
        open_cases(db_session, [placement.source_id])
    )
    overridden = bool(blockers) or case_open
    if overridden:
        problems = [
            FieldProblem(
                "release",
                b.key,
                {"day": b.day_no or "", "due_on": b.due_on.isoformat() if b.due_on else ""},
            )
            for b in blockers
        ]
        if case_open:
            problems.insert(0, case_open_problem(placement.source_id))
        if not reason:
            if case_open:
                raise InvalidTransition(
                    "placement.case_open", case=case_code(placement.source_id), problems=problems
                )
            raise InvalidTransition("placement.release_refused", problems=problems)
        if not principal.can(OVERRIDE_PERM):
            raise Forbidden("override.not_authorised", permission=OVERRIDE_PERM.value)
        if not schedule.overridable(blockers):
            raise InvalidTransition("placement.release_positive", problems=problems)
    placement.status = PlacementStatus.released
    placement.released_on = day
    placement.released_by = principal.user_id
    placement.override_reason = reason if overridden else None
    db_session.flush()
    monitoring = _start_monitoring(db_session, placement, day)
    transfer = _transfer_home(db_session, placement, monitoring)
    if placement.source_type == "contact" and placement.setting != "home_monitoring":
        _release_contact(db_session, placement.source_id, day)
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="placement.release",
        target_type="placement",
        target_id=placement.id,
        region_code=placement.region_code,
        details={
            "on": day.isoformat(),
            "override": reason if overridden else None,
            "overridden": [b.kind for b in blockers] + (["case_open"] if case_open else []),
        },
    )
    return Released(placement, monitoring, transfer)


def _release_contact(db_session: Session, contact_id: int, day: date) -> None:
    """The contact record follows its placement: released the day isolation ends (tracing's
    figures count released contacts). Done as the system: it is a consequence of a release
    the caller was authorised to make."""
    try:
        from bastion.tracing import service as tracing_service
    except ImportError:  # pragma: no cover - tracing not installed
        return
    release_contacts = getattr(tracing_service, "release_contacts", None)
    if release_contacts is not None:
        release_contacts(
            db_session=db_session, principal=system_principal(), contact_ids=[contact_id], day=day
        )


def _start_monitoring(db_session: Session, placement: Placement, day: date) -> Placement | None:
    plan = schedule.plan_monitoring(get_profile(placement.profile), placement.reason, day)
    if plan is None or placement.setting == "home_monitoring":
        return None
    at_site = placement.setting != "home"
    monitoring = Placement(
        person_id=placement.person_id,
        region_code=placement.region_code,
        setting="home_monitoring",
        reason=placement.reason,
        source_type=placement.source_type,
        source_id=placement.source_id,
        profile=placement.profile,
        status="pending" if at_site else "active",
        starts_on=plan.starts_on,
        planned_end_on=plan.planned_end_on,
        follows_id=placement.id,
        created_at=clock.now(),
    )
    db_session.add(monitoring)
    db_session.flush()
    insert_tests(db_session, [(monitoring.id, plan)])
    return monitoring


def _transfer_home(
    db_session: Session, placement: Placement, monitoring: Placement | None
) -> TransferTask | None:
    if placement.setting in ("home", "home_monitoring"):
        return None
    task = TransferTask(
        person_id=placement.person_id,
        placement_id=(monitoring or placement).id,
        region_code=placement.region_code,
        kind="to_home",
        destination="home",
        site_id=None,
        status="pending",
        special_needs="",
        created_on=clock.today(),
        created_at=clock.now(),
    )
    db_session.add(task)
    db_session.flush()
    return task


__all__ = [
    "CaseClosure",
    "PlacementNeed",
    "PlacementReport",
    "ReleaseReport",
    "Released",
    "TestBatchReport",
    "TestItem",
    "blockers_of",
    "due_tests",
    "end_for_cases",
    "get",
    "insert_tests",
    "list_placements",
    "place_needs",
    "profile_note",
    "record_test",
    "record_tests",
    "release",
    "release_due",
    "release_many",
    "tests_of",
]
