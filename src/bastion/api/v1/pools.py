"""Positive pools, holds, retest tasks and antigen self-tests.

Staff with testing.read see holds and tasks in their region (a grid worker: their grid's tasks,
with what is overdue); residents see their own tasks and report their own antigen tests. People
are shown masked (surname, first and last ID characters): unmasking is the registry's audited
``GET /persons/{id}?unmask=true``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel
from sqlalchemy import select

from bastion.api.deps import CurrentPrincipal, SessionDep
from bastion.core import clock
from bastion.registry import service as registry_service
from bastion.registry.schemas import PersonRead
from bastion.testing import antigen, pools
from bastion.testing.models import AntigenReport, RetestTask

router = APIRouter(tags=["positive pools and retests"])

Offset = Annotated[int, Query(ge=0, le=pools.MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=pools.MAX_PAGE)]
RoundRef = Annotated[str | None, Query(alias="round", max_length=40)]


class TaskBrief(BaseModel):
    id: int
    reason: str
    state: str
    overdue: bool
    due_at: datetime
    created_at: datetime
    closed_at: datetime | None
    hold_id: int | None
    antigen_id: int | None
    round_id: int | None


class TaskRead(TaskBrief):
    person_id: int
    person: PersonRead
    #: The person's grid: where the task is to be done.
    region_code: str
    #: The single tube that answers the task, once sampled.
    tube: str | None


class TaskPage(BaseModel):
    items: list[TaskRead]
    total: int
    offset: int
    limit: int


class HoldRead(BaseModel):
    id: int
    tube: str
    round_id: int
    lab_id: int | None
    region_code: str
    members: int
    created_at: datetime
    closed_at: datetime | None
    #: confirmed (a member retested positive), reversed (all negative) or withdrawn (the
    #: pool's positive was taken back by a conflict resolution), once closed.
    outcome: str | None
    #: The members' tasks counted by state (pending, sampled, negative, positive).
    tasks: dict[str, int]


class HoldPage(BaseModel):
    items: list[HoldRead]
    total: int
    offset: int
    limit: int


class HoldMemberRead(BaseModel):
    position: int
    person: PersonRead
    region_code: str
    task: TaskBrief | None


class HoldDetailRead(HoldRead):
    member_list: list[HoldMemberRead]


class AntigenRead(BaseModel):
    id: int
    person_id: int
    region_code: str
    result: str
    tested_at: datetime
    reported_at: datetime
    #: False when this exact report was already on record (nothing new written).
    created: bool
    #: The PCR task a positive report led to (new, or the one the person already owed).
    task: TaskBrief | None


def _brief(task: RetestTask, now: datetime) -> TaskBrief:
    return TaskBrief(
        id=task.id,
        reason=task.reason,
        state=task.state,
        overdue=pools.is_overdue(task, now),
        due_at=task.due_at,
        created_at=task.created_at,
        closed_at=task.closed_at,
        hold_id=task.hold_id,
        antigen_id=task.antigen_id,
        round_id=task.round_id,
    )


def _task_out(view: pools.TaskView, now: datetime) -> TaskRead:
    brief = _brief(view.task, now)
    return TaskRead(
        **brief.model_dump(),
        person_id=view.task.person_id,
        person=registry_service.to_read(view.person),
        region_code=view.task.region_code,
        tube=view.tube_barcode,
    )


def _hold_out(view: pools.HoldView) -> HoldRead:
    h = view.hold
    return HoldRead(
        id=h.id,
        tube=view.barcode,
        round_id=h.round_id,
        lab_id=h.lab_id,
        region_code=h.region_code,
        members=h.members,
        created_at=h.created_at,
        closed_at=h.closed_at,
        outcome=h.outcome,
        tasks=view.states,
    )


def _antigen_out(report: AntigenReport, task: RetestTask | None, created: bool) -> AntigenRead:
    return AntigenRead(
        id=report.id,
        person_id=report.person_id,
        region_code=report.region_code,
        result=report.result,
        tested_at=report.tested_at,
        reported_at=report.reported_at,
        created=created,
        task=_brief(task, clock.now()) if task is not None else None,
    )


@router.get("/pools/holds", response_model=HoldPage)
def list_holds(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Annotated[str, Query(max_length=20)] = "open",
    round_ref: RoundRef = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> HoldPage:
    """Positive pools in the caller's region, newest first: ``status`` open (default), closed
    or all; ``round`` a round id, code or ``latest``."""
    views, total = pools.list_holds(
        db_session=session,
        principal=principal,
        status=status,
        round_ref=round_ref,
        offset=offset,
        limit=limit,
    )
    return HoldPage(items=[_hold_out(v) for v in views], total=total, offset=offset, limit=limit)


@router.get("/pools/holds/{hold_id}", response_model=HoldDetailRead)
def read_hold(
    hold_id: Annotated[int, Path(ge=1, le=pools.MAX_ID)],
    session: SessionDep,
    principal: CurrentPrincipal,
) -> HoldDetailRead:
    """One positive pool with its members (masked) in tube order and each one's retest task."""
    detail = pools.get_hold(db_session=session, principal=principal, hold_id=hold_id)
    now = clock.now()
    return HoldDetailRead(
        **_hold_out(detail.view).model_dump(),
        member_list=[
            HoldMemberRead(
                position=m.position,
                person=registry_service.to_read(m.person),
                region_code=m.region_code,
                task=_brief(m.task, now) if m.task is not None else None,
            )
            for m in detail.members
        ],
    )


