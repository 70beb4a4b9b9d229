"""Positive pools, holds and single-tube retests: what happens after results land.

:func:`process_results` is called right after results are recorded for a set of tubes. Every
step is one set-based statement over the tubes given (loaded into a temporary table), so a
whole round's 9,000 positive pools cost the same dozen statements as one:

- a **positive pooled tube** (pooled or household with room for more than one, or any tube with
  more than one member) holds all its members at once: one :class:`PoolHold` per tube (the event
  the health-code and tracing work consume) and a ``positive_pool`` retest task per member in the
  member's own grid, due within :data:`RETEST_WITHIN`;
- a **positive single tube** (not a retest) holds no one: its person is a positive, listed in the
  summary for the tracing work;
- a **retest** result closes the person's open task (pending or sampled): negative releases them,
  positive escalates them (listed in the summary); an invalid retest keeps the task open with a
  new deadline (or opens an ``invalid_result`` task for someone who had none). When every task
  of a hold is closed the hold closes as ``confirmed`` (a member was positive) or ``reversed``
  (all negative: a false-positive pool, the figure behind a lab's reversal rate);
- an **invalid** pooled or single tube sends each member to a retest (``invalid_result``), with no
  hold;
- a pool whose result is no longer positive (a conflict resolved for the other result) has its
  open hold **withdrawn**: closed with outcome ``withdrawn``, its members no longer held and their
  open tasks no longer owed (kept in the record, left out of the work lists).

Processing the same tubes again changes nothing: holds are unique per tube, hold tasks per hold
and person, and every other task records the tube whose result made it owed
(``source_tube_id``). Tasks become ``sampled`` when a retest scan of the person lands after the
task was made (:func:`mark_retests_sampled`, for the ingest of retest scans or a periodic job;
:func:`process_results` runs the same sweep first for the people whose retest is invalid).

Concurrency: the caller has just written the results of these tubes, so their rows are locked by
its transaction and two calls never process one tube at once; holds about to close are locked
(see :data:`LOCK_CLOSING_HOLDS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Select, and_, bindparam, func, or_, select, text
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.db import UtcDateTime, bulk_insert, is_postgres
from bastion.core.errors import FieldProblem, InvalidInput, NotFound
from bastion.regions import codes
from bastion.regions import service as region_service
from bastion.registry.models import Person
from bastion.testing import service as testing_service
from bastion.testing.enums import RetestState
from bastion.testing.models import PoolHold, RetestTask, Round, Tube, TubeMember

#: How long a held person has to give their single-tube retest.
RETEST_WITHIN = timedelta(hours=12)
#: Task states still owing a result.
OPEN_STATES = (RetestState.pending.value, RetestState.sampled.value)
MAX_PAGE = 500
#: Id columns are 64-bit on PostgreSQL; anything larger names nothing (and must not reach SQL).
MAX_ID = 2**63 - 1
_MAX_INT4 = 2**31 - 1

TaskStatus = Literal["open", "pending", "sampled", "overdue", "closed", "all"]
HoldStatus = Literal["open", "closed", "all"]
TASK_STATUSES: tuple[str, ...] = ("open", "pending", "sampled", "overdue", "closed", "all")
HOLD_STATUSES: tuple[str, ...] = ("open", "closed", "all")


@dataclass(frozen=True)
class PoolsSummary:
    """What the results of a set of tubes mean for people. Lists describe the tubes given (the
    same on a second call); counts say what this call changed."""

    #: Tubes given that carry a result.
    tubes: int = 0
    holds_created: int = 0
    tasks_created: int = 0
    tasks_closed: int = 0
    #: Tasks kept open after an invalid retest (new deadline).
    tasks_reopened: int = 0
    #: Holds of the positive pooled tubes given (new or already there).
    hold_ids: list[int] = field(default_factory=list)
    #: People those holds cover.
    held: int = 0
    #: People in positive single tubes (not retests): cases for the tracing work.
    positive: list[int] = field(default_factory=list)
    #: People whose own retest is positive: escalated, cases for the tracing work.
    escalated: list[int] = field(default_factory=list)
    #: People whose own retest is negative and closed their task: released.
    released: list[int] = field(default_factory=list)
    #: Holds closed by these results (now or before), by outcome.
    confirmed_holds: list[int] = field(default_factory=list)
    reversed_holds: list[int] = field(default_factory=list)
    #: Holds of tubes given whose result is no longer positive (now or before).
    withdrawn_holds: list[int] = field(default_factory=list)


# The statements ----------------------------------------------------------------------------------

_BATCH_TABLE = "pools_batch"

_MARK_MATCH = """
    FROM tube_members m JOIN tubes t ON t.id = m.tube_id
    WHERE m.person_id = retest_tasks.person_id AND m.retest
      AND m.scanned_at >= retest_tasks.created_at
      AND (t.result IS NULL OR t.result <> 'invalid')
