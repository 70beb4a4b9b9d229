"""A growing, then declining, outbreak in the demo province, day by day, through the services.

:class:`OutbreakRun` plays days 1..D from ``start`` (local calendar days, all in the past). The
people and who infects whom come from the pure process (:mod:`.outbreak_process`); each day
is then written, under the clock frozen at that day's moments, through the tracing, isolation
and health-code services (:mod:`.outbreak_record`, :mod:`.outbreak_isolation`):

- 08:00 isolation test days due (and any missed while a transfer waited), all negative;
- 09:00 asymptomatic cases reclassified at onset, cases discharged / released after their
  course (rarely a death);
- 10:00 contacts' placements that reach their planned end released (contacts released with
  them), treatment ended for the cases closed today;
- 11:00 the day's new cases: on day 1 the positives of the last testing round (the flow from
  positive results), then fever clinics, hospitals, screening and isolation;
- 12:00 their investigations' exposures (the close contacts, and the households of those met
  outside home as secondary contacts), then contact expansion over the exposure graph;
- 13:00 placements for the new cases and contacts;
- 14:00–19:00 the day's transfer batches (some fail with a reason; some tasks wait for the
  next day, red under the daily closure);
- 22:00 health codes recomputed for the region (when the health-code service offers it).

Each simulated day leaves an audit entry (``simulate.outbreak_day``: region, day, seed,
start). Running again over days already simulated replays them in memory (the process is
deterministic for a seed) and writes nothing; a run with another seed or start over the same
region is refused.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.orm import Session

import bastion.models  # noqa: F401 - every table mapped
from bastion.audit import service as audit_service
from bastion.audit.models import AuditEntry
from bastion.core import clock
from bastion.core.auth import Principal, system_principal
from bastion.core.errors import Conflict, InvalidInput
from bastion.regions import codes
from bastion.regions import service as region_service
from bastion.registry.models import Person
from bastion.simulate import outbreak_isolation as iso
from bastion.simulate import outbreak_process as op
from bastion.simulate import outbreak_record as rec
from bastion.simulate.outbreak_world import Resident, World
from bastion.testing.models import PoolHold, Round, Tube, TubeMember

MARKER = "simulate.outbreak_day"
MAX_DAYS = 60
#: Infections nobody knows of yet on day 1, besides the round's positives: one per this many
#: residents (at least :data:`MIN_HIDDEN`), plus one per three positives of the round.
RESIDENTS_PER_HIDDEN = 100_000
MIN_HIDDEN = 3
#: People with symptoms reported by fever clinics on day 1: one per this many residents, at
#: least :data:`MIN_REPORTED` (so every outbreak opens with cases).
RESIDENTS_PER_REPORTED = 200_000
MIN_REPORTED = 2

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total) as a day advances."""

STAGES = ("tests", "courses", "releases", "cases", "contacts", "placements", "transfers", "codes")


@dataclass(frozen=True)
class Marker:
    day: date
    seed: int
    start: date
    round_code: str | None


def markers(db_session: Session) -> dict[str, list[Marker]]:
    """Region → the days simulated there, from the audit trail."""
    found: dict[str, list[Marker]] = {}
    for target, details in db_session.execute(
        select(AuditEntry.target_id, AuditEntry.details)
        .where(AuditEntry.action == MARKER)
        .order_by(AuditEntry.seq)
    ).all():
        region, _, day = str(target).partition(":")
        info = json.loads(details or "{}")
        found.setdefault(region, []).append(
            Marker(
                day=date.fromisoformat(day),
                seed=int(info.get("seed", 0)),
                start=date.fromisoformat(info.get("start", day)),
                round_code=info.get("round"),
            )
        )
    return found


def default_start(days: int, today: date | None = None) -> date:
    """The first of ``days`` days ending yesterday."""
    return (today or clock.today()) - timedelta(days=days)


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


