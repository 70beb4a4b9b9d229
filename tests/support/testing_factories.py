"""Factories for transport, results and lab figures, through the public services (and, for
hand-built figure scenarios, straight rows with known times)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.auth import Principal, system_principal
from bastion.testing import ingest, results, transport
from bastion.testing.models import Lab, PoolHold, Round, Site, Tube
from tests.support import factories

#: 08:00 in Changchun on 25 March 2022.
START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
SAMPLED_AT = START + timedelta(hours=1)

_keys = itertools.count(1)


def sampled(
    db: Session,
    rnd: Round,
    site: Site,
    barcodes: Sequence[str],
    *,
    people_per_tube: int = 1,
    at: datetime = SAMPLED_AT,
) -> dict[str, Tube]:
    """Tubes with people bound to them, through the scan ingest."""
    scans: list[ingest.RawScan] = []
    for barcode in barcodes:
        for _ in range(people_per_tube):
            person = factories.person(db)
            scans.append(
                ingest.RawScan(
                    row=len(scans) + 1,
                    round=rnd.code,
                    site=site.code,
                    tube=barcode,
                    person=person.token,
                    scanned_at=at + timedelta(seconds=len(scans)),
                )
            )
    report = ingest.ingest_scans(
        db_session=db,
        principal=system_principal(),
        key=f"testing-factory-{next(_keys):06d}",
        source="test",
        scans=scans,
    )
    assert report.refused == 0, report.problems
    tubes = db.execute(select(Tube).where(Tube.barcode.in_(barcodes))).scalars().all()
    return {t.barcode: t for t in tubes}


def packed(
    db: Session,
    rnd: Round,
    site: Site,
    code: str,
    barcodes: Sequence[str],
    *,
    declared: int | None = None,
    principal: Principal | None = None,
    at: datetime | None = None,
) -> transport.BoxView:
    return transport.pack_box(
        db_session=db,
        principal=principal or system_principal(),
        code=code,
        round_ref=rnd.code,
        site_code=site.code,
        tubes=list(barcodes),
        declared_tubes=len(barcodes) if declared is None else declared,
        at=at,
    )


def received(
    db: Session,
    code: str,
    lab: Lab,
    *,
    tubes: Sequence[str] | None = None,
    counted: int | None = None,
    at: datetime | None = None,
) -> transport.BoxView:
    """A box received by ``lab`` straight from its site (no courier scan)."""
    return transport.receive_box(
        db_session=db,
        principal=system_principal(),
        code=code,
        lab_code=lab.code,
        tubes=None if tubes is None else list(tubes),
        tubes_counted=counted,
        at=at,
    )


def in_lab(
    db: Session,
    rnd: Round,
    site: Site,
    lab: Lab,
    barcodes: Sequence[str],
    *,
    box: str = "BOX-0001",
    people_per_tube: int = 1,
    received_at: datetime | None = None,
) -> dict[str, Tube]:
    """Tubes sampled, packed and received by ``lab``: ready for results."""
    tubes = sampled(db, rnd, site, barcodes, people_per_tube=people_per_tube)
    packed(db, rnd, site, box, barcodes, at=SAMPLED_AT + timedelta(hours=1))
    received(db, box, lab, counted=len(barcodes), at=received_at or SAMPLED_AT + timedelta(hours=2))
    for tube in tubes.values():
        db.refresh(tube)
    return tubes


def row(
    lab: Lab | str,
    tube: str,
    result: str = "negative",
    *,
    n: int = 1,
    ct_orf1ab: str | float | None = None,
    ct_n: str | float | None = None,
    tested_at: str | datetime = SAMPLED_AT + timedelta(hours=4),
    received_at: str | datetime | None = None,
) -> results.RawResult:
    return results.RawResult(
        row=n,
        lab=lab if isinstance(lab, str) else lab.code,
        tube=tube,
        result=result,
        tested_at=tested_at,
        ct_orf1ab=ct_orf1ab,
        ct_n=ct_n,
        received_at=received_at,
    )


def upload(
    db: Session,
    rows: Sequence[results.RawResult],
    *,
    principal: Principal | None = None,
    chunk: int = results.CHUNK,
) -> results.ResultReport:
    return results.upload_results(
        db_session=db, principal=principal or system_principal(), rows=rows, chunk=chunk
    )


def bare_tube(
    db: Session,
    rnd: Round,
    site: Site,
    barcode: str,
    *,
    lab: Lab | None = None,
    received_at: datetime | None = None,
    uploaded_after: timedelta | None = None,
    result: str | None = None,
    kind: str = "pooled",
    capacity: int = 10,
    members: int = 5,
) -> Tube:
    """A tube row written straight, with known times, for hand-built figure scenarios."""
    uploaded_at = (
        received_at + uploaded_after
        if received_at is not None and uploaded_after is not None
        else None
    )
    tube = Tube(
        barcode=barcode,
        round_id=rnd.id,
        site_id=site.id,
        region_code=site.region_code,
        kind=kind,
        capacity=capacity,
        member_count=members,
        state="resulted" if uploaded_at else ("received" if received_at else "open"),
        first_scan_at=(received_at or START) - timedelta(hours=2),
        lab_id=lab.id if lab else None,
        received_at=received_at,
        tested_at=uploaded_at,
        uploaded_at=uploaded_at,
        result=result if uploaded_at else None,
        ct_orf1ab=25.0 if result == "positive" and uploaded_at else None,
    )
    db.add(tube)
    db.flush()
    return tube


def hold(db: Session, tube: Tube, outcome: str | None) -> PoolHold:
    """A hold on a positive pooled tube, closed with ``outcome`` (or still open)."""
    assert tube.received_at is not None
    created = tube.uploaded_at or tube.received_at
    entry = PoolHold(
        tube_id=tube.id,
        round_id=tube.round_id,
        lab_id=tube.lab_id,
        region_code=tube.region_code,
        members=tube.member_count,
        created_at=created,
        closed_at=None if outcome is None else created + timedelta(hours=6),
        outcome=outcome,
    )
    db.add(entry)
    db.flush()
    return entry
