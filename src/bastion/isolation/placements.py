"""Reading placements, their test days and what blocks their release; recording test results;
the day's test tasks; who is due for release."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import Conflict, InvalidInput, NotFound
from bastion.isolation import schedule
from bastion.isolation.enums import PlacementStatus
from bastion.isolation.models import Placement, PlacementTest
from bastion.protocols import service as protocol_service

# Reading -------------------------------------------------------------------------------------


def get(*, db_session: Session, principal: Principal, placement_id: int) -> Placement:
    """One placement inside the principal's region (else not found)."""
    principal.require(Perm.isolation_read)
    placement = db_session.get(Placement, placement_id)
    if placement is None or not principal.scope.contains(placement.region_code):
        raise NotFound("placement.not_found", placement=placement_id)
    return placement


def tests_of(db_session: Session, placement_id: int) -> list[PlacementTest]:
    return list(
        db_session.execute(
            select(PlacementTest)
            .where(PlacementTest.placement_id == placement_id)
            .order_by(PlacementTest.day_no)
        ).scalars()
    )


def blockers_of(db_session: Session, placement: Placement, on: date) -> list[schedule.Missing]:
    """What still stands between ``placement`` and its release on ``on``."""
    tests = tests_of(db_session, placement.id)
    return schedule.release_blockers(
        starts_on=placement.starts_on,
        planned_end_on=placement.planned_end_on,
        test_days=tuple(t.day_no for t in tests),
        results={t.day_no: t.result for t in tests},
        on=on,
    )


def profile_note(db_session: Session, placement: Placement) -> str | None:
    """When the profile in force today differs from the placement's: the message key saying
    the placement keeps its own (a change applies to new placements only)."""
    if placement.status not in (PlacementStatus.pending, PlacementStatus.active):
        return None
    current = protocol_service.profile_on(db_session, clock.today())
    return None if current.key == placement.profile else "placement.profile_kept"


# Tests ---------------------------------------------------------------------------------------


def record_test(
    *,
    db_session: Session,
    principal: Principal,
    placement_id: int,
    day_no: int,
    result: str | None,
    tested_on: date | None = None,
    tube_barcode: str | None = None,
) -> PlacementTest:
    """Record the result of a placement's test day (a one-row
    :func:`~bastion.isolation.results.record_tests`). With only a tube barcode, the lab's result
    of that tube is taken. Refuses a placement outside the principal's region (not found), a
    day that is not a test day of the placement, a date in the future, an unknown result, and a
    different result for a day already recorded."""
    from bastion.isolation.results import TestItem, record_tests

    report = record_tests(
        db_session=db_session,
        principal=principal,
        items=[TestItem(placement_id, day_no, result, tested_on, tube_barcode)],
    )
    if report.problems:
        [problem] = report.problems
        if problem.reason == "placement.not_found":
            raise NotFound("placement.not_found", placement=placement_id)
        if problem.reason == "placement.test_already_recorded":
            raise Conflict(problem.reason, **problem.params)
        raise InvalidInput.one(problem.field, problem.reason, **problem.params)
    return db_session.execute(
        select(PlacementTest)
        .where(PlacementTest.placement_id == placement_id, PlacementTest.day_no == day_no)
        .execution_options(populate_existing=True)
    ).scalar_one()


def due_tests(
    *, db_session: Session, principal: Principal, day: date, region_code: str | None = None
) -> list[tuple[PlacementTest, Placement]]:
    """The isolation test tasks of ``day``: test days due then, of active placements in the
    region (the principal's own by default), whether recorded yet or not."""
    principal.require(Perm.isolation_read)
    scope = _scope(db_session, principal, region_code)
    rows = db_session.execute(
        select(PlacementTest, Placement)
        .join(Placement, Placement.id == PlacementTest.placement_id)
        .where(
            PlacementTest.due_on == day,
            Placement.status == PlacementStatus.active,
            scope.clause(Placement.region_code),
            principal.scope.clause(Placement.region_code),
        )
        .order_by(Placement.region_code, Placement.id)
    ).all()
    return [(t, p) for t, p in rows]


def _scope(db_session: Session, principal: Principal, region_code: str | None) -> Any:
    from bastion.regions import service as region_service

    if region_code is None:
        return principal.scope
    principal.require_region(region_code)
    return region_service.scope_of(db_session=db_session, code=region_code)


def list_placements(
    *,
    db_session: Session,
    principal: Principal,
    region_code: str | None = None,
    status: str | None = None,
    reason: str | None = None,
    setting: str | None = None,
    due_on: date | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Placement], int]:
    """Placements in the region (the principal's own by default), filtered; ``due_on``: the
    active ones whose planned end is that day or earlier (who is due for release)."""
    principal.require(Perm.isolation_read)
    scope = _scope(db_session, principal, region_code)
    conds: list[Any] = [scope.clause(Placement.region_code)]
    conds.append(principal.scope.clause(Placement.region_code))
    if status:
        conds.append(Placement.status == status)
    if reason:
        conds.append(Placement.reason == reason)
    if setting:
        conds.append(Placement.setting == setting)
    if due_on is not None:
        conds += [Placement.status == "active", Placement.planned_end_on <= due_on]
    total = db_session.execute(
        select(func.count()).select_from(Placement).where(*conds)
    ).scalar_one()
    rows = db_session.execute(
        select(Placement)
        .where(*conds)
        .order_by(Placement.planned_end_on, Placement.id)
        .offset(offset)
        .limit(limit)
    ).scalars()
    return list(rows), int(total)
