"""One simulation's state and work: scanner batches, boxes from packing to receipt, lab runs
and their uploads, and the retests."""

from __future__ import annotations

import hashlib
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Principal
from bastion.core.errors import InvalidInput
from bastion.registry.models import Person
from bastion.simulate.round.layout import Layout, SitePlan
from bastion.simulate.round.params import (
    LEAD,
    PACK_AFTER,
    PICK_UP_AFTER,
    RETEST_AFTER,
    RETEST_SPACING,
    RETEST_WAVE_HOURS,
    SOURCE,
    SYNC_AFTER,
    TESTED_AFTER,
    TRANSIT,
    UPLOAD_AFTER,
    Progress,
)
from bastion.simulate.round.people import Visit
from bastion.simulate.round.tubes import FilledTube, Value, ct_pair, fill_tubes, tube_result
from bastion.simulate.round.window import utc_moment
from bastion.testing import ingest, results, transport
from bastion.testing.enums import RetestState, TubeKind
from bastion.testing.ingest import RawScan
from bastion.testing.models import Box, RetestTask, Round, Tube
from bastion.testing.results import RawResult


@dataclass(frozen=True)
class _Shipped:
    """A box received by a lab, waiting for its run."""

    code: str
    lab_code: str
    received: float


class Run:
    """One simulation's state: the round, its names and keys, the boxes awaiting a lab run, the
    infected people and tubes (the truth results are drawn from) and running counters."""

    def __init__(
        self,
        db_session: Session,
        principal: Principal,
        rnd: Round,
        seed: int,
        layout: Layout,
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
        moment = utc_moment(seconds)
        if moment > self.limit:
            raise InvalidInput.one(
                "start", "simulate.start_too_recent", hours=int(LEAD.total_seconds() // 3600)
            )
        with clock.frozen(moment):
            yield moment

    # Scans ------------------------------------------------------------------------------------

    def ingest(self, key: str, site: SitePlan, tubes: Sequence[FilledTube], sync: float) -> None:
        """One scanner batch through the bulk path, sent ``SYNC_AFTER`` its last scan."""
        scans = [
            RawScan(
                row=row,
                round=self.rnd.code,
                site=site.code,
                tube=tube.barcode,
                person=member[1],
                scanned_at=utc_moment(moment),
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

    def ship(
        self, box_code: str, site: SitePlan, tubes: Sequence[FilledTube], packed: float
    ) -> None:
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

    def dispatch(
        self, site: SitePlan, box_code: str, tubes: Sequence[FilledTube], packed: float
    ) -> None:
        """Ship ``tubes`` in as many boxes as they need."""
        step = transport.MAX_TUBES_PER_BOX
        for part in range(0, len(tubes), step):
            code = box_code if part == 0 else f"{box_code}-{part // step}"
            self.ship(code, site, tubes[part : part + step], packed)

    # One site ---------------------------------------------------------------------------------

    def run_site(self, site: SitePlan, visits: list[Visit]) -> None:
        """One site's day: its queue, then per hour one scanner batch and one box."""
        visits.sort(key=lambda v: (v.arrival, v.members[0][1]))
        gap = 3600 / site.capacity_per_hour
        hours: dict[int, list[tuple[float, Visit, list[float]]]] = {}
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
                            tested_at=utc_moment(tested_of[box_code]),
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
                    FilledTube(
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
