"""A whole mass-testing round over the demo province, through the paths real data takes.

:func:`simulate_round` plays one round of 采、送、检、报 for the residents of a region:

1. **Set-up.** The round over the region (pool policy lockdown 1, control 5, elsewhere 10 unless
   given), one lab per city in the region (「长春市第1检测实验室」, one tube a day per
   :data:`RESIDENTS_PER_LAB_TUBE` residents), and sampling sites: one per community, or one per
   ~:data:`RESIDENTS_PER_SITE` residents of a larger one, each serving a run of the community's
   grids, open 07:00–22:00, with enough teams for its peak hour. Each is created through
   :mod:`bastion.testing.service` unless its code exists already.
2. **Sampling.** Per community (its residents read in one set-based query), most residents
   (a share drawn from :data:`ATTENDANCE`) come to their site within the round's window, at
   times that follow a daily curve (:data:`ARRIVALS_BY_HOUR`: morning peak, lunch dip, evening
   peak). The members of a household who come arrive together; a few households
   (:data:`OFF_GRID`) go to the neighbouring site instead, one that does not serve their grid
   (accepted, flagged off-grid). A site serves its queue at its hourly capacity; tubes are
   filled in scan order (k people a pooled tube, one a single tube, one household a household
   tube where the zone's policy says so) and closed at each hourly packing. Each site's hour of
   scans is one batch through :func:`bastion.testing.ingest.ingest_scans`, under a key made from
   the round code.
3. **Transport.** Each hour's tubes are packed into a box five minutes after the scanner's batch
   went up, picked up by a courier 20–60 minutes later and received by the city's lab 30–90
   minutes after that (:mod:`bastion.testing.transport`).
4. **Results.** Infection is clustered by household: a household is infected with probability
   ``prevalence / HOUSEHOLD_ATTACK``, each of its members then with :data:`HOUSEHOLD_ATTACK`, so
   about ``prevalence`` of the people are. A tube is positive if it holds an infected person,
   or, rarely, falsely (:data:`FALSE_POSITIVE` of tubes, contamination from positive samples,
   so never in a round without infection); a few are invalid (:data:`INVALID`).
   Positives carry Ct values of 18–35 for ORF1ab and N. A box is run 1–4 hours after its
   receipt, and each lab uploads the runs of an hour together minutes after the hour ends, through
   :func:`bastion.testing.results.upload_results`, which holds the members of positive pools and
   makes their retest tasks (:mod:`bastion.testing.pools`). Results go up once every box is
   received, lab by lab in time order.
5. **Retests.** Every open retest task of the round gets a single-tube retest (kind ``retest``)
   at the person's home site 1–3 hours after the task was made, through the same ingest, boxes
   and upload; it is positive exactly when the person is infected, which closes the task and,
   with the last of a pool's, the hold (``confirmed``, or ``reversed`` for a false positive).

Every hand-over happens with the clock frozen at its own moment
(:func:`bastion.core.clock.frozen`), so receipt, test and upload times are realistic and no
record is dated after the clock it was written under. A round must therefore have started at
least :data:`LEAD` ago: its sampling, results and retests all lie in the past.

Determinism: every draw comes from a generator keyed by the seed and a stable name (a community
code, a site, a box, a tube barcode), never from the order of the work, so the same seed over the
same registry gives the same tubes holding the same people, the same results and the same
figures. Every write goes under a code or key derived from the round code, so running the same
round again changes nothing (scan batches replay, boxes and results are found as they are).

Memory stays flat: one community's residents (a few thousand) and one site's queue at a time;
what is kept for the whole round is the grid → site map, the boxes awaiting their lab run, and
the infected people sampled and their tubes (for the results and the retests).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import random
import time as wall_clock
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, func, not_, or_, select
from sqlalchemy.orm import Session

import bastion.models  # noqa: F401 - every table mapped: rounds and boxes name users
from bastion.core import clock
from bastion.core.auth import Principal, system_principal
from bastion.core.errors import Conflict, InvalidInput
from bastion.regions import codes
from bastion.regions import service as region_service
from bastion.regions.models import Region
from bastion.registry.models import Person
from bastion.testing import ingest, pooling, results, transport
from bastion.testing import service as testing_service
from bastion.testing.enums import RetestState, TubeKind
from bastion.testing.ingest import RawScan
from bastion.testing.models import (
    Box,
    Lab,
    PoolHold,
    RetestTask,
    Round,
    RoundCoverage,
    Site,
    Tube,
    TubeMember,
)
from bastion.testing.results import RawResult
from bastion.testing.schemas import LabCreate, RoundCreate, SiteCreate

#: Share of the residents who come to be sampled, drawn once per round from this range.
ATTENDANCE = (0.92, 0.97)
#: Share of households sampled at the neighbouring site (accepted, flagged off-grid).
OFF_GRID = 0.01
#: Within an infected household, the chance that each member is infected.
HOUSEHOLD_ATTACK = 0.8
#: Share of tubes found positive though nobody in them is infected: contamination from positive
#: samples in the lab, so only in a round with infected people (prevalence above 0).
FALSE_POSITIVE = 0.0002
#: Share of tubes whose result is invalid.
INVALID = 0.0005
#: Relative arrivals by local hour: sites open 07:00–22:00; people come before work, few at
#: lunch, most after work.
ARRIVALS_BY_HOUR: Mapping[int, float] = {
    7: 9,
    8: 11,
    9: 9,
    10: 7,
    11: 5,
    12: 3,
    13: 3,
    14: 4,
    15: 5,
    16: 6,
    17: 8,
    18: 10,
    19: 10,
    20: 7,
    21: 3,
}
OPENS, CLOSES = time(7, 0), time(22, 0)
#: A community larger than this gets a site per this many residents.
RESIDENTS_PER_SITE = 2_000
#: People one sampling team takes in an hour (about 1,800 a day, faster at the peak).
TEAM_PER_HOUR = 150
#: Lab capacity: one tube a day per this many residents of the city in the round (enough for a
#: 10-in-1 round and its retests at about 60% load; 5-in-1 or single tubes load it more).
RESIDENTS_PER_LAB_TUBE = 6
MIN_LAB_CAPACITY = 100
#: Minutes (low, high) between the steps of a box: packing → pick-up → receipt; hours after
#: receipt when the lab runs it; minutes from the run to the upload.
PICK_UP_AFTER = (20, 60)
TRANSIT = (30, 90)
TESTED_AFTER = (60, 240)
UPLOAD_AFTER = (5, 30)
#: A scanner's batch goes up a minute after its last scan; the box is packed five minutes later.
SYNC_AFTER = 60
PACK_AFTER = 300
#: Minutes (low, high) from a retest task to the person's retest, and seconds between retests.
RETEST_AFTER = (60, 180)
RETEST_SPACING = 30
#: Retest tasks of one home site made within the same window of this many hours go out together.
RETEST_WAVE_HOURS = 3
#: Ct values of positives (ORF1ab and N); false positives are weak (late cycles).
CT_RANGE = (18.0, 35.0)
CT_MODE = 27.0
CT_WEAK = 31.0
#: How long ago a round must have started: its sampling, results and retests all lie in the past.
LEAD = timedelta(hours=48)
#: How long before the start the round is opened.
OPENED_BEFORE = timedelta(hours=1)
DEFAULT_POLICY: Mapping[str, int | str] = {"lockdown": 1, "control": 5, "elsewhere": 10}
SOURCE = "simulation"

Progress = Callable[[str, int, int], None]
"""Called with (stage, done, total): ``"sampling"`` counts residents whose community is done,
``"results"`` and ``"retests"`` count tubes resulted."""


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
    #: People who must be tested (the round's coverage denominator).
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


# Layout ----------------------------------------------------------------------------------------


@dataclass
class _Site:
    number: int
    code: str
    name: str
    community: str
    grids: tuple[str, ...]
    residents: int
    teams: int
    capacity_per_hour: int
    lab_code: str
    #: The pool size planned for the site's zone (set once the round exists).
    size: pooling.PoolSize = 10


@dataclass
class _Community:
    code: str
    name: str
    city: str
    residents: int
    sites: list[_Site] = field(default_factory=list)


@dataclass
class _Layout:
    communities: list[_Community]
    #: City code → (name, residents in the round's region).
    cities: dict[str, tuple[str, int]]
    site_of_grid: dict[str, _Site]

    @property
    def residents(self) -> int:
        return sum(c.residents for c in self.communities)

    @property
    def sites(self) -> list[_Site]:
        return [s for c in self.communities for s in c.sites]


def split_grids(grids: Sequence[tuple[str, int]], parts: int) -> list[list[tuple[str, int]]]:
    """``grids`` (code, residents) in order, cut into ``parts`` contiguous runs of about equal
    residents, none empty (``parts`` is capped at the number of grids)."""
    parts = max(1, min(parts, len(grids)))
    total = sum(n for _, n in grids)
    runs: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    acc = 0
    for i, (grid, n) in enumerate(grids):
        current.append((grid, n))
        acc += n
        left_runs = parts - len(runs) - 1
        left_grids = len(grids) - i - 1
        if left_runs > 0 and (acc * parts >= total * (len(runs) + 1) or left_grids == left_runs):
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def teams_for(residents: int) -> int:
    """Teams a site needs for its busiest hour, with a fifth to spare."""
    peak = max(ARRIVALS_BY_HOUR.values()) / sum(ARRIVALS_BY_HOUR.values())
    return max(1, math.ceil(residents * ATTENDANCE[1] * peak * 1.2 / TEAM_PER_HOUR))


def _layout(db_session: Session, region_code: str) -> _Layout:
    """Communities with residents in the region, their sites and cities: one GROUP BY over the
    persons, one read of the regions named."""
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    counts = db_session.execute(
        select(Person.region_code, func.count())
        .where(scope.clause(Person.region_code), func.length(Person.region_code) >= 12)
        .group_by(Person.region_code)
        .order_by(Person.region_code)
    ).all()
    by_community: dict[str, list[tuple[str, int]]] = {}
    for code, n in counts:
        by_community.setdefault(code[:12], []).append((code, int(n)))
    names = _names(db_session, set(by_community))
    six = {
        r.code: r
        for r in db_session.execute(
            select(Region).where(Region.code.in_({c[:6] for c in by_community}))
        ).scalars()
    }
    city_of_six = {
        code: (code if r.level == "city" or r.parent_code is None else r.parent_code)
        for code, r in six.items()
    }
    city_names = _names(db_session, set(city_of_six.values()))
    communities: list[_Community] = []
    cities: dict[str, tuple[str, int]] = {}
    site_of_grid: dict[str, _Site] = {}
    number = 0
    for code in sorted(by_community):
        grids = by_community[code]
        residents = sum(n for _, n in grids)
        city = city_of_six.get(code[:6], code[:6])
        name = names.get(code, code)
        community = _Community(code, name, city, residents)
        runs = split_grids(grids, round(residents / RESIDENTS_PER_SITE))
        for i, run in enumerate(runs, start=1):
            number += 1
            served = sum(n for _, n in run)
            teams = teams_for(served)
            site = _Site(
                number=number,
                code=f"SIM-{code}-{i}",
                name=f"{name}第{i}采样点" if len(runs) > 1 else f"{name}采样点",
                community=code,
                grids=tuple(g for g, _ in run),
                residents=served,
                teams=teams,
                capacity_per_hour=teams * TEAM_PER_HOUR,
                lab_code=f"SIMLAB-{city}-1",
            )
            community.sites.append(site)
            for grid in site.grids:
                site_of_grid[grid] = site
        communities.append(community)
        city_name, city_residents = cities.get(city, (city_names.get(city, city), 0))
        cities[city] = (city_name, city_residents + residents)
    return _Layout(communities, cities, site_of_grid)


def _names(db_session: Session, region_codes: set[str]) -> dict[str, str]:
    if not region_codes:
        return {}
    return dict(
        db_session.execute(
            select(Region.code, Region.name_zh).where(Region.code.in_(region_codes))
        ).all()
    )


# Time ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """The hours sites are open inside the round, weighted by how many people come then."""

    starts: tuple[float, ...]
    ends: tuple[float, ...]
    cumulative: tuple[float, ...]

    def arrival(self, u_slot: float, u_at: float) -> float:
        """An arrival time (epoch seconds) from two uniform draws."""
        i = min(
            bisect.bisect_right(self.cumulative, u_slot * self.cumulative[-1]), len(self.starts) - 1
        )
        return self.starts[i] + u_at * (self.ends[i] - self.starts[i])


def arrival_window(starts_at: datetime, deadline_at: datetime) -> _Window:
    """The open hours (local 07:00–22:00) between ``starts_at`` and ``deadline_at``."""
    tz = clock.local_tz()
    day: date = clock.to_local(starts_at).date()
    last = clock.to_local(deadline_at).date()
    starts: list[float] = []
    ends: list[float] = []
    cumulative: list[float] = []
    acc = 0.0
    while day <= last:
        for hour, weight in sorted(ARRIVALS_BY_HOUR.items()):
            begin = datetime.combine(day, time(hour), tzinfo=tz)
            lo, hi = max(begin, starts_at), min(begin + timedelta(hours=1), deadline_at)
            if hi <= lo:
                continue
            acc += weight * (hi - lo).total_seconds() / 3600
            starts.append(lo.timestamp())
            ends.append(hi.timestamp())
            cumulative.append(acc)
        day += timedelta(days=1)
    if not starts:
        raise InvalidInput.one("start", "simulate.no_open_hours")
    return _Window(tuple(starts), tuple(ends), tuple(cumulative))


def _moment(seconds: float) -> datetime:
    """Epoch seconds as an aware UTC time, to the whole second (as scanners record it)."""
    return datetime.fromtimestamp(round(seconds), UTC)


# People ----------------------------------------------------------------------------------------

Member = tuple[int, str, bool]
"""(person id, personal token, infected)."""


@dataclass(frozen=True)
class _Visit:
    """The members of one household who come, arriving together at a site."""

    arrival: float
    home: str
    members: tuple[Member, ...]


@dataclass
class _Plan:
    #: Site code → the visits of the households whose grid it serves.
    by_site: dict[str, list[_Visit]] = field(default_factory=dict)
    #: Site code → visits of its households who go to the next site instead (off-grid).
    away: dict[str, list[_Visit]] = field(default_factory=dict)


def _people(db_session: Session, scope: codes.Scope, community: str) -> list[Any]:
    """(id, token, household, home) of the residents of one community in the round, by
    household: one range query over the persons' region index."""
    return list(
        db_session.execute(
            select(Person.id, Person.token, Person.household_id, Person.region_code)
            .where(
                codes.Scope(prefix=community).clause(Person.region_code),
                scope.clause(Person.region_code),
                func.length(Person.region_code) >= 12,
            )
            .order_by(Person.household_id, Person.id)
        ).all()
    )


