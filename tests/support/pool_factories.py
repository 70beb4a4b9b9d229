"""Factories for positive-pool and retest tests: tubes bound through the real ingest, results
set on the tube rows as a lab's upload leaves them (the results service is built apart)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.registry.models import Person
from bastion.testing import ingest, pools
from bastion.testing.ingest import RawScan
from bastion.testing.models import Lab, Round, Site, Tube

_keys = itertools.count(1)


def tube(
    db: Session,
    rnd: Round,
    site: Site,
    barcode: str,
    people: Sequence[Person],
    *,
    at: datetime,
    kind: str = "pooled",
    capacity: int | None = None,
) -> Tube:
    """A tube bound to ``people`` in order at ``at``, through :func:`ingest.ingest_scans`; the
    clock is moved to ``at`` for the scan so it is never "in the future"."""
    scans = [
        RawScan(
            row=i + 1,
            round=rnd.code,
            site=site.code,
            tube=barcode,
            person=p.token,
            scanned_at=at + timedelta(seconds=i),
            kind=kind,
            capacity=capacity,
        )
        for i, p in enumerate(people)
    ]
    with clock.frozen(at + timedelta(seconds=len(people))):
        report = ingest.ingest_scans(
            db_session=db,
            principal=system_principal(),
            key=f"pool-test-{next(_keys):06d}",
            source="test",
            scans=scans,
        )
    assert report.refused == 0, report.problems
    return db.execute(select(Tube).where(Tube.barcode == barcode)).scalar_one()


def retest(
    db: Session, rnd: Round, site: Site, barcode: str, person: Person, *, at: datetime
) -> Tube:
    """A single-tube retest of ``person`` scanned at ``at``."""
    return tube(db, rnd, site, barcode, [person], at=at, kind="retest")


def result(
    db: Session,
    tubes: Tube | Sequence[Tube],
    value: str,
    *,
    at: datetime,
    lab: Lab | None = None,
) -> list[Tube]:
    """Set ``value`` on the tubes as a lab upload at ``at`` leaves them: received two hours
    before, tested one hour before, uploaded at ``at``; Ct values on positives."""
    items = [tubes] if isinstance(tubes, Tube) else list(tubes)
    for t in items:
        t.state = "resulted"
        t.lab_id = lab.id if lab is not None else t.lab_id
        t.received_at = at - timedelta(hours=2)
        t.tested_at = at - timedelta(hours=1)
        t.uploaded_at = at
        t.result = value
        if value == "positive":
            t.ct_orf1ab, t.ct_n = 28.5, 30.1
    db.flush()
    return items


def process(db: Session, *tubes: Tube, at: datetime) -> pools.PoolsSummary:
    """Run :func:`pools.process_results` for ``tubes`` with the clock at ``at``."""
    with clock.frozen(at):
        return pools.process_results(
            db_session=db, principal=system_principal(), tube_ids=[t.id for t in tubes]
        )


def result_and_process(
    db: Session, tubes: Tube | Sequence[Tube], value: str, *, at: datetime, lab: Lab | None = None
) -> pools.PoolsSummary:
    items = result(db, tubes, value, at=at, lab=lab)
    return process(db, *items, at=at)
