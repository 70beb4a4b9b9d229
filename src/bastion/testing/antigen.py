"""Antigen self-tests (抗原自测), reported by residents for themselves or by grid workers for the
people of their grid. A positive antigen sends the person to a PCR test: a retest task with
reason ``antigen``, due within :data:`ANTIGEN_RETEST_WITHIN`, unless they already owe one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import FieldProblem, Forbidden, InvalidInput, NotFound
from bastion.registry.models import Person
from bastion.testing.enums import Result, RetestReason, RetestState
from bastion.testing.models import AntigenReport, PoolHold, RetestTask
from bastion.testing.pools import MAX_ID, owed_clause

#: How long a positive antigen leaves the person to give a PCR sample.
ANTIGEN_RETEST_WITHIN = timedelta(hours=12)
#: A self-test older than this is no longer news.
MAX_AGE = timedelta(days=7)
#: Phones and the server disagree on the time by a few minutes.
CLOCK_SKEW = timedelta(minutes=10)


class AntigenReportIn(BaseModel):
    """A self-test result. ``person_id`` defaults to the caller's own person; a time without an
    offset is read in the deployment's zone (what a resident's phone shows)."""

    person_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    result: str = Field(max_length=16)
    tested_at: datetime


@dataclass(frozen=True)
class AntigenOutcome:
    report: AntigenReport
    #: The PCR task this report created, or the open one the person already owed.
    task: RetestTask | None
    #: False when the same report was already on record (nothing new was written).
    created: bool
    task_created: bool


def _person_for(*, db_session: Session, principal: Principal, person_id: int | None) -> Person:
    """Whom the report is about: oneself, or (for staff who read the registry) someone in the
    caller's region. Refuses anyone else, naming ``person_id``."""
    own = principal.person_id
    if person_id is None or person_id == own:
        if own is None:
            raise InvalidInput.one("person_id", "antigen.person_required")
        # Lock the person row: two identical reports sent at once (a double tap, a retry)
        # would otherwise both find no earlier copy and both be written.
        person = db_session.execute(
            select(Person).where(Person.id == own).with_for_update()
        ).scalar_one_or_none()
        if person is None:
            raise NotFound(
                "person.not_found", problems=[FieldProblem("person_id", "person.not_found")]
            )
        return person
    if not principal.can(Perm.registry_read):
        raise Forbidden(
            "antigen.only_self", problems=[FieldProblem("person_id", "antigen.only_self")]
        )
    person = db_session.execute(
        select(Person).where(Person.id == person_id).with_for_update()  # same race as above
    ).scalar_one_or_none()
    if person is None or not principal.scope.contains(person.region_code):
        raise NotFound(
            "antigen.person_outside",
            problems=[FieldProblem("person_id", "antigen.person_outside")],
        )
    return person


def _open_task(db_session: Session, person_id: int) -> RetestTask | None:
    """The open task (pending or sampled) due soonest that the person already owes."""
    return db_session.execute(
        select(RetestTask)
        .outerjoin(PoolHold, PoolHold.id == RetestTask.hold_id)
        .where(RetestTask.person_id == person_id, owed_clause())
        .order_by(RetestTask.due_at, RetestTask.id)
        .limit(1)
    ).scalar_one_or_none()


def _tested_at(value: datetime, now: datetime) -> datetime:
    moment = value if value.tzinfo is not None else value.replace(tzinfo=clock.local_tz())
    if moment > now + CLOCK_SKEW:
        raise InvalidInput.one("tested_at", "antigen.in_future")
    if moment < now - MAX_AGE:
        raise InvalidInput.one("tested_at", "antigen.too_old", days=MAX_AGE.days)
    return moment


def report_antigen(
    *, db_session: Session, principal: Principal, data: AntigenReportIn
) -> AntigenOutcome:
    """Record an antigen self-test; a positive one creates a PCR retest task (reason antigen,
    due within 12 hours) unless the person already has an open task. The same person, time and
    result reported again returns the first report and writes nothing. Refuses a caller without
    antigen.report, a resident reporting for someone else, a person outside the caller's region
    or unknown, an unknown result, and a test time in the future or more than 7 days old."""
    principal.require(Perm.antigen_report)
    result = data.result.strip().lower()
    now = clock.now()
    problems: list[FieldProblem] = []
    if result not in Result.__members__:
        problems.append(FieldProblem("result", "antigen.bad_result", {"value": data.result[:16]}))
    try:
        tested_at = _tested_at(data.tested_at, now)
    except InvalidInput as err:
        problems.extend(err.problems)
        tested_at = now
    if problems:
        raise InvalidInput(problems=problems)
    person = _person_for(db_session=db_session, principal=principal, person_id=data.person_id)

    existing = db_session.execute(
        select(AntigenReport).where(
            AntigenReport.person_id == person.id,
            AntigenReport.tested_at == tested_at,
            AntigenReport.result == result,
        )
    ).scalar_one_or_none()
    if existing is not None:
        task = db_session.execute(
            select(RetestTask).where(RetestTask.antigen_id == existing.id)
        ).scalar_one_or_none()
        if task is None and result == Result.positive:
            task = _open_task(db_session, person.id)
        return AntigenOutcome(report=existing, task=task, created=False, task_created=False)

    report = AntigenReport(
        person_id=person.id,
        region_code=person.region_code,
        result=result,
        tested_at=tested_at,
        reported_at=now,
        reporter_id=principal.user_id,
    )
    db_session.add(report)
    db_session.flush()
    if result != Result.positive:
        return AntigenOutcome(report=report, task=None, created=True, task_created=False)

    open_task = _open_task(db_session, person.id)
    if open_task is not None:
        return AntigenOutcome(report=report, task=open_task, created=True, task_created=False)
    task = RetestTask(
        person_id=person.id,
        region_code=person.region_code,
        reason=RetestReason.antigen.value,
        antigen_id=report.id,
        state=RetestState.pending.value,
        due_at=now + ANTIGEN_RETEST_WITHIN,
        created_at=now,
    )
    db_session.add(task)
    db_session.flush()
    return AntigenOutcome(report=report, task=task, created=True, task_created=True)


def my_reports(*, db_session: Session, principal: Principal) -> list[AntigenReport]:
    """The caller's own antigen reports, newest first. Refuses a caller not linked to a person
    or without self.read."""
    principal.require(Perm.self_read)
    if principal.person_id is None:
        raise NotFound(
            "antigen.person_required",
            problems=[FieldProblem("person_id", "antigen.person_required")],
        )
    return list(
        db_session.execute(
            select(AntigenReport)
            .where(AntigenReport.person_id == principal.person_id)
            .order_by(AntigenReport.tested_at.desc(), AntigenReport.id.desc())
        ).scalars()
    )
