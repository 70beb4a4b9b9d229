"""Transport delays of a round (转运延误): tubes sampled long ago and still in no box, boxes packed
and never picked up, boxes picked up and never received.

Samples lose value with every hour on the road, and the round's deadline counts from sampling:
the command centre needs to see, per site, where tubes are stuck, before the coverage figures
show it as "results not out". Everything here is read from the record the transport writers
keep (``tubes.box_id``, ``tube_boxes.state`` and its times); nothing is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import InvalidInput
from bastion.testing import service as testing_service
from bastion.testing.models import Box, Lab, Site, Tube

#: Defaults: a tube should be boxed within two hours of its first scan, a packed box picked up
#: within two hours, a box on the road received within four.
UNBOXED_AFTER = timedelta(hours=2)
WAITING_AFTER = timedelta(hours=2)
ON_ROAD_AFTER = timedelta(hours=4)
#: Longest delay threshold a caller may ask for (a week: older than that is not a delay).
MAX_HOURS = 168
MAX_BOXES = 500


@dataclass(frozen=True)
class UnboxedAtSite:
    """Tubes of one site sampled before the threshold, in no box and with no result."""

    site: str
    region_code: str
    tubes: int
    oldest_scan_at: datetime


@dataclass(frozen=True)
class LateBox:
    """A box waiting for its courier (``packed``) or on the road (``in_transit``) too long."""

    code: str
    state: str
    site: str
    lab: str | None
    region_code: str
    declared_tubes: int
    since: datetime
    hours: float


@dataclass
class Delays:
    round_code: str
    at: datetime
    unboxed: list[UnboxedAtSite]
    late_boxes: list[LateBox]

    @property
    def unboxed_tubes(self) -> int:
        return sum(u.tubes for u in self.unboxed)


def _hours(value: float | None, default: timedelta, name: str) -> timedelta:
    if value is None:
        return default
    if not 0 < value <= MAX_HOURS:
        raise InvalidInput.one(name, "field.out_of_range", min=0, max=MAX_HOURS)
    return timedelta(hours=value)


def transport_delays(
    *,
    db_session: Session,
    principal: Principal,
    ref: str,
    unboxed_hours: float | None = None,
    waiting_hours: float | None = None,
    on_road_hours: float | None = None,
) -> Delays:
    """The round's transport delays in the user's subtree (sites and boxes whose region is
    inside it), now: tubes unboxed after ``unboxed_hours`` counted per site, boxes packed but not
    picked up after ``waiting_hours`` and boxes not received after ``on_road_hours``, oldest
    first (at most :data:`MAX_BOXES`). Refuses thresholds outside (0, 168] hours, naming them;
    an unknown round or one outside the subtree is 404."""
    principal.require(Perm.testing_read)
    unboxed_after = _hours(unboxed_hours, UNBOXED_AFTER, "unboxed_hours")
    waiting_after = _hours(waiting_hours, WAITING_AFTER, "waiting_hours")
    on_road_after = _hours(on_road_hours, ON_ROAD_AFTER, "on_road_hours")
    rnd = testing_service.get_round(db_session=db_session, principal=principal, ref=ref)
    now = clock.now()
    scope = principal.scope
    unboxed = [
        # first_scan_at is never NULL here: the filter below compares it.
        UnboxedAtSite(site=code, region_code=region, tubes=int(n), oldest_scan_at=oldest or now)
        for code, region, n, oldest in db_session.execute(
            select(Site.code, Site.region_code, func.count(), func.min(Tube.first_scan_at))
            .join(Site, Site.id == Tube.site_id)
            .where(
                Tube.round_id == rnd.id,
                Tube.box_id.is_(None),
                Tube.result.is_(None),
                Tube.member_count > 0,
                Tube.first_scan_at < now - unboxed_after,
                scope.clause(Tube.region_code),
            )
            .group_by(Site.code, Site.region_code)
            .order_by(func.min(Tube.first_scan_at), Site.code)
        )
    ]
    waiting = and_(Box.state == "packed", Box.packed_at < now - waiting_after)
    on_road = and_(Box.state == "in_transit", Box.picked_up_at < now - on_road_after)
    late = [
        LateBox(
            code=box.code,
            state=box.state,
            site=site,
            lab=lab,
            region_code=box.region_code,
            declared_tubes=box.declared_tubes,
            since=since,
            hours=round((now - since).total_seconds() / 3600, 1),
        )
        for box, site, lab, since in db_session.execute(
            select(
                Box,
                Site.code,
                Lab.code,
                func.coalesce(Box.picked_up_at, Box.packed_at),
            )
            .join(Site, Site.id == Box.site_id)
            .outerjoin(Lab, Lab.id == Box.lab_id)
            .where(Box.round_id == rnd.id, or_(waiting, on_road), scope.clause(Box.region_code))
            .order_by(func.coalesce(Box.picked_up_at, Box.packed_at), Box.code)
            .limit(MAX_BOXES)
        )
    ]
    return Delays(round_code=rnd.code, at=now, unboxed=unboxed, late_boxes=late)