"""

MARK_SAMPLED = f"""
UPDATE retest_tasks
SET state = 'sampled',
    tube_id = (SELECT m.tube_id {_MARK_MATCH} ORDER BY m.scanned_at DESC, m.id DESC LIMIT 1)
WHERE state = 'pending' {{only}}
  AND EXISTS (SELECT 1 {_MARK_MATCH})
"""  # noqa: S608 - fixed fragments, no input

CREATE_HOLDS = """
INSERT INTO pool_holds (tube_id, round_id, lab_id, region_code, members, created_at)
SELECT t.id, t.round_id, t.lab_id, t.region_code, t.member_count, :now
FROM pools_batch b JOIN tubes t ON t.id = b.tube_id
WHERE t.result = 'positive' AND t.kind <> 'retest' AND t.member_count > 0
  AND ((t.kind IN ('pooled', 'household') AND t.capacity > 1) OR t.member_count > 1)
ON CONFLICT (tube_id) DO NOTHING
"""

CREATE_HOLD_TASKS = """
INSERT INTO retest_tasks (person_id, region_code, reason, hold_id, round_id, state, due_at,
                          source_tube_id, created_at)
SELECT m.person_id, m.region_code, 'positive_pool', h.id, h.round_id, 'pending', :due,
       h.tube_id, :now
FROM pools_batch b
JOIN pool_holds h ON h.tube_id = b.tube_id
JOIN tube_members m ON m.tube_id = h.tube_id
WHERE h.closed_at IS NULL
ON CONFLICT (hold_id, person_id) DO NOTHING
"""

#: Per person, the one retest answer among the tubes given (a positive wins over a negative).
_ANSWERS = """
SELECT person_id, tube_id, result, scanned_at FROM (
    SELECT m.person_id, t.id AS tube_id, t.result, m.scanned_at,
           ROW_NUMBER() OVER (
               PARTITION BY m.person_id
               ORDER BY CASE t.result WHEN 'positive' THEN 0 ELSE 1 END,
                        m.scanned_at DESC, t.id DESC
           ) AS rk
    FROM pools_batch b
    JOIN tubes t ON t.id = b.tube_id
    JOIN tube_members m ON m.tube_id = t.id
    WHERE m.retest AND t.result IN ('negative', 'positive')
) ranked
WHERE rk = 1
"""

CLOSE_TASKS = f"""
UPDATE retest_tasks
SET state = a.result, closed_at = :now, tube_id = a.tube_id
FROM ({_ANSWERS}) AS a
WHERE retest_tasks.person_id = a.person_id
  AND retest_tasks.state IN ('pending', 'sampled')
  AND retest_tasks.created_at <= a.scanned_at
"""  # noqa: S608 - fixed fragments, no input

REOPEN_TASKS = """
UPDATE retest_tasks
SET state = 'pending', tube_id = NULL, source_tube_id = a.tube_id, due_at = :due
FROM (
    SELECT m.person_id, t.id AS tube_id, m.scanned_at
    FROM pools_batch b
    JOIN tubes t ON t.id = b.tube_id
    JOIN tube_members m ON m.tube_id = t.id
    WHERE m.retest AND t.result = 'invalid'
) AS a
WHERE retest_tasks.person_id = a.person_id
  AND retest_tasks.state IN ('pending', 'sampled')
  AND retest_tasks.created_at <= a.scanned_at
  AND (retest_tasks.tube_id IS NULL OR retest_tasks.tube_id = a.tube_id)
  AND (retest_tasks.source_tube_id IS NULL OR retest_tasks.source_tube_id <> a.tube_id)
"""

#: Invalid tubes: every member owes a retest. A retest member already owing one (the task just
#: kept open above) gets no second task.
CREATE_INVALID_TASKS = """
INSERT INTO retest_tasks (person_id, region_code, reason, round_id, state, due_at,
                          source_tube_id, created_at)
SELECT m.person_id, m.region_code, 'invalid_result', t.round_id, 'pending', :due, t.id, :now
FROM pools_batch b
JOIN tubes t ON t.id = b.tube_id
JOIN tube_members m ON m.tube_id = t.id
WHERE t.result = 'invalid'
  AND NOT EXISTS (
      SELECT 1 FROM retest_tasks r
      WHERE r.person_id = m.person_id
        AND (r.source_tube_id = t.id OR (m.retest AND r.state IN ('pending', 'sampled')))
  )