@router.get("/retests", response_model=TaskPage)
def list_retests(
    session: SessionDep,
    principal: CurrentPrincipal,
    region: Annotated[str | None, Query(max_length=15)] = None,
    round_ref: RoundRef = None,
    status: Annotated[str, Query(max_length=20)] = "open",
    offset: Offset = 0,
    limit: Limit = 100,
) -> TaskPage:
    """Retest tasks in ``region`` (default: the caller's whole region), soonest due first, each
    flagged when overdue. ``status``: open (default), pending, sampled, overdue, closed, all."""
    views, total = pools.list_tasks(
        db_session=session,
        principal=principal,
        region_code=region,
        round_ref=round_ref,
        status=status,
        offset=offset,
        limit=limit,
    )
    now = clock.now()
    return TaskPage(
        items=[_task_out(v, now) for v in views], total=total, offset=offset, limit=limit
    )


@router.get("/retests/mine", response_model=list[TaskRead])
def my_retests(session: SessionDep, principal: CurrentPrincipal) -> list[TaskRead]:
    """The caller's own retest tasks: what they owe and by when."""
    now = clock.now()
    return [_task_out(v, now) for v in pools.my_tasks(db_session=session, principal=principal)]


@router.post(
    "/antigen-reports",
    response_model=AntigenRead,
    status_code=201,
    responses={200: {"description": "The same report was already on record"}},
)
def post_antigen_report(
    body: antigen.AntigenReportIn,
    response: Response,
    session: SessionDep,
    principal: CurrentPrincipal,
) -> AntigenRead:
    """Report an antigen self-test (one's own, or a grid worker for someone in their grid). A
    positive one creates a PCR retest task due within 12 hours. Re-sending the same report
    answers 200 with the first one."""
    outcome = antigen.report_antigen(db_session=session, principal=principal, data=body)
    if not outcome.created:
        response.status_code = 200
    return _antigen_out(outcome.report, outcome.task, outcome.created)


@router.get("/antigen-reports/mine", response_model=list[AntigenRead])
def my_antigen_reports(session: SessionDep, principal: CurrentPrincipal) -> list[AntigenRead]:
    """The caller's own antigen reports, newest first, each with the PCR task a positive one
    set (``created`` is false: listing creates nothing)."""
    reports = antigen.my_reports(db_session=session, principal=principal)
    tasks = {
        t.antigen_id: t
        for t in session.execute(
            select(RetestTask).where(RetestTask.antigen_id.in_([r.id for r in reports]))
        ).scalars()
    }
    return [_antigen_out(r, tasks.get(r.id), False) for r in reports]
