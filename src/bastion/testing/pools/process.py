"""The set-based processing of results: holds, retest tasks, releases and escalations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, column, insert, select, table, text
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.db import (
    UtcDateTime,
    among,
    analyze_if_many,
    empty_temp_tables,
    id_chunks,
    is_postgres,
)
from bastion.core.errors import InvalidInput
from bastion.testing.models import PoolHold, RetestTask, Tube

#: How long a held person has to give their single-tube retest.
RETEST_WITHIN = timedelta(hours=12)
#: Id columns are 64-bit on PostgreSQL; anything larger names nothing (and must not reach SQL).
MAX_ID = 2**63 - 1


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
    #: Answered tasks whose answer changed with their retest tube's result (a conflict
    #: resolved for the other result): negative ↔ positive.
    tasks_reanswered: int = 0
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
_RETESTED_TABLE = "pools_retested"
# Each call loads the tubes given with their result (``pools_batch``) and the retest members of
# those tubes (``pools_retested``), once; every statement below filters on these, never on
# ``tubes.result`` itself. An upload's statistics predate its results, so to the planner "a tube
# with a result" was one row, and it walked every tube resulted so far by the result index to
# find the batch's: quadratic in a round (900,000 tubes: 25 s of the pool work). The retest
# members come through a partial index, not from the ten members of every tube given.
# The batch's statements walk from the batch's few tubes outwards. They are written with CROSS
# JOIN and the conditions in WHERE: the same joins to PostgreSQL, which orders them itself, but
# to SQLite an order it keeps, so it never scans all of tube_members to serve an ORDER BY.

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
WHERE b.result = 'positive' AND t.kind <> 'retest' AND t.member_count > 0
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
WHERE b.result = 'positive' AND h.closed_at IS NULL
ON CONFLICT (hold_id, person_id) DO NOTHING
"""

#: Per person, the one retest answer among the tubes given (a positive wins over a negative).
_ANSWERS = """
SELECT person_id, tube_id, result, scanned_at FROM (
    SELECT person_id, tube_id, result, scanned_at,
           ROW_NUMBER() OVER (
               PARTITION BY person_id
               ORDER BY CASE result WHEN 'positive' THEN 0 ELSE 1 END,
                        scanned_at DESC, tube_id DESC
           ) AS rk
    FROM pools_retested
    WHERE result IN ('negative', 'positive')
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

#: A retest tube whose result changed in place (a conflict resolved for the other result): the
#: tasks it answered follow it between negative and positive (released ↔ escalated). A task it
#: answered that the tube now calls invalid keeps its answer (nothing in the record says what
#: it owed before); a case opened meanwhile is never touched here. A task's tube is always one
#: its person was retested in, so the tasks are found by person (indexed), then tube.
RECLOSE_TASKS = """
UPDATE retest_tasks
SET state = a.result
FROM (
    SELECT DISTINCT person_id, tube_id, result FROM pools_retested
    WHERE result IN ('negative', 'positive')
) AS a
WHERE retest_tasks.person_id = a.person_id AND retest_tasks.tube_id = a.tube_id
  AND retest_tasks.state IN ('negative', 'positive')
  AND retest_tasks.state <> a.result
"""

#: Closed holds whose tasks were answered by the tubes given: their outcome follows the tasks
#: (after :data:`RECLOSE_TASKS`; a withdrawn hold stays withdrawn).
REJUDGE_HOLDS = """
UPDATE pool_holds
SET outcome = CASE
        WHEN EXISTS (SELECT 1 FROM retest_tasks r
                     WHERE r.hold_id = pool_holds.id AND r.state = 'positive')
        THEN 'confirmed' ELSE 'reversed' END
WHERE pool_holds.closed_at IS NOT NULL
  AND pool_holds.outcome IN ('confirmed', 'reversed')
  AND pool_holds.id IN (
      SELECT r.hold_id FROM pools_retested a
      JOIN retest_tasks r ON r.person_id = a.person_id AND r.tube_id = a.tube_id
      WHERE r.hold_id IS NOT NULL
  )
