"""Packing the tubes scanned at a site into a new box (all or nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bastion.core.auth import Perm, Principal
from bastion.core.errors import (
    Conflict,
    FieldProblem,
    InvalidInput,
    NotFound,
)
from bastion.testing import rules
from bastion.testing import service as testing_service
from bastion.testing.models import Box, Round, Site, Tube
from bastion.testing.transport.handovers import record_hand_over
from bastion.testing.transport.inputs import (
    MAX_TUBES_PER_BOX,
    PACKED,
    forbidden_region,
    hand_over_time,
    normal_box_code,
    read_barcodes,
    safe_ref,
)
from bastion.testing.transport.views import (
    BoxView,
    box_view,
)


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
    box_code = normal_box_code(code)
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
    scanned = read_barcodes(tubes[:MAX_TUBES_PER_BOX], "tubes", problems)
    rnd: Round | None = None
    ref = safe_ref(round_ref)
    if ref is not None:
        try:
            rnd = testing_service.get_round(db_session=db_session, principal=principal, ref=ref)
        except NotFound:
            rnd = None
    if rnd is None:
        problems.append(FieldProblem("round", "scan.unknown_round", {"value": round_ref[:40]}))
    site_ref = safe_ref(site_code)
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
        raise forbidden_region("site", site.region_code)
    moment = hand_over_time(at, None)
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
    record_hand_over(db_session, box, PACKED, moment, principal, declared_tubes)
    db_session.execute(
        update(Tube)
        .where(Tube.id.in_([t.id for t in found.values()]))
        .values(box_id=box.id, state="boxed")
    )
    db_session.flush()
    return box_view(db_session, box)
