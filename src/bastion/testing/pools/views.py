"""Views for people: retest tasks and holds as the API lists them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import FieldProblem, InvalidInput, NotFound
from bastion.regions import codes
from bastion.regions import service as region_service
from bastion.registry.models import Person
from bastion.testing import service as testing_service
from bastion.testing.enums import RetestState
from bastion.testing.models import PoolHold, RetestTask, Round, Tube, TubeMember
from bastion.testing.pools.holds import OPEN_STATES, visible_task
from bastion.testing.pools.process import MAX_ID

MAX_PAGE = 500
_MAX_INT4 = 2**31 - 1

TaskStatus = Literal["open", "pending", "sampled", "overdue", "closed", "all"]
HoldStatus = Literal["open", "closed", "all"]
TASK_STATUSES: tuple[str, ...] = ("open", "pending", "sampled", "overdue", "closed", "all")
HOLD_STATUSES: tuple[str, ...] = ("open", "closed", "all")


@dataclass(frozen=True)
class TaskView:
    """A retest task as lists show it, with whether it is overdue and its person."""

    task: RetestTask
    person: Person
    overdue: bool
    tube_barcode: str | None = None


@dataclass(frozen=True)
class HoldView:
    hold: PoolHold
    barcode: str
    #: Task counts by state.
    states: dict[str, int]


@dataclass(frozen=True)
class HoldMemberView:
    position: int
    person: Person
    region_code: str
    task: RetestTask | None
    overdue: bool


@dataclass(frozen=True)
class HoldDetail:
    view: HoldView
    members: list[HoldMemberView]


def is_overdue(task: RetestTask, now: datetime | None = None) -> bool:
    """Pending past its deadline (a sampled task waits on the lab, not on the person)."""
    return task.state == RetestState.pending.value and task.due_at < (now or clock.now())


def _check_id(field_name: str, value: int) -> None:
    if not 0 < value <= MAX_ID:
        raise NotFound("error.not_found", problems=[FieldProblem(field_name, "error.not_found")])


def _check_page(offset: int, limit: int) -> None:
    problems: list[FieldProblem] = []
    if offset < 0:
        problems.append(FieldProblem("offset", "field.out_of_range", {"min": 0, "max": MAX_ID}))
    if not 1 <= limit <= MAX_PAGE:
        problems.append(FieldProblem("limit", "field.out_of_range", {"min": 1, "max": MAX_PAGE}))
    if problems:
        raise InvalidInput(problems=problems)


def find_round(*, db_session: Session, principal: Principal, ref: str) -> Round:
    """A round by id, code or ``latest`` that the principal may see; refuses (not found, naming
    the field ``round``) anything else, including references no round could have."""
    value = ref.strip()
    if value.isdigit():
        # Digits are read as a round id, and ids are 32-bit: a longer number names no round
        # (and would make the database refuse the query).
        fits = 0 < int(value) <= _MAX_INT4
    else:
        fits = value == "latest" or bool(testing_service.CODE_RE.match(value))
    if not fits:
        raise NotFound(
            "round.not_found",
            round=value[:40],
            problems=[FieldProblem("round", "round.not_found", {"round": value[:40]})],
        )
    try:
        return testing_service.get_round(db_session=db_session, principal=principal, ref=value)
    except NotFound as err:
        raise NotFound(
            "round.not_found",
            round=value[:40],
            problems=[FieldProblem("round", "round.not_found", {"round": value[:40]})],
        ) from err


def _region_scope(*, db_session: Session, principal: Principal, region_code: str) -> codes.Scope:
    """The subtree of ``region_code``, which must be a known region inside the principal's."""
    if not codes.is_valid_code(region_code):
        raise InvalidInput.one("region", "error.region_unknown", region=region_code[:20])
    if region_service.get(db_session=db_session, code=region_code) is None:
        raise InvalidInput.one("region", "error.region_unknown", region=region_code)
    if not principal.scope.contains(region_code):
        raise NotFound(
            "error.region_outside",
            region=region_code,
            problems=[FieldProblem("region", "error.region_outside", {"region": region_code})],
        )
    return region_service.scope_of(db_session=db_session, code=region_code)


def _task_views(rows: Sequence[Any]) -> list[TaskView]:
    now = clock.now()
    return [
        TaskView(task=t, person=p, overdue=is_overdue(t, now), tube_barcode=b) for t, p, b in rows
    ]


def _task_select() -> Select[RetestTask, Person, str]:
    return (
        select(RetestTask, Person, Tube.barcode)
        .join(Person, Person.id == RetestTask.person_id)
        .outerjoin(Tube, Tube.id == RetestTask.tube_id)
        .outerjoin(PoolHold, PoolHold.id == RetestTask.hold_id)
        .where(visible_task())
    )


def _status_clause(status: str, now: datetime) -> Any:
    if status == "open":
        return RetestTask.state.in_(OPEN_STATES)
    if status == "overdue":
        return and_(RetestTask.state == RetestState.pending.value, RetestTask.due_at < now)
    if status in (RetestState.pending.value, RetestState.sampled.value):
        return RetestTask.state == status
    if status == "closed":
        return RetestTask.state.in_((RetestState.negative.value, RetestState.positive.value))
    return None