"""

#: The people retested in the tubes given: the only tasks one call of process_results touches.
_BATCH_RETESTED = """
SELECT m.person_id FROM pools_batch b JOIN tube_members m ON m.tube_id = b.tube_id WHERE m.retest
"""

_INVALID_RETESTED = """
SELECT m.person_id FROM pools_batch b
JOIN tubes t ON t.id = b.tube_id
JOIN tube_members m ON m.tube_id = t.id
WHERE m.retest AND t.result = 'invalid'
"""

#: Holds that may close now, locked (PostgreSQL): two uploads closing the last two open tasks of
#: one hold at once would otherwise each see the other's task still open, and neither would
#: close the hold. The second waits here and then sees the first's work.
LOCK_CLOSING_HOLDS = f"""
SELECT id FROM pool_holds
WHERE closed_at IS NULL
  AND id IN (SELECT r.hold_id FROM retest_tasks r
             WHERE r.hold_id IS NOT NULL AND r.person_id IN ({_BATCH_RETESTED}))
ORDER BY id
FOR UPDATE
"""  # noqa: S608 - fixed fragments, no input

CLOSE_HOLDS = """
UPDATE pool_holds
SET closed_at = :now,
    outcome = CASE
        WHEN EXISTS (SELECT 1 FROM retest_tasks r
                     WHERE r.hold_id = pool_holds.id AND r.state = 'positive')
        THEN 'confirmed' ELSE 'reversed' END
WHERE pool_holds.closed_at IS NULL
  AND pool_holds.id IN (
      SELECT r.hold_id
      FROM pools_batch b
      JOIN tube_members m ON m.tube_id = b.tube_id
      JOIN retest_tasks r ON r.person_id = m.person_id
      WHERE m.retest AND r.hold_id IS NOT NULL
  )
  AND NOT EXISTS (SELECT 1 FROM retest_tasks r
                  WHERE r.hold_id = pool_holds.id AND r.state IN ('pending', 'sampled'))
"""

WITHDRAW_HOLDS = """
UPDATE pool_holds
SET closed_at = :now, outcome = 'withdrawn'
WHERE closed_at IS NULL
  AND tube_id IN (SELECT t.id FROM pools_batch b JOIN tubes t ON t.id = b.tube_id
                  WHERE t.result IS NOT NULL AND t.result <> 'positive')
"""

WITHDRAWN_OF_BATCH = """
SELECT h.id FROM pools_batch b JOIN pool_holds h ON h.tube_id = b.tube_id
WHERE h.outcome = 'withdrawn'
ORDER BY h.id
"""

COUNT_RESULTED = """
SELECT COUNT(*) FROM pools_batch b JOIN tubes t ON t.id = b.tube_id WHERE t.result IS NOT NULL
"""

HOLDS_OF_BATCH = """
SELECT h.id, h.members FROM pools_batch b JOIN pool_holds h ON h.tube_id = b.tube_id
WHERE h.outcome IS NULL OR h.outcome <> 'withdrawn'
ORDER BY h.id
"""

POSITIVE_SINGLES = """
SELECT DISTINCT m.person_id
FROM pools_batch b
JOIN tubes t ON t.id = b.tube_id
JOIN tube_members m ON m.tube_id = t.id
WHERE t.result = 'positive' AND NOT m.retest
  AND NOT EXISTS (SELECT 1 FROM pool_holds h WHERE h.tube_id = t.id)