def _households(people: Sequence[Any]) -> Iterator[list[Any]]:
    current: list[Any] = []
    for row in people:
        if current and (row.household_id is None or row.household_id != current[0].household_id):
            yield current
            current = []
        current.append(row)
    if current:
        yield current


def plan_community(
    rng: random.Random,
    people: Sequence[Any],
    *,
    window: _Window,
    attendance: float,
    household_rate: float,
    attack: float,
    site_of_grid: Mapping[str, _Site],
    fallback: _Site,
) -> _Plan:
    """Who of one community comes, when, to which site, and who is infected. Every household
    takes the same number of draws whatever it decides, so one household's fate never shifts
    another's."""
    plan = _Plan()
    rand = rng.random
    for household in _households(people):
        infected_household = rand() < household_rate
        away = rand() < OFF_GRID
        arrival = window.arrival(rand(), rand())
        members: list[Member] = []
        for person in household:
            comes = rand() < attendance
            infected = infected_household and rand() < attack
            if comes:
                members.append((int(person.id), str(person.token), infected))
        if not members:
            continue
        home = str(household[0].region_code)
        site = site_of_grid.get(home, fallback)
        visit = _Visit(arrival, home, tuple(members))
        (plan.away if away else plan.by_site).setdefault(site.code, []).append(visit)
    return plan