"""

REOPEN_TASKS = """
UPDATE retest_tasks
SET state = 'pending', tube_id = NULL, source_tube_id = a.tube_id, due_at = :due
FROM (
    SELECT person_id, tube_id, scanned_at FROM pools_retested WHERE result = 'invalid'
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
WHERE b.result = 'invalid'
  AND NOT EXISTS (
      SELECT 1 FROM retest_tasks r
      WHERE r.person_id = m.person_id
        AND (r.source_tube_id = t.id OR (m.retest AND r.state IN ('pending', 'sampled')))
  )
"""

#: The people retested in the tubes given: the only tasks one call of process_results touches.
_BATCH_RETESTED = "SELECT person_id FROM pools_retested"

_INVALID_RETESTED = "SELECT person_id FROM pools_retested WHERE result = 'invalid'"

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
      FROM pools_retested a
      JOIN retest_tasks r ON r.person_id = a.person_id
      WHERE r.hold_id IS NOT NULL
  )
  AND NOT EXISTS (SELECT 1 FROM retest_tasks r
                  WHERE r.hold_id = pool_holds.id AND r.state IN ('pending', 'sampled'))
"""

WITHDRAW_HOLDS = """
UPDATE pool_holds
SET closed_at = :now, outcome = 'withdrawn'
WHERE closed_at IS NULL
  AND tube_id IN (SELECT tube_id FROM pools_batch
                  WHERE result IS NOT NULL AND result <> 'positive')
"""

WITHDRAWN_OF_BATCH = """
SELECT h.id FROM pools_batch b JOIN pool_holds h ON h.tube_id = b.tube_id
WHERE h.outcome = 'withdrawn'
ORDER BY h.id
"""

COUNT_RESULTED = """
SELECT COUNT(*) FROM pools_batch WHERE result IS NOT NULL
"""

HOLDS_OF_BATCH = """
SELECT h.id, h.members FROM pools_batch b JOIN pool_holds h ON h.tube_id = b.tube_id
WHERE h.outcome IS NULL OR h.outcome <> 'withdrawn'
ORDER BY h.id
"""

POSITIVE_SINGLES = """
SELECT DISTINCT m.person_id
FROM pools_batch b
CROSS JOIN tube_members m
WHERE m.tube_id = b.tube_id
  AND b.result = 'positive' AND NOT m.retest
  AND NOT EXISTS (SELECT 1 FROM pool_holds h WHERE h.tube_id = b.tube_id)
ORDER BY m.person_id
"""

ESCALATED = """
SELECT DISTINCT person_id FROM pools_retested WHERE result = 'positive' ORDER BY person_id
"""

RELEASED = """
SELECT DISTINCT r.person_id
FROM pools_retested a
CROSS JOIN retest_tasks r
WHERE r.person_id = a.person_id AND r.tube_id = a.tube_id
  -- (state || '') keeps SQLite on the person_id index instead of walking every negative task.
  AND (r.state || '') = 'negative'
ORDER BY r.person_id
"""

CLOSED_HOLDS = """
SELECT DISTINCT h.id, h.outcome
FROM pools_retested a
CROSS JOIN retest_tasks r
CROSS JOIN pool_holds h
WHERE r.person_id = a.person_id AND r.tube_id = a.tube_id
  AND h.id = r.hold_id AND h.closed_at IS NOT NULL
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


_BATCH = table(_BATCH_TABLE, column("tube_id"), column("result"))

#: The retest members of the tubes given, with their tube's result (none yet, for some).
LOAD_RETESTED = """
INSERT INTO pools_retested (person_id, tube_id, result, scanned_at)
SELECT m.person_id, b.tube_id, b.result, m.scanned_at
FROM pools_batch b CROSS JOIN tube_members m
WHERE m.tube_id = b.tube_id AND m.retest
"""


def _create_batch_tables(db_session: Session) -> None:
    ts = "TIMESTAMP WITH TIME ZONE" if is_postgres(db_session) else "DATETIME"
    for ddl in (
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_BATCH_TABLE} "
        "(tube_id BIGINT PRIMARY KEY, result VARCHAR(16))",
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_RETESTED_TABLE} "
        f"(person_id BIGINT, tube_id BIGINT, result VARCHAR(16), scanned_at {ts})",
    ):
        db_session.execute(text(ddl))


def _clear_batch(db_session: Session) -> None:
    empty_temp_tables(db_session, _BATCH_TABLE, _RETESTED_TABLE)


def _load_batch(db_session: Session, tube_ids: Sequence[int]) -> None:
    _create_batch_tables(db_session)
    _clear_batch(db_session)
    unique = sorted({int(i) for i in tube_ids if 0 < int(i) <= MAX_ID})
    tubes = Tube.__table__.c
    # By primary key only: the batch's tubes, with whatever result they have.
    for part in id_chunks(db_session, unique):
        db_session.execute(
            insert(_BATCH).from_select(
                ["tube_id", "result"],
                select(tubes.id, tubes.result).where(among(db_session, tubes.id, part)),
            )
        )
    analyze_if_many(db_session, _BATCH_TABLE, len(unique))
    analyze_if_many(db_session, _RETESTED_TABLE, _run(db_session, LOAD_RETESTED))


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


def mark_retests_sampled_from_scans(*, db_session: Session) -> int:
    """:func:`mark_retests_sampled` for the people of the scan ingest's accepted retest rows
    (``scan_verdict``, before it is cleared): a task is "sampled" the moment its retest scan
    lands, so nobody already swabbed stays on a grid worker's list of retests owed. Only those
    people's tasks are touched (a sweep of every pending task from concurrent writers would
    deadlock)."""
    only = "AND person_id IN (SELECT person_id FROM scan_verdict WHERE retest AND verdict = 'ok')"
    marked = _run(db_session, MARK_SAMPLED.format(only=only))
    _expire_loaded(db_session)
    return marked


#: The scan ingest's accepted retest rows that answer no retest task: nobody owed this person
#: a retest (a retest tube is exempt from "the same person twice in a round", so it is flagged).
UNOWED_RETEST_SCANS = """
SELECT v.batch_id, v.row_no FROM scan_verdict v
WHERE v.retest AND v.verdict = 'ok'
  AND NOT EXISTS (SELECT 1 FROM retest_tasks r WHERE r.person_id = v.person_id
                  AND r.tube_id = COALESCE(v.tube_id, v.fresh_id))
