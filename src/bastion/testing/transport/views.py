"""Reading boxes: finding one by its code, its view (tubes, hand-overs) and its reconciliation
of the tubes on record against what was counted and scanned."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.auth import Perm, Principal
from bastion.core.errors import (
    FieldProblem,
    NotFound,
)
from bastion.testing.models import Box, BoxEvent, BoxScan, Lab, Round, Site, Tube
from bastion.testing.transport.inputs import (
    PACKED,
    normal_box_code,
)


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between the system's tubes in a box and a hand-over.

    ``kind`` is ``count_differs`` (``expected`` tubes in the system, ``counted`` by the scanner
    or declared by the packer), ``missing_tube`` (in the box by record, not scanned) or
    ``extra_tube`` (scanned, not in the box by record)."""

    stage: str
    kind: str
    tube: str | None = None
    expected: int | None = None
    counted: int | None = None


@dataclass(frozen=True)
class HandOver:
    """One hand-over scan as recorded."""

    event: str
    at: datetime
    actor_id: int | None
    tubes_counted: int | None
    #: How many barcodes the scanner sent (None: it only counted).
    tubes_scanned: int | None


@dataclass
class BoxView:
    """A box with its tubes, hand-overs and reconciliation."""

    box: Box
    round_code: str
    site_code: str
    lab_code: str | None
    tubes: list[str]
    tubes_received: int
    events: list[HandOver] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def reconciled(self) -> bool:
        return not self.mismatches


def find_box(db_session: Session, code: str, *, lock: bool) -> Box:
    box_code = normal_box_code(code)
    box = None
    if box_code is not None:
        stmt = select(Box).where(Box.code == box_code)
        if lock:
            # Lock the box: two hand-over scans of one box at once (a retried request, two
            # benches at the lab) would both see it in its old state and both record the step.
            stmt = stmt.with_for_update()
        box = db_session.execute(stmt).scalar_one_or_none()
    if box is None:
        raise NotFound(
            "box.not_found",
            box=code[:40],
            problems=[FieldProblem("code", "box.not_found", {"box": code[:40]})],
        )
    return box


def get_box(*, db_session: Session, principal: Principal, code: str) -> BoxView:
    """A box with its reconciliation, if its site or its receiving lab lies in the user's
    subtree (otherwise 404, as if it did not exist)."""
    principal.require(Perm.testing_read)
    box = find_box(db_session, code, lock=False)
    visible = principal.scope.contains(box.region_code)
    if not visible and box.lab_id is not None:
        lab = db_session.get(Lab, box.lab_id)
        visible = lab is not None and principal.scope.contains(lab.region_code)
    if not visible:
        raise NotFound(
            "box.not_found",
            box=code[:40],
            problems=[FieldProblem("code", "box.not_found", {"box": code[:40]})],
        )
    return box_view(db_session, box)


def reconcile(
    *, system: list[str], declared: int, events: list[tuple[BoxEvent, list[str] | None]]
) -> list[Mismatch]:
    """Every disagreement between the tubes the system holds in a box and the declared count
    and each hand-over's count and scanned barcodes (a pure function of those)."""
    held = set(system)
    out: list[Mismatch] = []
    for event, scanned in events:
        counted = declared if event.event == PACKED else event.tubes_counted
        if counted is not None and counted != len(held):
            out.append(Mismatch(event.event, "count_differs", expected=len(held), counted=counted))
        if scanned is None:
            continue
        seen = set(scanned)
        out.extend(Mismatch(event.event, "missing_tube", tube=b) for b in sorted(held - seen))
        out.extend(Mismatch(event.event, "extra_tube", tube=b) for b in sorted(seen - held))
    return out


def box_view(db_session: Session, box: Box) -> BoxView:
    """Assemble a box's view: its tubes, hand-overs and mismatches."""
    rows = db_session.execute(
        select(Tube.barcode, Tube.received_at, Tube.lab_id)
        .where(Tube.box_id == box.id)
        .order_by(Tube.barcode)
    ).all()
    system = [r.barcode for r in rows]
    received = sum(1 for r in rows if r.received_at is not None and r.lab_id == box.lab_id)
    events = list(
        db_session.execute(
            select(BoxEvent).where(BoxEvent.box_id == box.id).order_by(BoxEvent.at, BoxEvent.id)
        ).scalars()
    )
    scans: dict[int, list[str]] = {}
    for event_id, barcode in db_session.execute(
        select(BoxScan.event_id, BoxScan.barcode)
        .where(BoxScan.event_id.in_([e.id for e in events]))
        .order_by(BoxScan.id)
    ):
        scans.setdefault(event_id, []).append(barcode)
    with_scans = [(e, scans.get(e.id)) for e in events]
    rnd = db_session.get(Round, box.round_id)
    site = db_session.get(Site, box.site_id)
    lab = db_session.get(Lab, box.lab_id) if box.lab_id is not None else None
    return BoxView(
        box=box,
        round_code=rnd.code if rnd else "",
        site_code=site.code if site else "",
        lab_code=lab.code if lab else None,
        tubes=system,
        tubes_received=received,
        events=[
            HandOver(
                event=e.event,
                at=e.at,
                actor_id=e.actor_id,
                tubes_counted=e.tubes_counted,
                tubes_scanned=None if s is None else len(s),
            )
            for e, s in with_scans
        ],
        mismatches=reconcile(system=system, declared=box.declared_tubes, events=with_scans),
    )