def list_tasks(
    *,
    db_session: Session,
    principal: Principal,
    region_code: str | None = None,
    round_ref: str | None = None,
    status: str = "open",
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[TaskView], int]:
    """Retest tasks in a region (a grid worker's grid by default: the principal's own region)
    and optionally of one round, soonest due first, with the total. ``status``: open (pending
    or sampled), pending, sampled, overdue (pending past its deadline), closed, all. Refuses a
    caller without testing.read, an unknown status, region or round, a region outside the
    caller's, and a page out of range — each naming its field."""
    principal.require(Perm.testing_read)
    if status not in TASK_STATUSES:
        raise InvalidInput.one("status", "retest.bad_status", value=status[:20])
    _check_page(offset, limit)
    stmt = _task_select().where(principal.scope.clause(RetestTask.region_code))
    if region_code:
        scope = _region_scope(db_session=db_session, principal=principal, region_code=region_code)
        stmt = stmt.where(scope.clause(RetestTask.region_code))
    if round_ref:
        rnd = find_round(db_session=db_session, principal=principal, ref=round_ref)
        stmt = stmt.where(RetestTask.round_id == rnd.id)
    clause = _status_clause(status, clock.now())
    if clause is not None:
        stmt = stmt.where(clause)
    total = int(db_session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
    rows = db_session.execute(
        stmt.order_by(RetestTask.due_at, RetestTask.id).offset(offset).limit(limit)
    ).all()
    return _task_views(list(rows)), total


def my_tasks(*, db_session: Session, principal: Principal) -> list[TaskView]:
    """The caller's own retest tasks (open first, then by deadline). Refuses a caller who is not
    linked to a person or lacks self.read."""
    principal.require(Perm.self_read)
    if principal.person_id is None:
        raise NotFound("retest.no_person", problems=[FieldProblem("person", "retest.no_person")])
    rows = db_session.execute(
        _task_select()
        .where(RetestTask.person_id == principal.person_id)
        .order_by(RetestTask.closed_at.is_not(None), RetestTask.due_at, RetestTask.id)
    ).all()
    return _task_views(list(rows))


def _hold_states(db_session: Session, hold_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {h: {s.value: 0 for s in RetestState} for h in hold_ids}
    if not hold_ids:
        return out
    rows = db_session.execute(
        select(RetestTask.hold_id, RetestTask.state, func.count())
        .where(RetestTask.hold_id.in_(list(hold_ids)))
        .group_by(RetestTask.hold_id, RetestTask.state)
    )
    for hold_id, state, n in rows:
        if hold_id is not None:
            out[hold_id][state] = n
    return out


def list_holds(
    *,
    db_session: Session,
    principal: Principal,
    status: str = "open",
    round_ref: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[HoldView], int]:
    """Holds (positive pools) in the caller's region, newest first, with the total: open, closed
    or all, optionally of one round; each with its tasks counted by state. Refuses a caller
    without testing.read, an unknown status or round, and a page out of range."""
    principal.require(Perm.testing_read)
    if status not in HOLD_STATUSES:
        raise InvalidInput.one("status", "pool.bad_hold_status", value=status[:20])
    _check_page(offset, limit)
    stmt = (
        select(PoolHold, Tube.barcode)
        .join(Tube, Tube.id == PoolHold.tube_id)
        .where(principal.scope.clause(PoolHold.region_code))
    )
    if status == "open":
        stmt = stmt.where(PoolHold.closed_at.is_(None))
    elif status == "closed":
        stmt = stmt.where(PoolHold.closed_at.is_not(None))
    if round_ref:
        rnd = find_round(db_session=db_session, principal=principal, ref=round_ref)
        stmt = stmt.where(PoolHold.round_id == rnd.id)
    total = int(db_session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one())
    rows = db_session.execute(
        stmt.order_by(PoolHold.created_at.desc(), PoolHold.id.desc()).offset(offset).limit(limit)
    ).all()
    states = _hold_states(db_session, [h.id for h, _ in rows])
    return [HoldView(hold=h, barcode=b, states=states[h.id]) for h, b in rows], total


def get_hold(*, db_session: Session, principal: Principal, hold_id: int) -> HoldDetail:
    """One hold with its members in tube order and each member's own task. Refuses a caller
    without testing.read and a hold that does not exist or lies outside the caller's region
    (both: not found, naming ``hold_id``)."""
    principal.require(Perm.testing_read)
    _check_id("hold_id", hold_id)
    found = db_session.execute(
        select(PoolHold, Tube.barcode)
        .join(Tube, Tube.id == PoolHold.tube_id)
        .where(PoolHold.id == hold_id)
    ).first()
    if found is None or not principal.scope.contains(found[0].region_code):
        raise NotFound(
            "pool.hold_not_found",
            problems=[FieldProblem("hold_id", "pool.hold_not_found")],
        )
    hold, barcode = found
    rows = db_session.execute(
        select(TubeMember, Person, RetestTask)
        .join(Person, Person.id == TubeMember.person_id)
        .outerjoin(
            RetestTask,
            and_(RetestTask.hold_id == hold.id, RetestTask.person_id == TubeMember.person_id),
        )
        .where(TubeMember.tube_id == hold.tube_id)
        .order_by(TubeMember.position)
    ).all()
    now = clock.now()
    members = [
        HoldMemberView(
            position=m.position,
            person=p,
            region_code=m.region_code,
            task=t,
            overdue=t is not None and is_overdue(t, now),
        )
        for m, p, t in rows
    ]
    view = HoldView(hold=hold, barcode=barcode, states=_hold_states(db_session, [hold.id])[hold.id])
    return HoldDetail(view=view, members=members)