# Tubes and results -----------------------------------------------------------------------------


Value = tuple[str, float | None, float | None]
"""A result: (negative / positive / invalid, Ct ORF1ab, Ct N)."""


@dataclass
class _Tube:
    barcode: str
    kind: str
    capacity: int | None
    #: (scan time, member) in scan order.
    scans: list[tuple[float, Member]] = field(default_factory=list)


def fill_tubes(
    visits: Sequence[tuple[float, _Visit, list[float]]],
    size: pooling.PoolSize,
    barcodes: Iterator[str],
) -> list[_Tube]:
    """One hour's scans at a site into tubes, in scan order: ``size`` people a pooled tube
    (one a single tube), or one tube per household (at most 20 people) under "household"."""
    tubes: list[_Tube] = []
    if size == pooling.HOUSEHOLD:
        for _, visit, times in visits:
            pairs = list(zip(times, visit.members, strict=True))
            for i in range(0, len(pairs), pooling.MAX_POOL):
                part = pairs[i : i + pooling.MAX_POOL]
                tubes.append(_Tube(next(barcodes), TubeKind.household.value, len(part), part))
        return tubes
    k = pooling.capacity(size)
    kind = TubeKind.single.value if k == 1 else TubeKind.pooled.value
    current: _Tube | None = None
    for _, visit, times in visits:
        for moment, member in zip(times, visit.members, strict=True):
            if current is None or len(current.scans) >= k:
                current = _Tube(next(barcodes), kind, k)
                tubes.append(current)
            current.scans.append((moment, member))
    return tubes