ORDER BY m.person_id
"""

ESCALATED = """
SELECT DISTINCT m.person_id
FROM pools_batch b
JOIN tubes t ON t.id = b.tube_id
JOIN tube_members m ON m.tube_id = t.id
WHERE t.result = 'positive' AND m.retest
ORDER BY m.person_id
"""

RELEASED = """
SELECT DISTINCT r.person_id
FROM pools_batch b
JOIN tube_members m ON m.tube_id = b.tube_id
JOIN retest_tasks r ON r.person_id = m.person_id AND r.tube_id = m.tube_id
WHERE m.retest AND r.state = 'negative'
ORDER BY r.person_id
"""

CLOSED_HOLDS = """
SELECT DISTINCT h.id, h.outcome
FROM pools_batch b
JOIN tube_members m ON m.tube_id = b.tube_id
JOIN retest_tasks r ON r.person_id = m.person_id AND r.tube_id = m.tube_id
JOIN pool_holds h ON h.id = r.hold_id
WHERE m.retest AND h.closed_at IS NOT NULL
ORDER BY h.id
"""


def _stmt(sql: str, params: dict[str, Any]) -> Any:
    """``sql`` as a text statement whose time parameters go through :class:`UtcDateTime` (so
    SQLite compares them as the text the columns hold)."""
    stmt = text(sql)
    times = [
        bindparam(k, type_=UtcDateTime()) for k, v in params.items() if isinstance(v, datetime)
    ]
    return stmt.bindparams(*times) if times else stmt


def _run(db_session: Session, sql: str, **params: Any) -> int:
    """Execute one statement; the number of rows it wrote."""
    result = cast(CursorResult[Any], db_session.execute(_stmt(sql, params), params))
    return max(result.rowcount or 0, 0)


def _ids(db_session: Session, sql: str) -> list[int]:
    return [int(row[0]) for row in db_session.execute(text(sql))]


def _load_batch(db_session: Session, tube_ids: Sequence[int]) -> None:
    db_session.execute(
        text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_BATCH_TABLE} (tube_id BIGINT PRIMARY KEY)")
    )
    db_session.execute(text(f"DELETE FROM {_BATCH_TABLE}"))  # noqa: S608 - a fixed name
    unique = sorted({int(i) for i in tube_ids if 0 < int(i) <= MAX_ID})
    bulk_insert(db_session, _BATCH_TABLE, ["tube_id"], ((i,) for i in unique))
    if is_postgres(db_session) and len(unique) > 1_000:
        # A fresh temporary table has no statistics: without them the planner takes it for a
        # few rows and picks nested loops over a round's worth of tubes.
        db_session.execute(text(f"ANALYZE {_BATCH_TABLE}"))


def _expire_loaded(db_session: Session) -> None:
    """Holds and tasks already loaded in the session are stale after the statements above."""
    for obj in list(db_session.identity_map.values()):
        if isinstance(obj, PoolHold | RetestTask):
            db_session.expire(obj)


def mark_retests_sampled(*, db_session: Session, round_id: int | None = None) -> int:
    """Mark ``sampled`` every pending task (of ``round_id``, or of all rounds) whose person has a
    retest scan made after the task was created, on a tube not found invalid; the task points at
    that tube. Set-based and idempotent; returns the number of tasks marked. Refuses nothing."""
    params: dict[str, Any] = {}
    only = ""
    if round_id is not None:
        only = "AND round_id = :round_id"
        params["round_id"] = round_id
    marked = _run(db_session, MARK_SAMPLED.format(only=only), **params)
    _expire_loaded(db_session)
    return marked


def process_results(
    *,
    db_session: Session,
    principal: Principal,
    tube_ids: Sequence[int],
    retest_within: timedelta = RETEST_WITHIN,
) -> PoolsSummary:
    """Turn the results just recorded for ``tube_ids`` into holds, retest tasks, releases and
    escalations (see the module docstring), set-based, in the caller's transaction. Tubes
    without a result are ignored; processing the same tubes again creates nothing. Refuses a
    caller without the permission to record results and a non-positive ``retest_within``."""
    principal.require(Perm.results_write)
    if retest_within <= timedelta(0):
        raise InvalidInput.one("retest_within", "field.must_be_positive")
    now = clock.now()
    due = now + retest_within
    _load_batch(db_session, tube_ids)
    try:
        tubes = int(db_session.execute(text(COUNT_RESULTED)).scalar_one())
        if tubes == 0:
            return PoolsSummary()
        # The sweep of :func:`mark_retests_sampled`, for the people whose retest here is
        # invalid: a later sample of theirs already in the lab answers the task kept open below.
        # A negative or positive retest closes its task by person and time, sampled or not,
        # so sweeping those people first would only rewrite rows the close rewrites again; a
        # sweep of every pending task from each of many concurrent uploads would deadlock.
        _run(db_session, MARK_SAMPLED.format(only=f"AND person_id IN ({_INVALID_RETESTED})"))
        _run(db_session, WITHDRAW_HOLDS, now=now)
        holds_created = _run(db_session, CREATE_HOLDS, now=now)
        created = _run(db_session, CREATE_HOLD_TASKS, now=now, due=due)
        closed = _run(db_session, CLOSE_TASKS, now=now)
        reopened = _run(db_session, REOPEN_TASKS, due=due)
        created += _run(db_session, CREATE_INVALID_TASKS, now=now, due=due)
        if is_postgres(db_session):
            db_session.execute(text(LOCK_CLOSING_HOLDS))
        _run(db_session, CLOSE_HOLDS, now=now)
        holds = db_session.execute(text(HOLDS_OF_BATCH)).all()
        closed_holds = db_session.execute(text(CLOSED_HOLDS)).all()
        summary = PoolsSummary(
            tubes=tubes,
            holds_created=holds_created,
            tasks_created=created,
            tasks_closed=closed,
            tasks_reopened=reopened,
            hold_ids=[int(h[0]) for h in holds],
            held=sum(int(h[1]) for h in holds),
            positive=_ids(db_session, POSITIVE_SINGLES),
            escalated=_ids(db_session, ESCALATED),
            released=_ids(db_session, RELEASED),
            confirmed_holds=[int(h[0]) for h in closed_holds if h[1] == "confirmed"],
            reversed_holds=[int(h[0]) for h in closed_holds if h[1] == "reversed"],
            withdrawn_holds=_ids(db_session, WITHDRAWN_OF_BATCH),
        )
    finally:
        db_session.execute(text(f"DELETE FROM {_BATCH_TABLE}"))  # noqa: S608 - a fixed name
        _expire_loaded(db_session)
    return summary


# Holds: the queries the health-code and tracing work use -----------------------------------------


def _held_at(at: datetime | None) -> Any:
    """A hold's task still open, in a hold still open, now or at the instant ``at`` (a hold
    closes when all its tasks have, or when it is withdrawn)."""
    if at is None:
        return and_(RetestTask.state.in_(OPEN_STATES), PoolHold.closed_at.is_(None))
    return and_(
        RetestTask.created_at <= at,
        or_(RetestTask.closed_at.is_(None), RetestTask.closed_at > at),
        or_(PoolHold.closed_at.is_(None), PoolHold.closed_at > at),
    )


def owed_clause() -> Any:
    """Tasks still owed: open, and not of a withdrawn hold. Needs :class:`PoolHold` outer-joined
    on ``RetestTask.hold_id``."""
    return and_(
        RetestTask.state.in_(OPEN_STATES),
        or_(PoolHold.id.is_(None), PoolHold.outcome.is_(None), PoolHold.outcome != "withdrawn"),
    )


def _visible_task() -> Any:
    """What work lists show: every task except the still-open ones of a withdrawn hold."""
    return or_(
        RetestTask.state.not_in(OPEN_STATES),
        PoolHold.id.is_(None),
        PoolHold.outcome.is_(None),
        PoolHold.outcome != "withdrawn",
    )


def held_persons_query(*, at: datetime | None = None) -> Select[int, int | None]:
    """A SELECT of ``(person_id, hold_id)`` for everyone under a positive-pool hold now (or at
    ``at``): in a positive pool and not yet released or escalated by their own retest (nor
    released by the hold's withdrawal). Meant to be joined by set-based work (health codes),
    never loaded whole into memory."""
    return (
        select(RetestTask.person_id, RetestTask.hold_id)
        .join(PoolHold, PoolHold.id == RetestTask.hold_id)
        .where(_held_at(at))
    )


def held_person_ids(*, db_session: Session, at: datetime | None = None) -> set[int]:
    """The ids of everyone under a positive-pool hold now (or at ``at``). Refuses nothing."""
    sub = held_persons_query(at=at).subquery()
    return set(db_session.execute(select(sub.c.person_id).distinct()).scalars())


def holds_for_person(
    *, db_session: Session, person_id: int, at: datetime | None = None
) -> list[PoolHold]:
    """The holds ``person_id`` is under now (or at ``at``): positive pools they were in whose
    retest of them is still owed. Oldest first. Refuses nothing."""
    stmt = (
        select(PoolHold)
        .join(RetestTask, RetestTask.hold_id == PoolHold.id)
        .where(RetestTask.person_id == person_id, _held_at(at))
        .order_by(PoolHold.created_at, PoolHold.id)
    )
    return list(db_session.execute(stmt).scalars())


def lab_hold_outcomes(
    *, db_session: Session, lab_ids: Sequence[int] | None = None
) -> dict[int, tuple[int, int]]:
    """Per lab: (closed holds, reversed holds). The reversal rate is the second over the first:
    positive pools whose members all retested negative. Refuses nothing."""
    stmt = (
        select(PoolHold.lab_id, PoolHold.outcome, func.count())
        .where(PoolHold.closed_at.is_not(None), PoolHold.lab_id.is_not(None))
        .group_by(PoolHold.lab_id, PoolHold.outcome)
    )
    if lab_ids is not None:
        stmt = stmt.where(PoolHold.lab_id.in_(list(lab_ids)))
    out: dict[int, tuple[int, int]] = {}
    for lab_id, outcome, n in db_session.execute(stmt):
        if lab_id is None:
            continue
        closed, rev = out.get(lab_id, (0, 0))
        out[lab_id] = (closed + n, rev + (n if outcome == "reversed" else 0))
    return out


# Views for people: holds and tasks ---------------------------------------------------------------


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
        .where(_visible_task())
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
