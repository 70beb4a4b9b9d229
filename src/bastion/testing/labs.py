"""Lab figures per local day: intake against capacity, turnaround, positive, reversal and late
rates, and the green / yellow / red rating (:func:`bastion.testing.rules.lab_rating`).

The day's cohort of a lab is the tubes it received that local day (Asia/Shanghai by default):

- ``received``: tubes received; ``load`` = received ÷ daily capacity (taking more than its
  capacity is never refused, it shows here);
- ``resulted`` / ``pending``: of those, with a result uploaded / without one yet;
- turnaround = upload time − receipt time, over the resulted tubes: ``median`` and ``p90`` by
  nearest rank (the smallest turnaround at or above that share of the ordered values);
- ``positive_rate`` = positive ÷ resulted;
- ``late_share`` = tubes uploaded more than ``late_hours`` (12 by default) after receipt, plus
  tubes still without a result that long after receipt, ÷ received — a lab cannot look punctual
  by not uploading;
- reversal rate = positive pooled tubes whose hold closed "reversed" (every member retested
  negative) ÷ positive pooled tubes whose hold has closed (an open hold is not yet a verdict).
  A pooled tube is what :mod:`bastion.testing.pools` holds: a pooled or household tube with room
  for more than one, or any tube with more than one member.

Everything is counted in SQL, one GROUP BY over the day's tubes and one over their turnarounds;
Python only walks the labs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.db import is_postgres
from bastion.core.errors import FieldProblem, InvalidInput, NotFound
from bastion.testing import rules
from bastion.testing.models import Lab, PoolHold, Tube

DEFAULT_LATE_HOURS = 12.0


@dataclass(frozen=True)
class LabDay:
    """One lab's figures for one local day (see the module docstring for each)."""

    code: str
    name: str
    region_code: str
    day: date
    capacity: int
    received: int
    resulted: int
    pending: int
    load: float
    turnaround_median_hours: float | None
    turnaround_p90_hours: float | None
    positive: int
    positive_rate: float
    late: int
    late_share: float
    pools_positive: int
    pools_decided: int
    pools_reversed: int
    reversal_rate: float
    rating: str


def _seconds(db_session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds, in the dialect's own arithmetic."""
    if is_postgres(db_session):
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def lab_figures(
    *,
    db_session: Session,
    principal: Principal,
    day: date | None = None,
    late_hours: float = DEFAULT_LATE_HOURS,
    lab_code: str | None = None,
) -> list[LabDay]:
    """Figures for ``day`` (default: today, local) of every active lab in the user's subtree,
    or of one lab. Refuses a non-positive ``late_hours`` and an unknown lab (or one outside the
    user's subtree: 404)."""
    principal.require(Perm.testing_read)
    if not late_hours > 0 or late_hours > 24 * 30:
        raise InvalidInput(
            problems=[FieldProblem("late_hours", "field.out_of_range", {"min": 0, "max": 720})]
        )
    day = day or clock.today()
    start, end = clock.local_day_bounds(day)
    now = clock.now()
    late_seconds = late_hours * 3600.0
    overdue_since = now - timedelta(hours=late_hours)

    lab_query = (
        select(Lab).where(Lab.active, principal.scope.clause(Lab.region_code)).order_by(Lab.code)
    )
    if lab_code is not None:
        wanted = lab_code.strip()
        # A code that cannot name a lab (control characters, non-ASCII) never reaches SQL.
        if not (wanted.isascii() and wanted.isprintable() and 0 < len(wanted) <= 64):
            wanted = ""
        lab_query = lab_query.where(Lab.code == wanted)
    labs = list(db_session.execute(lab_query).scalars())
    if lab_code is not None and not labs:
        raise NotFound(
            "lab.not_found",
            lab=lab_code[:40],
            problems=[FieldProblem("lab", "lab.not_found", {"lab": lab_code[:40]})],
        )
    if not labs:
        return []
    lab_ids = [lab.id for lab in labs]

    cohort = and_(
        Tube.lab_id.in_(lab_ids),
        Tube.received_at >= start,
        Tube.received_at < end,
    )
    turnaround = _seconds(db_session, Tube.received_at, Tube.uploaded_at)
    positive = Tube.result == "positive"
    pooled = and_(
        positive,
        or_(
            and_(Tube.kind.in_(("pooled", "household")), Tube.capacity > 1),
            Tube.member_count > 1,
        ),
    )

    def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    totals = db_session.execute(
        select(
            Tube.lab_id,
            func.count().label("received"),
            func.count(Tube.uploaded_at).label("resulted"),
            count_if(positive).label("positive"),
            count_if(
                or_(
                    and_(Tube.uploaded_at.is_not(None), turnaround > late_seconds),
                    and_(Tube.uploaded_at.is_(None), Tube.received_at < overdue_since),
                )
            ).label("late"),
            count_if(pooled).label("pools_positive"),
            count_if(and_(pooled, PoolHold.outcome.is_not(None))).label("pools_decided"),
            count_if(and_(pooled, PoolHold.outcome == "reversed")).label("pools_reversed"),
        )
        .select_from(Tube)
        .outerjoin(PoolHold, PoolHold.tube_id == Tube.id)
        .where(cohort)
        .group_by(Tube.lab_id)
    ).all()

    ranked = (
        select(
            Tube.lab_id.label("lab_id"),
            turnaround.label("seconds"),
            func.row_number().over(partition_by=Tube.lab_id, order_by=turnaround).label("rank"),
            func.count().over(partition_by=Tube.lab_id).label("n"),
        )
        .where(cohort, Tube.uploaded_at.is_not(None))
        .subquery()
    )
    turnarounds = {
        row.lab_id: (row.median, row.p90)
        for row in db_session.execute(
            select(
                ranked.c.lab_id,
                func.min(case((ranked.c.rank >= 0.5 * ranked.c.n, ranked.c.seconds))).label(
                    "median"
                ),
                func.min(case((ranked.c.rank >= 0.9 * ranked.c.n, ranked.c.seconds))).label("p90"),
            ).group_by(ranked.c.lab_id)
        )
    }
    by_lab = {row.lab_id: row for row in totals}

    out: list[LabDay] = []
    for lab in labs:
        row = by_lab.get(lab.id)
        received = int(row.received) if row else 0
        resulted = int(row.resulted) if row else 0
        positives = int(row.positive) if row else 0
        late = int(row.late) if row else 0
        pools_positive = int(row.pools_positive) if row else 0
        pools_decided = int(row.pools_decided) if row else 0
        pools_reversed = int(row.pools_reversed) if row else 0
        median, p90 = turnarounds.get(lab.id, (None, None))
        load = _ratio(received, lab.daily_capacity)
        late_share = _ratio(late, received)
        reversal_rate = _ratio(pools_reversed, pools_decided)
        out.append(
            LabDay(
                code=lab.code,
                name=lab.name,
                region_code=lab.region_code,
                day=day,
                capacity=lab.daily_capacity,
                received=received,
                resulted=resulted,
                pending=received - resulted,
                load=load,
                turnaround_median_hours=None if median is None else float(median) / 3600.0,
                turnaround_p90_hours=None if p90 is None else float(p90) / 3600.0,
                positive=positives,
                positive_rate=_ratio(positives, resulted),
                late=late,
                late_share=late_share,
                pools_positive=pools_positive,
                pools_decided=pools_decided,
                pools_reversed=pools_reversed,
                reversal_rate=reversal_rate,
                rating=rules.lab_rating(
                    reversal_rate=reversal_rate,
                    overload=load,
                    late_share=late_share,
                    pools_decided=pools_decided,
                    tubes_received=received,
                ),
            )
        )
    return out