def ct_pair(rng: random.Random, *, weak: bool) -> tuple[float, float]:
    """Ct values (ORF1ab, N) of a positive: 18–35, late for a weak (false) signal."""
    low, high = CT_RANGE
    orf = rng.triangular(CT_WEAK if weak else low, high, high - 1 if weak else CT_MODE)
    n = min(high, max(low, orf + rng.gauss(-0.8, 0.8)))
    return round(orf, 2), round(n, 2)


def tube_result(rng: random.Random, infected: bool, *, contamination: bool = True) -> Value:
    """A pooled or single tube's result: invalid now and then; positive when it holds an
    infected person, or (rarely, when the lab handles positive samples at all) falsely."""
    invalid = rng.random() < INVALID
    false_positive = rng.random() < FALSE_POSITIVE and contamination
    if invalid:
        return "invalid", None, None
    if infected or false_positive:
        orf, n = ct_pair(rng, weak=not infected)
        return "positive", orf, n
    return "negative", None, None


# The run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shipped:
    """A box received by a lab, waiting for its run."""

    code: str
    lab_code: str
    received: float


class _Run:
    """One simulation's state: the round, its names and keys, the boxes awaiting a lab run, the
    infected people and tubes (the truth results are drawn from) and running counters."""

    def __init__(
        self,
        db_session: Session,
        principal: Principal,
        rnd: Round,
        seed: int,
        layout: _Layout,
        limit: datetime,
        progress: Progress | None,
        prevalence: float,
    ) -> None:
        self.db = db_session
        self.prevalence = prevalence
        self.principal = principal
        self.rnd = rnd
        self.seed = seed
        self.layout = layout
        self.limit = limit
        self.progress = progress
        self.prefix = hashlib.sha256(rnd.code.encode()).hexdigest()[:6].upper()
        self.infected: set[int] = set()
        self.infected_tubes: set[str] = set()
        self.boxes: list[_Shipped] = []
        self.tubes = 0
        self.refused_scans = 0
        self.refused_results = 0

    def rng(self, *names: object) -> random.Random:
        return random.Random("/".join(["bastion/simulate/round", str(self.seed), *map(str, names)]))

    def tell(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    @contextmanager
    def at(self, seconds: float) -> Iterator[datetime]:
        """The clock frozen at ``seconds`` (epoch), which must not lie after the call's "now"."""
        moment = _moment(seconds)
        if moment > self.limit:
            raise InvalidInput.one(
                "start", "simulate.start_too_recent", hours=int(LEAD.total_seconds() // 3600)
            )
        with clock.frozen(moment):
            yield moment

    # Scans ------------------------------------------------------------------------------------

    def ingest(self, key: str, site: _Site, tubes: Sequence[_Tube], sync: float) -> None:
        """One scanner batch through the bulk path, sent ``SYNC_AFTER`` its last scan."""
        scans = [
            RawScan(
                row=row,
                round=self.rnd.code,
                site=site.code,
                tube=tube.barcode,
                person=member[1],
                scanned_at=_moment(moment),
                kind=tube.kind,
                capacity=tube.capacity,
            )
            for row, (tube, moment, member) in enumerate(
                ((t, m, p) for t in tubes for m, p in t.scans), start=1
            )
        ]
        with self.at(sync):
            report = ingest.ingest_scans(
                db_session=self.db, principal=self.principal, key=key, source=SOURCE, scans=scans
            )
        self.refused_scans += report.refused
        for tube in tubes:
            infected = [member[0] for _, member in tube.scans if member[2]]
            if infected:
                self.infected.update(infected)
                self.infected_tubes.add(tube.barcode)

    # Boxes ------------------------------------------------------------------------------------

    def ship(self, box_code: str, site: _Site, tubes: Sequence[_Tube], packed: float) -> None:
        """Pack, pick up and receive one box (each step skipped when the record shows it done:
        a re-run), and queue it for its lab's next run."""
        rng = self.rng("box", box_code)
        picked = packed + 60 * rng.uniform(*PICK_UP_AFTER)
        received = picked + 60 * rng.uniform(*TRANSIT)
        barcodes = [t.barcode for t in tubes]
        state = self.db.execute(select(Box.state).where(Box.code == box_code)).scalar_one_or_none()
        if state is None:
            with self.at(packed) as moment:
                transport.pack_box(
                    db_session=self.db,
                    principal=self.principal,
                    code=box_code,
                    round_ref=self.rnd.code,
                    site_code=site.code,
                    tubes=barcodes,
                    declared_tubes=len(barcodes),
                    at=moment,
                )
            state = "packed"
        if state == "packed":
            with self.at(picked) as moment:
                transport.pick_up_box(
                    db_session=self.db,
                    principal=self.principal,
                    code=box_code,
                    tubes_counted=len(barcodes),
                    at=moment,
                )
            state = "in_transit"
        if state == "in_transit":
            with self.at(received) as moment:
                transport.receive_box(
                    db_session=self.db,
                    principal=self.principal,
                    code=box_code,
                    lab_code=site.lab_code,
                    tubes=barcodes,
                    at=moment,
                )
        self.boxes.append(_Shipped(box_code, site.lab_code, received))

    def dispatch(self, site: _Site, box_code: str, tubes: Sequence[_Tube], packed: float) -> None:
        """Ship ``tubes`` in as many boxes as they need."""
        step = transport.MAX_TUBES_PER_BOX
        for part in range(0, len(tubes), step):
            code = box_code if part == 0 else f"{box_code}-{part // step}"
            self.ship(code, site, tubes[part : part + step], packed)

    # One site ---------------------------------------------------------------------------------

    def run_site(self, site: _Site, visits: list[_Visit]) -> None:
        """One site's day: its queue, then per hour one scanner batch and one box."""
        visits.sort(key=lambda v: (v.arrival, v.members[0][1]))
        gap = 3600 / site.capacity_per_hour
        hours: dict[int, list[tuple[float, _Visit, list[float]]]] = {}
        previous = -math.inf
        for visit in visits:
            times: list[float] = []
            for _ in visit.members:
                previous = max(visit.arrival, previous + gap)
                times.append(float(round(previous)))
            hours.setdefault(int(times[0] // 3600), []).append((times[0], visit, times))
        numbers = (f"{self.prefix}{site.number:05d}{seq:06d}" for seq in itertools.count(1))
        for box_no, hour in enumerate(sorted(hours), start=1):
            batch = hours[hour]
            tubes = fill_tubes(batch, site.size, numbers)
            sync = max(t for _, _, times in batch for t in times) + SYNC_AFTER
            self.ingest(f"sim:{self.rnd.code}:{site.number}:{hour}", site, tubes, sync)
            box_code = f"{self.prefix}B{site.number:05d}{box_no:03d}"
            self.dispatch(site, box_code, tubes, sync + PACK_AFTER)
            self.tubes += len(tubes)

    # Lab runs ---------------------------------------------------------------------------------

    def value_of(self, barcode: str, *, retest: bool) -> Value:
        rng = self.rng("tube", barcode)
        infected = barcode in self.infected_tubes
        if not retest:
            return tube_result(rng, infected, contamination=self.prevalence > 0)
        if infected:
            orf, n = ct_pair(rng, weak=False)
            return "positive", orf, n
        return "negative", None, None

    def run_labs(self, *, retest: bool, stage: str) -> None:
        """Test the queued boxes and upload their results: a box is run 1–4 hours after its
        receipt, and each lab uploads the runs of an hour together minutes after it ends (one
        call of the bulk path per lab and hour, holds and retest tasks made there)."""
        runs: dict[tuple[int, str], list[tuple[str, float]]] = {}
        for box in self.boxes:
            tested = box.received + 60 * self.rng("lab", box.code).uniform(*TESTED_AFTER)
            runs.setdefault((int(tested // 3600), box.lab_code), []).append((box.code, tested))
        self.boxes = []
        total = self.tubes
        done = 0
        for (hour, lab_code), boxes in sorted(runs.items()):
            tested_of = dict(boxes)
            rng = self.rng("upload", lab_code, hour, stage)
            uploaded = (hour + 1) * 3600 + 60 * rng.uniform(*UPLOAD_AFTER)
            pending = self.db.execute(
                select(Tube.barcode, Box.code)
                .join(Box, Box.id == Tube.box_id)
                .where(Box.code.in_(list(tested_of)), Tube.result.is_(None))
                .order_by(Tube.barcode)
            ).all()
            done += sum(1 for _ in pending)
            if pending:  # none on a re-run: every result is on record already
                rows = []
                for row, (barcode, box_code) in enumerate(pending, start=1):
                    value, orf, n = self.value_of(barcode, retest=retest)
                    rows.append(
                        RawResult(
                            row=row,
                            lab=lab_code,
                            tube=barcode,
                            result=value,
                            tested_at=_moment(tested_of[box_code]),
                            ct_orf1ab=orf,
                            ct_n=n,
                        )
                    )
                with self.at(uploaded):
                    report = results.upload_results(
                        db_session=self.db, principal=self.principal, rows=rows
                    )
                self.refused_results += report.refused
            self.tell(stage, min(done, total), total)
        self.tell(stage, total, total)

    # Retests ----------------------------------------------------------------------------------

    def retests(self) -> None:
        """A single-tube retest for every pending retest task of the round: the tasks of one
        home site made within :data:`RETEST_WAVE_HOURS` go out together 1–3 hours after the last
        of them (one batch and one box), then the labs run them."""
        for wave in range(3):  # an invalid retest reopens its task; retests here never are
            rows = self.db.execute(
                select(
                    RetestTask.person_id,
                    RetestTask.region_code,
                    RetestTask.created_at,
                    Person.token,
                )
                .join(Person, Person.id == RetestTask.person_id)
                .where(
                    RetestTask.round_id == self.rnd.id,
                    RetestTask.state == RetestState.pending.value,
                )
                .order_by(RetestTask.created_at, Person.token)
            ).all()
            if not rows:
                return
            groups: dict[tuple[str, int], list[tuple[int, str, float]]] = {}
            seen: set[int] = set()
            first_site = self.layout.sites[0]
            for person_id, home, created, token in rows:
                if person_id in seen:
                    continue
                seen.add(person_id)
                site = self.layout.site_of_grid.get(home, first_site)
                made = created.timestamp()
                window = int(made // (3600 * RETEST_WAVE_HOURS))
                groups.setdefault((site.code, window), []).append((person_id, token, made))
            sites = {s.code: s for s in self.layout.sites}
            self.tubes = 0
            for g, ((site_code, window), people) in enumerate(sorted(groups.items()), start=1):
                site = sites[site_code]
                rng = self.rng("retest", wave, site_code, window)
                base = max(made for _, _, made in people) + 60 * rng.uniform(*RETEST_AFTER)
                tubes = [
                    _Tube(
                        f"{self.prefix}R{wave}{g:05d}{i:05d}",
                        TubeKind.retest.value,
                        None,
                        [
                            (
                                float(round(base + i * RETEST_SPACING)),
                                (person_id, token, person_id in self.infected),
                            )
                        ],
                    )
                    for i, (person_id, token, _) in enumerate(people)
                ]
                sync = base + len(people) * RETEST_SPACING + SYNC_AFTER
                self.ingest(f"sim:{self.rnd.code}:r{wave}:{g}", site, tubes, sync)
                self.dispatch(site, f"{self.prefix}R{wave}B{g:05d}", tubes, sync + PACK_AFTER)
                self.tubes += len(tubes)
            self.run_labs(retest=True, stage="retests")


# Set-up ----------------------------------------------------------------------------------------


def _round_name(region: Region, seed: int, prevalence: float) -> str:
    return f"{region.name_zh}全员核酸检测（模拟，种子 {seed}，阳性率 {prevalence:g}）"


def _ensure_round(
    db_session: Session,
    principal: Principal,
    *,
    code: str,
    name: str,
    region_code: str,
    start: datetime | None,
    default_start: datetime,
    policy: Mapping[str, int | str],
) -> Round:
    """The round ``code``: found (it must be this very simulation: same region, name, start and
    pool policy) or opened an hour before its start."""
    existing = db_session.execute(select(Round).where(Round.code == code)).scalar_one_or_none()
    if existing is not None:
        wanted = pooling.PoolPolicy.from_dict(dict(policy))
        if (
            existing.region_code != region_code
            or existing.name != name
            or (start is not None and existing.starts_at != start)
            or testing_service.policy_of(existing) != wanted
        ):
            raise Conflict("simulate.round_differs", code=code)
        return existing
    starts_at = start or default_start
    with clock.frozen(starts_at - OPENED_BEFORE):
        return testing_service.create_round(
            db_session=db_session,
            principal=principal,
            data=RoundCreate(
                code=code,
                name=name,
                region_code=region_code,
                starts_at=starts_at,
                pool_policy=dict(policy),
            ),
        )


def _ensure_labs(db_session: Session, principal: Principal, layout: _Layout) -> None:
    codes_wanted = {f"SIMLAB-{city}-1": city for city in layout.cities}
    have = set(
        db_session.execute(select(Lab.code).where(Lab.code.in_(list(codes_wanted)))).scalars()
    )
    for lab_code, city in sorted(codes_wanted.items()):
        if lab_code in have:
            continue
        name, residents = layout.cities[city]
        testing_service.create_lab(
            db_session=db_session,
            principal=principal,
            data=LabCreate(
                code=lab_code,
                name=f"{name}第1检测实验室",
                region_code=city,
                daily_capacity=max(MIN_LAB_CAPACITY, math.ceil(residents / RESIDENTS_PER_LAB_TUBE)),
            ),
        )


def _ensure_sites(db_session: Session, principal: Principal, layout: _Layout) -> None:
    """Create the sites not there yet; a site that exists keeps its own hours and capacity,
    which its queue then follows."""
    sites = layout.sites
    have = {
        s.code: s
        for s in db_session.execute(
            select(Site).where(Site.code.in_([s.code for s in sites]))
        ).scalars()
    }
    for site in sites:
        found = have.get(site.code)
        if found is not None:
            site.capacity_per_hour = found.capacity_per_hour
            continue
        testing_service.create_site(
            db_session=db_session,
            principal=principal,
            data=SiteCreate(
                code=site.code,
                name=site.name,
                region_code=site.community,
                address=site.name,
                teams=site.teams,
                opens_at=OPENS,
                closes_at=CLOSES,
                capacity_per_hour=site.capacity_per_hour,
                grids=list(site.grids),
            ),
        )


# The service -----------------------------------------------------------------------------------


def default_start(today: date | None = None) -> datetime:
    """Local midnight two days before ``today`` (the clock's by default): the whole round lies
    in the past."""
    day = (today or clock.today()) - timedelta(days=2)
    return datetime.combine(day, time(0), tzinfo=clock.local_tz())


def simulate_round(
    *,
    db_session: Session,
    region_code: str,
    prevalence: float,
    seed: int,
    code: str | None = None,
    start: datetime | None = None,
    pool_policy: Mapping[str, int | str] | None = None,
    progress: Progress | None = None,
) -> RoundSummary:
    """Run a whole testing round over the residents of ``region_code`` (see the module
    docstring), in the caller's transaction, as the system. ``code`` defaults to
    ``SIM-<region>-<seed>``, ``start`` to local midnight two days ago, ``pool_policy`` to
    lockdown 1, control 5, elsewhere 10. Running it again with the same arguments changes
    nothing and returns the same figures.

    Refuses a prevalence outside [0, 1], an unknown region or one where nobody lives (by grid or
    community), a start without a zone or less than :data:`LEAD` ago, a malformed code or pool
    policy, and a round code already used by a different round (Conflict)."""
    began = wall_clock.perf_counter()
    principal = system_principal()
    limit = clock.now()
    if not (isinstance(prevalence, int | float) and math.isfinite(prevalence)) or not (
        0.0 <= prevalence <= 1.0
    ):
        raise InvalidInput.one("prevalence", "simulate.bad_prevalence", value=prevalence)
    region = region_service.get(db_session=db_session, code=region_code)
    if region is None:
        raise InvalidInput.one("region", "error.region_unknown", region=region_code[:20])
    if start is not None:
        if start.tzinfo is None:
            raise InvalidInput.one("start", "field.needs_timezone")
        start = start.astimezone(UTC)
        if start + LEAD > limit:
            raise InvalidInput.one(
                "start", "simulate.start_too_recent", hours=int(LEAD.total_seconds() // 3600)
            )
    layout = _layout(db_session, region_code)
    if not layout.communities:
        raise InvalidInput.one("region", "simulate.no_people", region=region_code)
    policy = dict(DEFAULT_POLICY) | dict(pool_policy or {})
    try:
        pooling.PoolPolicy.from_dict(dict(policy))
    except pooling.PoolPolicyError as err:
        raise InvalidInput.one(f"pool_policy.{err.field}", err.reason, **err.params) from None
    code = code or f"SIM-{region_code}-{seed}"
    rnd = _ensure_round(
        db_session,
        principal,
        code=code,
        name=_round_name(region, seed, prevalence),
        region_code=region_code,
        start=start,
        default_start=default_start(),
        policy=policy,
    )
    if rnd.starts_at + LEAD > limit:
        raise InvalidInput.one(
            "start", "simulate.start_too_recent", hours=int(LEAD.total_seconds() // 3600)
        )
    _ensure_labs(db_session, principal, layout)
    _ensure_sites(db_session, principal, layout)
    on = clock.to_local(rnd.starts_at).date()
    round_policy = testing_service.policy_of(rnd)
    for site in layout.sites:
        site.size = round_policy.size_for(
            testing_service.zone_kind_of(db_session=db_session, region_code=site.community, on=on)
        )

    run = _Run(db_session, principal, rnd, seed, layout, limit, progress, prevalence)
    window = arrival_window(rnd.starts_at, rnd.deadline_at)
    attendance = run.rng("attendance").uniform(*ATTENDANCE)
    attack = HOUSEHOLD_ATTACK if prevalence <= HOUSEHOLD_ATTACK else prevalence
    household_rate = min(1.0, prevalence / attack) if attack > 0 else 0.0
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    total = layout.residents
    done = 0
    # Off-grid households go to the next site in the round's order (the same community's next
    # site, or the next community's first), which is run after theirs; the last site's stay.
    incoming: list[_Visit] = []
    last_site = layout.sites[-1].code
    for community in layout.communities:
        plan = plan_community(
            run.rng("community", community.code),
            _people(db_session, scope, community.code),
            window=window,
            attendance=attendance,
            household_rate=household_rate,
            attack=attack,
            site_of_grid=layout.site_of_grid,
            fallback=community.sites[0],
        )
        for site in community.sites:
            visits = plan.by_site.get(site.code, []) + incoming
            incoming = plan.away.get(site.code, [])
            if site.code == last_site:
                visits += incoming
            run.run_site(site, visits)
        done += community.residents
        run.tell("sampling", done, total)
    run.run_labs(retest=False, stage="results")
    run.retests()
    summary = summarise(db_session=db_session, rnd=rnd, seed=seed, prevalence=prevalence)
    return replace(
        summary,
        sites=len(layout.sites),
        labs=len(layout.cities),
        infected_sampled=len(run.infected),
        refused_scans=run.refused_scans,
        refused_results=run.refused_results,
        seconds=wall_clock.perf_counter() - began,
    )


# The summary -----------------------------------------------------------------------------------


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
    on_time = one(
        select(
            func.coalesce(func.sum(RoundCoverage.on_time), 0),
            func.coalesce(func.sum(RoundCoverage.required), 0),
        ).where(RoundCoverage.round_id == rnd.id)
    ).one()
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
        required=int(on_time[1]),
        sampled=int(sampled or 0),
        off_grid=int(off_grid or 0),
        sampled_on_time=int(on_time[0]),
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
