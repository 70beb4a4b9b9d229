"""Holds: the queries the health-code and tracing work use."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from bastion.testing.enums import RetestState
from bastion.testing.models import PoolHold, RetestTask

#: Task states still owing a result.
OPEN_STATES = (RetestState.pending.value, RetestState.sampled.value)


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


def visible_task() -> Any:
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
