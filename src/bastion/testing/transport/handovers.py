"""The hand-overs after packing: a courier's pick-up and a lab's receipt, and the record every
hand-over (packing included) leaves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bastion.core.auth import Perm, Principal
from bastion.core.errors import (
    FieldProblem,
    InvalidInput,
    InvalidTransition,
)
from bastion.testing.models import Box, BoxEvent, BoxScan, Lab, Tube
from bastion.testing.transport.inputs import (
    PACKED,
    PICKED_UP,
    RECEIVED,
    forbidden_region,
    hand_over_scan,
    hand_over_time,
    safe_ref,
)
from bastion.testing.transport.views import (
    BoxView,
    box_view,
    find_box,
)


def record_hand_over(
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
    scanned, counted = hand_over_scan(tubes_counted, tubes, problems)
    if problems:
        raise InvalidInput(problems=problems)
    box = find_box(db_session, code, lock=True)
    if not principal.scope.contains(box.region_code):
        raise forbidden_region("code", box.region_code)
    if box.state != PACKED:
        key = "box.already_picked_up" if box.state == "in_transit" else "box.already_received"
        raise InvalidTransition(
            key, box=box.code, problems=[FieldProblem("code", key, {"box": box.code})]
        )
    moment = hand_over_time(at, box.packed_at)
    box.state = "in_transit"
    box.picked_up_at = moment
    record_hand_over(db_session, box, PICKED_UP, moment, principal, counted, scanned)
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
    scanned, counted = hand_over_scan(tubes_counted, tubes, problems)
    ref = safe_ref(lab_code)
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
        raise forbidden_region("lab", lab.region_code)
    box = find_box(db_session, code, lock=True)
    if box.state == RECEIVED:
        raise InvalidTransition(
            "box.already_received",
            box=box.code,
            problems=[FieldProblem("code", "box.already_received", {"box": box.code})],
        )
    moment = hand_over_time(at, box.picked_up_at or box.packed_at)
    box.state = RECEIVED
    box.lab_id = lab.id
    box.received_at = moment
    record_hand_over(db_session, box, RECEIVED, moment, principal, counted, scanned)
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