ORDER BY v.batch_id, v.row_no
"""


def unowed_retest_scans(*, db_session: Session) -> list[tuple[int, int]]:
    """(batch id, row) of the ingest's accepted retest rows that answer no retest task (call
    after :func:`mark_retests_sampled_from_scans`, before the verdicts are cleared)."""
    rows = db_session.execute(text(UNOWED_RETEST_SCANS)).all()
    return [(int(b), int(r)) for b, r in rows]


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
        reanswered = _run(db_session, RECLOSE_TASKS)
        reopened = _run(db_session, REOPEN_TASKS, due=due)
        created += _run(db_session, CREATE_INVALID_TASKS, now=now, due=due)
        if is_postgres(db_session):
            db_session.execute(text(LOCK_CLOSING_HOLDS))
        _run(db_session, CLOSE_HOLDS, now=now)
        if reanswered:
            _run(db_session, REJUDGE_HOLDS)
        holds = db_session.execute(text(HOLDS_OF_BATCH)).all()
        closed_holds = db_session.execute(text(CLOSED_HOLDS)).all()
        summary = PoolsSummary(
            tubes=tubes,
            holds_created=holds_created,
            tasks_created=created,
            tasks_closed=closed,
            tasks_reopened=reopened,
            tasks_reanswered=reanswered,
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
        _clear_batch(db_session)
        _expire_loaded(db_session)
    return summary
