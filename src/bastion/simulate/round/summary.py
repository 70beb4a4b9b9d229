"""What a simulated round came to: :class:`RoundSummary`, read back from the record by
:func:`summarise` (the same figures on a re-run)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, case, func, not_, or_, select
from sqlalchemy.orm import Session

from bastion.testing import coverage
from bastion.testing.enums import RetestState, TubeKind
from bastion.testing.models import Box, PoolHold, RetestTask, Round, Tube, TubeMember


@dataclass(frozen=True)
class RoundSummary:
    """What the round came to, read back from the record (the same figures on a re-run), plus
    the seconds this call took."""

    round_id: int
    round_code: str
    region_code: str
    seed: int
    prevalence: float
    starts_at: datetime
    deadline_at: datetime
    sites: int
    labs: int
    #: People who must be tested (the round's coverage denominator, as the coverage views show
    #: it: the people excused now, under isolation control or with an open case, left out).
    required: int
    #: Distinct people sampled (retests excepted), and those sampled off their grid's site.
    sampled: int
    off_grid: int
    sampled_on_time: int
    #: Tubes of the round (retests excepted), boxes (retest boxes included).
    tubes: int
    boxes: int
    positive_tubes: int
    invalid_tubes: int
    #: People in positive tubes (held or single).
    people_in_positive_tubes: int
    #: Infected people sampled (the simulation's truth, for comparison).
    infected_sampled: int
    #: People positive after retest: escalated by their own retest, or in a positive single tube.
    positive_people: int
    holds: int
    holds_confirmed: int
    holds_reversed: int
    holds_open: int
    retest_tasks: int
    retest_tasks_open: int
    retest_tubes: int
    #: Rows the bulk paths refused (zero unless the world changed under the simulation).
    refused_scans: int
    refused_results: int
    first_scan_at: datetime | None
    last_scan_at: datetime | None
    last_upload_at: datetime | None
    #: Wall-clock seconds of this call (the only figure that differs between runs).
    seconds: float = 0.0

    @property
    def span(self) -> timedelta | None:
        """From the round's start to its last uploaded result."""
        return None if self.last_upload_at is None else self.last_upload_at - self.starts_at


def summarise(*, db_session: Session, rnd: Round, seed: int, prevalence: float) -> RoundSummary:
    """The round's figures read back from the record, set-based (sites, labs, the infected and
    the refusals are the caller's to fill in)."""
    one = db_session.execute
    members = select(
        func.count(),
        func.sum(case((TubeMember.off_grid, 1), else_=0)),
        func.min(TubeMember.scanned_at),
        func.max(TubeMember.scanned_at),
    ).where(TubeMember.round_id == rnd.id, not_(TubeMember.retest))
    sampled, off_grid, first_scan, last_scan = one(members).one()
    # The round's figures as the coverage views show them (required less the people excused
    # now: under isolation control or with an open case; ADR 0009).
    covered = coverage.figures(db_session=db_session, rnd=rnd)
    tubes = dict(
        one(
            select(Tube.result, func.count())
            .where(Tube.round_id == rnd.id, Tube.kind != TubeKind.retest.value)
            .group_by(Tube.result)
        ).all()
    )
    retest_tubes, last_upload = one(
        select(
            func.count().filter(Tube.kind == TubeKind.retest.value), func.max(Tube.uploaded_at)
        ).where(Tube.round_id == rnd.id)
    ).one()
    boxes = one(select(func.count()).select_from(Box).where(Box.round_id == rnd.id)).scalar_one()
    positive = and_(Tube.id == TubeMember.tube_id, Tube.result == "positive")
    in_positive = one(
        select(func.count())
        .select_from(TubeMember)
        .join(Tube, positive)
        .where(TubeMember.round_id == rnd.id, not_(TubeMember.retest))
    ).scalar_one()
    held = select(PoolHold.id).where(PoolHold.tube_id == Tube.id).exists()
    positive_people = one(
        select(func.count(func.distinct(TubeMember.person_id)))
        .select_from(TubeMember)
        .join(Tube, positive)
        .where(TubeMember.round_id == rnd.id, or_(TubeMember.retest, not_(held)))
    ).scalar_one()
    holds = dict(
        one(
            select(PoolHold.outcome, func.count())
            .where(PoolHold.round_id == rnd.id)
            .group_by(PoolHold.outcome)
        ).all()
    )
    tasks, open_tasks = one(
        select(
            func.count(),
            func.count().filter(
                RetestTask.state.in_((RetestState.pending.value, RetestState.sampled.value))
            ),
        ).where(RetestTask.round_id == rnd.id)
    ).one()
    return RoundSummary(
        round_id=rnd.id,
        round_code=rnd.code,
        region_code=rnd.region_code,
        seed=seed,
        prevalence=prevalence,
        starts_at=rnd.starts_at.astimezone(UTC),
        deadline_at=rnd.deadline_at.astimezone(UTC),
        sites=0,
        labs=0,
        required=covered.required,
        sampled=int(sampled or 0),
        off_grid=int(off_grid or 0),
        sampled_on_time=covered.on_time,
        tubes=sum(int(n) for n in tubes.values()),
        boxes=int(boxes),
        positive_tubes=int(tubes.get("positive", 0)),
        invalid_tubes=int(tubes.get("invalid", 0)),
        people_in_positive_tubes=int(in_positive),
        infected_sampled=0,
        positive_people=int(positive_people),
        holds=sum(int(n) for n in holds.values()),
        holds_confirmed=int(holds.get("confirmed", 0)),
        holds_reversed=int(holds.get("reversed", 0)),
        holds_open=int(holds.get(None, 0)),
        retest_tasks=int(tasks),
        retest_tasks_open=int(open_tasks),
        retest_tubes=int(retest_tubes or 0),
        refused_scans=0,
        refused_results=0,
        first_scan_at=first_scan,
        last_scan_at=last_scan,
        last_upload_at=last_upload,
    )