class OutbreakRun:
    """Days 1..``days`` of an outbreak in ``region_code`` from ``start``, for ``seed``.

    Refuses (before writing anything) a number of days outside 1..:data:`MAX_DAYS`, an unknown
    region or one where nobody lives, days reaching today or later, and a region that holds an
    outbreak simulated from another start or seed (or another region that holds one)."""

    def __init__(
        self,
        *,
        db_session: Session,
        region_code: str,
        seed: int,
        days: int,
        start: date | None = None,
    ) -> None:
        if not (isinstance(days, int) and 1 <= days <= MAX_DAYS):
            raise InvalidInput.one("days", "sim.outbreak_bad_days", max=MAX_DAYS, value=days)
        region = region_service.get(db_session=db_session, code=region_code)
        if region is None:
            raise InvalidInput.one("region", "error.region_unknown", region=region_code[:20])
        done = markers(db_session)
        for other in done:
            if other != region_code:
                raise Conflict("sim.outbreak_elsewhere", region=other)
        previous = done.get(region_code, [])
        if previous and start is None:
            start = previous[0].start
        start = start or default_start(days)
        today = clock.today()
        last = start + timedelta(days=days - 1)
        if last >= today:
            raise InvalidInput.one(
                "start", "sim.outbreak_future", last=last.isoformat(), today=today.isoformat()
            )
        for marker in previous:
            if marker.seed != seed or marker.start != start:
                raise Conflict(
                    "sim.outbreak_differs",
                    region=region_code,
                    start=marker.start.isoformat(),
                    seed=marker.seed,
                )
        self.region_code = region_code
        self.seed = seed
        self.days = days
        self.start = start
        self.done_days = {m.day for m in previous}
        self.round_code = previous[0].round_code if previous else None
        self.principal: Principal = system_principal()
        self.scope = region_service.scope_of(db_session=db_session, code=region_code)
        self.session = db_session
        counts = db_session.execute(
            select(Person.region_code, func.count())
            .where(self.scope.clause(Person.region_code), func.length(Person.region_code) == 15)
            .group_by(Person.region_code)
        ).all()
        communities: dict[str, int] = {}
        for grid, n in counts:
            communities[grid[:12]] = communities.get(grid[:12], 0) + int(n)
        if not communities:
            raise InvalidInput.one("region", "simulate.no_people", region=region_code)
        self.world = World(communities, self._load)
        #: People whose transfer waits, and the first day they may move.
        self.held: dict[int, date] = {}
        self.process = op.Outbreak(self.world, seed)
        if not previous:
            self.round_code = self._last_round(db_session)
        known = self._round_positives(db_session) if self.round_code else []
        residents = sum(communities.values())
        hidden = max(MIN_HIDDEN, math.ceil(residents / RESIDENTS_PER_HIDDEN)) + len(known) // 3
        self.process.seed_known(known)
        self.process.seed_hidden(hidden)
        self.process.seed_reported(max(MIN_REPORTED, math.ceil(residents / RESIDENTS_PER_REPORTED)))

    # The population ---------------------------------------------------------------------------

    def _load(self, community: str) -> list[Resident]:
        rows = self.session.execute(
            select(Person.id, Person.household_id, Person.birth_date, Person.region_code).where(
                codes.Scope(prefix=community).clause(Person.region_code),
                func.length(Person.region_code) == 15,
            )
        ).all()
        return [
            Resident(int(r.id), int(r.household_id or -r.id), _age(r.birth_date, self.start), r[3])
            for r in rows
        ]

    def _last_round(self, db_session: Session) -> str | None:
        """The code of the last round over (or inside) the region that started before day 1."""
        day1, _ = clock.local_day_bounds(self.start)
        ancestors = [
            r.code for r in region_service.ancestors(db_session=db_session, code=self.region_code)
        ]
        found = db_session.execute(
            select(Round.code)
            .where(
                Round.starts_at < day1,
                or_(self.scope.clause(Round.region_code), Round.region_code.in_(ancestors)),
            )
            .order_by(Round.starts_at.desc(), Round.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        return str(found) if found is not None else None

    def _round_positives(self, db_session: Session) -> list[tuple[int, str]]:
        """(person, grid) of the round's positives living in the region: escalated by their
        own retest, or positive in a single tube."""
        rnd = db_session.execute(select(Round).where(Round.code == self.round_code)).scalar_one()
        held = select(PoolHold.id).where(PoolHold.tube_id == Tube.id).exists()
        rows = db_session.execute(
            select(Person.id, Person.region_code)
            .select_from(TubeMember)
            .join(Tube, and_(Tube.id == TubeMember.tube_id, Tube.result == "positive"))
            .join(Person, Person.id == TubeMember.person_id)
            .where(
                TubeMember.round_id == rnd.id,
                or_(TubeMember.retest, not_(held)),
                self.scope.clause(Person.region_code),
                func.length(Person.region_code) == 15,
            )
            .distinct()
        ).all()
        return sorted((int(p), str(g)) for p, g in rows)

    # The days ---------------------------------------------------------------------------------

    def date_of(self, day_no: int) -> date:
        return self.start + timedelta(days=day_no - 1)

    def pending_days(self) -> list[date]:
        return [
            self.date_of(n)
            for n in range(1, self.days + 1)
            if self.date_of(n) not in self.done_days
        ]

    def advance(
        self, db_session: Session, progress: Progress | None = None
    ) -> rec.DayRecord | None:
        """Step the process one day and write it (None: the day was simulated before, and is
        only replayed in memory)."""
        self.session = db_session
        events = self.process.step()
        day = self.date_of(events.day)
        for person, wait in events.transfer_waits.items():
            self.held[person] = day + timedelta(days=wait)
        if day in self.done_days:
            return None
        return self._write(db_session, day, events, progress or (lambda *_: None))

    def _write(
        self, db_session: Session, day: date, events: op.DayEvents, tell: Progress
    ) -> rec.DayRecord:
        at = iso.moment_of(day)
        out = rec.DayRecord()
        who, region = self.principal, self.region_code
        total = len(STAGES)
        with clock.frozen(at(8, 0)):
            iso.record_tests(
                db_session=db_session, principal=who, day=day, region_code=region, out=out
            )
        tell("tests", 1, total)
        with clock.frozen(at(9, 0)):
            closed = rec.courses(
                db_session=db_session,
                principal=who,
                day=day,
                reclassified=events.reclassified,
                closed=events.closed,
                out=out,
            )
        tell("courses", 2, total)
        with clock.frozen(at(10, 0)):
            iso.release_due(
                db_session=db_session,
                principal=who,
                day=day,
                region_code=region,
                closed_cases=closed,
                out=out,
            )
        tell("releases", 3, total)
        onset = {
            c.person_id: self.date_of(c.onset_on) if c.onset_on is not None else None
            for c in events.cases
        }
        with clock.frozen(at(11, 0)):
            case_ids = rec.open_cases(
                db_session=db_session,
                principal=who,
                day=day,
                cases=events.cases,
                onset=onset,
                out=out,
            )
        tell("cases", 4, total)
        with clock.frozen(at(12, 0)):
            rec.exposures(
                db_session=db_session,
                principal=who,
                day=day,
                close=events.exposures,
                secondary=events.secondary,
                case_of=case_ids,
                out=out,
            )
            rec.expand(
                db_session=db_session, principal=who, day=day, case_ids=sorted(case_ids.values())
            )
        tell("contacts", 5, total)
        ages = {p: r.age for p, r in self.world.residents.items()}
        with clock.frozen(at(13, 0)):
            rec.place(
                db_session=db_session, principal=who, day=day, case_ids=case_ids, ages=ages, out=out
            )
        tell("placements", 6, total)
        iso.move_people(
            db_session=db_session,
            principal=who,
            day=day,
            seed=self.seed,
            region_code=region,
            hold={p for p, until in self.held.items() if until > day},
            out=out,
        )
        tell("transfers", 7, total)
        with clock.frozen(at(22, 0)):
            _recompute_codes(db_session, who, region)
        tell("codes", 8, total)
        with clock.frozen(at(23, 30)):
            audit_service.record(
                db_session=db_session,
                actor=who,
                action=MARKER,
                target_type="outbreak",
                target_id=f"{region}:{day.isoformat()}",
                region_code=region,
                details={
                    "seed": self.seed,
                    "start": self.start.isoformat(),
                    "round": self.round_code,
                    "cases": out.cases,
                },
            )
        self.done_days.add(day)
        return out


def _recompute_codes(db_session: Session, principal: Principal, region_code: str) -> None:
    """Health codes of the region recomputed, when the health-code service offers it."""
    import importlib

    for name in ("bastion.healthcode.service", "bastion.healthcode.store"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        recompute = getattr(module, "recompute", None)
        if recompute is None or "region_code" not in inspect.signature(recompute).parameters:
            continue
        recompute(db_session=db_session, principal=principal, region_code=region_code)
        return


def simulate_outbreak(
    *,
    db_session: Session,
    region_code: str,
    seed: int,
    days: int,
    start: date | None = None,
    progress: Progress | None = None,
) -> list[rec.DayRecord | None]:
    """The whole outbreak in the caller's transaction (the CLI commits day by day instead)."""
    run = OutbreakRun(
        db_session=db_session, region_code=region_code, seed=seed, days=days, start=start
    )
    return [run.advance(db_session, progress) for _ in range(days)]


__all__ = [
    "MARKER",
    "OutbreakRun",
    "default_start",
    "markers",
    "simulate_outbreak",
]
