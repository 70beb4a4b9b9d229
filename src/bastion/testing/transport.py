"""Boxes of tubes and their hand-overs (转运): packed at a site, picked up by a courier, received
by a lab; and the reconciliation of what the system put in a box against what people counted
and scanned at each hand-over.

The chain of custody, as decided for issue #3:

- **Pack** (site staff: ``transport.write`` and ``scans.write``). Every tube scanned into the
  box must exist, belong to the box's round and site, have people bound to it, and be in no
  box yet. Packing is all-or-nothing: one bad tube refuses the box with every problem listed,
  so the physical box and the record never disagree from the start. The declared count is kept
  as counted; a difference from the tubes scanned is a reconciliation mismatch, not a refusal.
  Re-sending the same pack (same code, round, site and tubes) returns the box unchanged.
- **Pick-up** (``transport.write``): packed → in transit; only once.
- **Receipt** (lab staff: ``transport.write`` and ``results.write``): packed or in transit →
  received. A lab may receive a box straight from the site (no courier scan: small sites carry
  their own boxes), but never twice. The lab's region must lie in the user's subtree; the box's
  site need not (cross-city lab allocation is normal).
- Each hand-over records the number of tubes the scanner counted and, when the scanner sends
  them, the barcodes it scanned. At receipt with barcodes, only the box's tubes that were
  scanned become "received" at that lab; tubes missing from the scan stay in transit and extra
  tubes are not taken in: both are reported, never silently accepted. (A missing tube found
  later can be received through its lab's result upload, see :mod:`bastion.testing.results`.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import (
    Conflict,
    FieldProblem,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
)
from bastion.testing import rules
from bastion.testing import service as testing_service
from bastion.testing.models import Box, BoxEvent, BoxScan, Lab, Round, Site, Tube

#: Box labels: 4–32 letters, digits or dashes.
BOX_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9\-]{2,30}[A-Z0-9]$")
#: Most tubes one box (or one hand-over scan) may list.
MAX_TUBES_PER_BOX = 2_000
#: How far ahead of the server's clock a scanner's time may run.
CLOCK_SKEW = timedelta(minutes=10)

PACKED, PICKED_UP, RECEIVED = "packed", "picked_up", "received"


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


# Helpers -----------------------------------------------------------------------------------


def _safe_ref(value: str, max_len: int = 64) -> str | None:
    """A reference (code) safe to look up, or None when it cannot name anything (control
    characters, non-ASCII, too long): such values are unknown without asking the database."""
    text = value.strip()
    if not text or len(text) > max_len or not text.isascii() or not text.isprintable():
        return None
    return text


def _barcodes(
    raw: Sequence[str], where: str, problems: list[FieldProblem]
) -> list[tuple[int, str]]:
    """(index, barcode) for each well-formed barcode in scan order, double beeps dropped; a
    malformed one becomes a problem on ``where.index``."""
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, value in enumerate(raw):
        barcode = rules.normalise_barcode(str(value))
        if not rules.is_valid_barcode(barcode):
            problems.append(
                FieldProblem(f"{where}.{i}", "scan.bad_barcode", {"value": barcode[:40]})
            )
        elif barcode not in seen:
            seen.add(barcode)
            out.append((i, barcode))
    return out


def _box_code(code: str) -> str | None:
    text = code.strip().upper()
    return text if BOX_CODE_RE.match(text) else None


def _moment(at: datetime | None, not_before: datetime | None) -> datetime:
    """The time of a hand-over: ``at`` as the scanner recorded it (offline scans keep their
    time) or now. Refuses a time without a zone, in the future, or before the box's previous
    hand-over."""
    now = clock.now()
    if at is None:
        return now if not_before is None else max(now, not_before)
    if at.tzinfo is None:
        raise InvalidInput.one("at", "field.needs_timezone")
    if at > now + CLOCK_SKEW:
        raise InvalidInput.one("at", "box.time_in_future")
    if not_before is not None and at < not_before:
        raise InvalidInput.one("at", "box.time_before_previous")
    return at


def _count(
    tubes_counted: int | None, scanned: list[tuple[int, str]] | None, problems: list[FieldProblem]
) -> int:
    if tubes_counted is None:
        if scanned is None:
            problems.append(FieldProblem("tubes_counted", "box.count_required"))
            return 0
        return len(scanned)
    if not 0 <= tubes_counted <= MAX_TUBES_PER_BOX:
        problems.append(
            FieldProblem(
                "tubes_counted", "field.out_of_range", {"min": 0, "max": MAX_TUBES_PER_BOX}
            )
        )
    return tubes_counted


def _forbidden_region(field_name: str, region: str) -> Forbidden:
    return Forbidden(
        "error.region_outside",
        region=region,
        problems=[FieldProblem(field_name, "error.region_outside", {"region": region})],
    )


def _find_box(db_session: Session, code: str, *, lock: bool) -> Box:
    box_code = _box_code(code)
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


def _hand_over(
    db_session: Session,
    box: Box,
    event: str,
    moment: datetime,
    principal: Principal,
    counted: int | None,
    scanned: list[tuple[int, str]] | None = None,
) -> None:
    """Record one hand-over of ``box``: the event, and the barcodes scanned with it if any."""
    record = BoxEvent(
        box_id=box.id,
        event=event,
        at=moment,
        actor_id=principal.user_id,
        tubes_counted=counted,
        note="",
    )
    db_session.add(record)
    db_session.flush()
    if scanned is not None:
        db_session.add_all(BoxScan(event_id=record.id, barcode=barcode) for _, barcode in scanned)
        db_session.flush()


# Pack --------------------------------------------------------------------------------------


def pack_box(
    *,
    db_session: Session,
    principal: Principal,
    code: str,
    round_ref: str,
    site_code: str,
    tubes: Sequence[str],
    declared_tubes: int,
    at: datetime | None = None,
) -> BoxView:
    """Pack the tubes scanned at a site into a new box; they become "boxed".

    Refuses (every problem at once, nothing written): a malformed box code, an unknown round or
    site, no tubes or more than :data:`MAX_TUBES_PER_BOX`, a declared count out of range, a
    malformed or unknown tube, a tube of another round or site, a tube with no one bound to it,
    a tube already in a box; a packing time in the future or before the round started. Refuses
    a site outside the user's subtree (403) and a box code already used for different contents
    (409)."""
    principal.require(Perm.transport_write)
    principal.require(Perm.scans_write)
    problems: list[FieldProblem] = []
    box_code = _box_code(code)
    if box_code is None:
        problems.append(FieldProblem("code", "box.bad_code"))
    if not tubes:
        problems.append(FieldProblem("tubes", "box.no_tubes"))
    elif len(tubes) > MAX_TUBES_PER_BOX:
        problems.append(FieldProblem("tubes", "box.too_many_tubes", {"max": MAX_TUBES_PER_BOX}))
    if not 1 <= declared_tubes <= MAX_TUBES_PER_BOX:
        problems.append(
            FieldProblem(
                "declared_tubes", "field.out_of_range", {"min": 1, "max": MAX_TUBES_PER_BOX}
            )
        )
    scanned = _barcodes(tubes[:MAX_TUBES_PER_BOX], "tubes", problems)
    rnd: Round | None = None
    ref = _safe_ref(round_ref)
    if ref is not None:
        try:
            rnd = testing_service.get_round(db_session=db_session, principal=principal, ref=ref)
        except NotFound:
            rnd = None
    if rnd is None:
        problems.append(FieldProblem("round", "scan.unknown_round", {"value": round_ref[:40]}))
    site_ref = _safe_ref(site_code)
    site = (
        db_session.execute(select(Site).where(Site.code == site_ref)).scalar_one_or_none()
        if site_ref is not None
        else None
    )
    if site is None or not site.active:
        problems.append(FieldProblem("site", "scan.unknown_site", {"value": site_code[:40]}))
        site = None
    if problems:
        raise InvalidInput(problems=problems)
    assert rnd is not None
    assert site is not None
    assert box_code is not None
    if not principal.scope.contains(site.region_code):
        raise _forbidden_region("site", site.region_code)
    moment = _moment(at, None)
    if moment < rnd.starts_at:
        raise InvalidInput.one("at", "box.time_before_round")

    existing = db_session.execute(select(Box).where(Box.code == box_code)).scalar_one_or_none()
    if existing is not None:
        held = set(
            db_session.execute(select(Tube.barcode).where(Tube.box_id == existing.id)).scalars()
        )
        if (existing.round_id, existing.site_id) == (rnd.id, site.id) and held == {
            b for _, b in scanned
        }:
            return box_view(db_session, existing)
        raise Conflict(
            "box.code_taken",
            code=box_code,
            problems=[FieldProblem("code", "box.code_taken", {"code": box_code})],
        )

    # Lock the tubes being packed: two packers scanning the same tube into two boxes at once
    # would both see it unboxed and both claim it (SQLite's single writer needs no lock).
    found = {
        t.barcode: t
        for t in db_session.execute(
            select(Tube)
            .where(Tube.barcode.in_([b for _, b in scanned]))
            .order_by(Tube.id)
            .with_for_update()
        ).scalars()
    }
    other_boxes = {
        r.id: r.code
        for r in db_session.execute(
            select(Box.id, Box.code).where(
                Box.id.in_({t.box_id for t in found.values() if t.box_id is not None})
            )
        )
    }
    for i, barcode in scanned:
        where = f"tubes.{i}"
        tube = found.get(barcode)
        if tube is None:
            problems.append(FieldProblem(where, "box.unknown_tube", {"value": barcode}))
        elif tube.round_id != rnd.id:
            problems.append(FieldProblem(where, "box.tube_other_round", {"value": barcode}))
        elif tube.site_id != site.id:
            problems.append(FieldProblem(where, "box.tube_other_site", {"value": barcode}))
        elif tube.box_id is not None:
            problems.append(
                FieldProblem(
                    where,
                    "box.tube_in_other_box",
                    {"value": barcode, "box": other_boxes.get(tube.box_id, "?")},
                )
            )
        elif tube.member_count == 0:
            problems.append(FieldProblem(where, "box.tube_not_sampled", {"value": barcode}))
        elif not rules.can_move(tube.state, "boxed"):
            problems.append(
                FieldProblem(where, "box.tube_state", {"value": barcode, "state": tube.state})
            )
    if problems:
        raise InvalidInput(problems=problems)

    box = Box(
        code=box_code,
        round_id=rnd.id,
        site_id=site.id,
        region_code=site.region_code,
        state=PACKED,
        declared_tubes=declared_tubes,
        packed_at=moment,
    )
    db_session.add(box)
    db_session.flush()
    _hand_over(db_session, box, PACKED, moment, principal, declared_tubes)
    db_session.execute(
        update(Tube)
        .where(Tube.id.in_([t.id for t in found.values()]))
        .values(box_id=box.id, state="boxed")
    )
    db_session.flush()
    return box_view(db_session, box)


# Hand-overs --------------------------------------------------------------------------------


def pick_up_box(
    *,
    db_session: Session,
    principal: Principal,
    code: str,
    tubes_counted: int | None = None,
    tubes: Sequence[str] | None = None,
    at: datetime | None = None,
) -> BoxView:
    """A courier scans a packed box out of its site: the box and its tubes go "in transit".

    ``tubes_counted`` is what the courier counted; ``tubes`` the barcodes scanned, if any (the
    count defaults to their number). Refuses an unknown box (404), a box outside the user's
    subtree (403), a box already picked up or received (409), a malformed barcode, a missing or
    out-of-range count, and a time in the future or before packing."""
    principal.require(Perm.transport_write)
    problems: list[FieldProblem] = []
    scanned = None if tubes is None else _barcodes(tubes[:MAX_TUBES_PER_BOX], "tubes", problems)
    counted = _count(tubes_counted, scanned, problems)
    if tubes is not None and len(tubes) > MAX_TUBES_PER_BOX:
        problems.append(FieldProblem("tubes", "box.too_many_tubes", {"max": MAX_TUBES_PER_BOX}))
    if problems:
        raise InvalidInput(problems=problems)
    box = _find_box(db_session, code, lock=True)
    if not principal.scope.contains(box.region_code):
        raise _forbidden_region("code", box.region_code)
    if box.state != PACKED:
        key = "box.already_picked_up" if box.state == "in_transit" else "box.already_received"
        raise InvalidTransition(
            key, box=box.code, problems=[FieldProblem("code", key, {"box": box.code})]
        )
    moment = _moment(at, box.packed_at)
    box.state = "in_transit"
    box.picked_up_at = moment
    _hand_over(db_session, box, PICKED_UP, moment, principal, counted, scanned)
    db_session.execute(
        update(Tube)
        .where(Tube.box_id == box.id, Tube.state == "boxed")
        .values(state="in_transit")
        .execution_options(synchronize_session="fetch")
    )
    db_session.flush()
    return box_view(db_session, box)


def receive_box(
    *,
    db_session: Session,
    principal: Principal,
    code: str,
    lab_code: str,
    tubes_counted: int | None = None,
    tubes: Sequence[str] | None = None,
    at: datetime | None = None,
) -> BoxView:
    """A lab scans a box in: the box is "received" at that lab, and so are its tubes (all of
    them on a count-only scan; only those scanned when the scanner sends barcodes).

    Refuses an unknown or inactive lab, a lab outside the user's subtree (403), an unknown box
    (404), a box already received (409; a box is received once, with or without a courier
    scan), a malformed barcode, a missing or out-of-range count, and a time in the future or
    before the previous hand-over. Missing and extra tubes are not refusals: they are listed in
    the returned reconciliation."""
    principal.require(Perm.transport_write)
    principal.require(Perm.results_write)
    problems: list[FieldProblem] = []
    scanned = None if tubes is None else _barcodes(tubes[:MAX_TUBES_PER_BOX], "tubes", problems)
    counted = _count(tubes_counted, scanned, problems)
    if tubes is not None and len(tubes) > MAX_TUBES_PER_BOX:
        problems.append(FieldProblem("tubes", "box.too_many_tubes", {"max": MAX_TUBES_PER_BOX}))
    ref = _safe_ref(lab_code)
    lab = (
        db_session.execute(select(Lab).where(Lab.code == ref)).scalar_one_or_none()
        if ref is not None
        else None
    )
    if lab is None or not lab.active:
        problems.append(FieldProblem("lab", "lab.not_found", {"lab": lab_code[:40]}))
    if problems:
        raise InvalidInput(problems=problems)
    assert lab is not None
    if not principal.scope.contains(lab.region_code):
        raise _forbidden_region("lab", lab.region_code)
    box = _find_box(db_session, code, lock=True)
    if box.state == RECEIVED:
        raise InvalidTransition(
            "box.already_received",
            box=box.code,
            problems=[FieldProblem("code", "box.already_received", {"box": box.code})],
        )
    moment = _moment(at, box.picked_up_at or box.packed_at)
    box.state = RECEIVED
    box.lab_id = lab.id
    box.received_at = moment
    _hand_over(db_session, box, RECEIVED, moment, principal, counted, scanned)
    taken_in = update(Tube).where(
        Tube.box_id == box.id,
        Tube.state.in_(("boxed", "in_transit")),
        Tube.received_at.is_(None),
    )
    if scanned is not None:
        taken_in = taken_in.where(Tube.barcode.in_([b for _, b in scanned]))
    db_session.execute(
        taken_in.values(lab_id=lab.id, received_at=moment, state="received").execution_options(
            synchronize_session="fetch"
        )
    )
    db_session.flush()
    return box_view(db_session, box)


# Reading and reconciliation ----------------------------------------------------------------


def get_box(*, db_session: Session, principal: Principal, code: str) -> BoxView:
    """A box with its reconciliation, if its site or its receiving lab lies in the user's
    subtree (otherwise 404, as if it did not exist)."""
    principal.require(Perm.testing_read)
    box = _find_box(db_session, code, lock=False)
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
