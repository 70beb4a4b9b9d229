"""Lifting checks for zones, per the profile in force: days without a new case, the last contact
released, a negative full round. Lifting through the check refuses with the failing conditions
unless a commander overrides with a reason (audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import column, func, inspect, select, table
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import FieldProblem, InvalidInput, InvalidTransition, NotFound
from bastion.isolation.enums import PlacementStatus
from bastion.isolation.models import Placement
from bastion.protocols import service as protocol_service
from bastion.protocols.profiles import Profile
from bastion.regions import service as region_service
from bastion.regions.models import Zone
from bastion.testing.models import Round, RoundCoverage

#: The old zone kinds and the risk areas that replaced them, both ways.
EQUIVALENT = {
    "lockdown": "high",
    "control": "medium",
    "precaution": "low",
    "high": "lockdown",
    "medium": "control",
    "low": "precaution",
}


def latest_case_day(*, db_session: Session, region_code: str) -> date | None:
    """The last day a case was reported in the subtree of ``region_code``: tracing's own
    function when it is there, else the ``cases`` table read per docs/dev/shared-records.md."""
    try:
        from bastion.tracing import service as tracing_service

        found = getattr(tracing_service, "latest_case_day", None)
    except ImportError:
        found = None
    if found is not None:
        day: date | None = found(db_session=db_session, region_code=region_code)
        return day
    if not inspect(db_session.connection()).has_table("cases"):
        return None
    cases = table("cases", column("region_code"), column("reported_on"))
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    value = db_session.execute(
        select(func.max(cases.c.reported_on)).where(scope.clause(cases.c.region_code))
    ).scalar_one_or_none()
    if isinstance(value, str):
        return date.fromisoformat(value)
    return value if isinstance(value, date) else None


def lift_days(profile: Profile, kind: str) -> int:
    """Days without a new case the profile asks before a zone of ``kind`` may be lifted (the
    equivalent kind of the other vocabulary when the profile does not name it; else its
    strictest)."""
    days = profile.zone_lift_days
    if kind in days:
        return days[kind]
    if EQUIVALENT.get(kind) in days:
        return days[EQUIVALENT[kind]]
    return max(days.values(), default=0)


@dataclass(frozen=True)
class Condition:
    key: str
    ok: bool
    params: dict[str, object]


@dataclass(frozen=True)
class LiftCheck:
    zone: Zone
    profile: str
    on: date
    conditions: list[Condition]

    @property
    def failing(self) -> list[Condition]:
        return [c for c in self.conditions if not c.ok]

    @property
    def ready(self) -> bool:
        return not self.failing


def _zone(db_session: Session, principal: Principal, zone_id: int) -> Zone:
    zone = db_session.get(Zone, zone_id)
    if zone is None or not principal.scope.contains(zone.region_code):
        raise NotFound("error.not_found")
    return zone


def _negative_round(db_session: Session, zone: Zone, on: date) -> tuple[bool, str]:
    """A closed round covering the zone, begun in the zone's time, whose sampled people in the
    zone all have results and no positive tube, and no positive tube in the zone since."""
    chain = [r.code for r in region_service.ancestors(db_session=db_session, code=zone.region_code)]
    scope = region_service.scope_of(db_session=db_session, code=zone.region_code)
    tz = clock.local_tz()
    since = datetime.combine(zone.starts_on, time.min, tzinfo=tz)
    until = datetime.combine(on + timedelta(days=1), time.min, tzinfo=tz)
    rounds = db_session.execute(
        select(Round)
        .where(
            Round.region_code.in_(chain),
            Round.status == "closed",
            Round.starts_at >= since,
            Round.starts_at < until,
        )
        .order_by(Round.starts_at.desc())
    ).scalars()
    for rnd in rounds:
        sampled, resulted, positive = db_session.execute(
            select(
                func.coalesce(func.sum(RoundCoverage.sampled), 0),
                func.coalesce(func.sum(RoundCoverage.resulted), 0),
                func.coalesce(func.sum(RoundCoverage.positive_tubes), 0),
            ).where(RoundCoverage.round_id == rnd.id, scope.clause(RoundCoverage.region_code))
        ).one()
        if not sampled or resulted < sampled or positive:
            continue
        later_positive = db_session.execute(
            select(func.coalesce(func.sum(RoundCoverage.positive_tubes), 0))
            .join(Round, Round.id == RoundCoverage.round_id)
            .where(Round.starts_at > rnd.starts_at, scope.clause(RoundCoverage.region_code))
        ).scalar_one()
        if not later_positive:
            return True, rnd.code
    return False, ""


def check_lift(
    *, db_session: Session, principal: Principal, zone_id: int, on: date | None = None
) -> LiftCheck:
    """Which lifting conditions hold for a zone on ``on`` (today by default), under the profile
    in force then: days without a new case in the zone (at least the profile's days for the
    zone's kind), no contact still pending or in isolation there, and a negative full round."""
    principal.require(Perm.isolation_read)
    zone = _zone(db_session, principal, zone_id)
    day = on or clock.today()
    if day > clock.today():
        raise InvalidInput.one("on", "placement.date_in_future", day=day.isoformat())
    profile = protocol_service.profile_on(db_session, day)
    needed = lift_days(profile, zone.kind)
    latest = latest_case_day(db_session=db_session, region_code=zone.region_code)
    baseline = latest if latest is not None else zone.starts_on - timedelta(days=1)
    clear = max((day - baseline).days, 0)
    scope = region_service.scope_of(db_session=db_session, code=zone.region_code)
    contacts = db_session.execute(
        select(func.count())
        .select_from(Placement)
        .where(
            scope.clause(Placement.region_code),
            Placement.reason.in_(("close_contact", "secondary_contact")),
            Placement.setting != "home_monitoring",
            Placement.status.in_((PlacementStatus.pending, PlacementStatus.active)),
        )
    ).scalar_one()
    round_ok, round_code = _negative_round(db_session, zone, day)
    conditions = [
        Condition(
            "isolation.zone_days_without_cases",
            clear >= needed,
            {"days": clear, "needed": needed, "last": latest.isoformat() if latest else "—"},
        ),
        Condition("isolation.zone_contacts_released", contacts == 0, {"count": int(contacts)}),
        Condition("isolation.zone_negative_round", round_ok, {"round": round_code or "—"}),
    ]
    return LiftCheck(zone=zone, profile=profile.key, on=day, conditions=conditions)


def lift_with_check(
    *,
    db_session: Session,
    principal: Principal,
    zone_id: int,
    ends_on: date,
    override_reason: str | None = None,
) -> tuple[Zone, LiftCheck]:
    """Lift a zone on ``ends_on`` if every lifting condition holds; otherwise refuse listing the
    failing ones, unless a commander (zones permission) gives an override reason, which is
    audited with the conditions it overrode."""
    principal.require(Perm.zones_write)
    check = check_lift(db_session=db_session, principal=principal, zone_id=zone_id, on=ends_on)
    reason = (override_reason or "").strip()
    if check.failing and not reason:
        raise InvalidTransition(
            "isolation.zone_lift_refused",
            problems=[FieldProblem("conditions", c.key, dict(c.params)) for c in check.failing],
        )
    zone = region_service.lift_zone(
        db_session=db_session, principal=principal, zone_id=zone_id, ends_on=ends_on
    )
    if check.failing:
        audit_service.record(
            db_session=db_session,
            actor=principal,
            action="override.lift",
            target_type="zone",
            target_id=zone.id,
            region_code=zone.region_code,
            details={"reason": reason, "failing": [c.key for c in check.failing]},
        )
    return zone, check
