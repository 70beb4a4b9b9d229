"""Which protocol profile is in force on a date, and choosing a new one.

With no choice recorded, the deployment's setting ``BASTION_PROTOCOL_PROFILE`` is in force on
every date. A choice takes effect from its date on; it never changes what was decided under the
profile before it (a placement keeps the profile it was made under: a change applies to new
placements only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.config import get_settings
from bastion.core.errors import Conflict, InvalidInput
from bastion.protocols.models import ProtocolChoice
from bastion.protocols.profiles import PROFILES, Profile, get_profile


@dataclass(frozen=True)
class ChoiceView:
    profile: str
    effective_from: date | None
    reason: str


def profile_on(db_session: Session, day: date | None = None) -> Profile:
    """The profile in force on ``day`` (today when None)."""
    day = day or clock.today()
    key = db_session.execute(
        select(ProtocolChoice.profile)
        .where(ProtocolChoice.effective_from <= day)
        .order_by(ProtocolChoice.effective_from.desc())
        .limit(1)
    ).scalar_one_or_none()
    return get_profile(key or get_settings().protocol_profile)


def history(db_session: Session) -> list[ChoiceView]:
    """The default, then every choice in date order."""
    rows = db_session.execute(
        select(ProtocolChoice).order_by(ProtocolChoice.effective_from)
    ).scalars()
    return [ChoiceView(get_settings().protocol_profile, None, "default")] + [
        ChoiceView(r.profile, r.effective_from, r.reason) for r in rows
    ]


def choose(
    *,
    db_session: Session,
    principal: Principal,
    profile: str,
    effective_from: date,
    reason: str,
) -> ChoiceView:
    """Put ``profile`` in force from ``effective_from``. Not retroactive: a date in the past is
    refused (what was decided then stays decided under the rules of then)."""
    principal.require(Perm.protocols_manage)
    get_profile(profile)
    if effective_from < clock.today():
        raise InvalidInput.one(
            "effective_from", "error.protocol_retroactive", day=effective_from.isoformat()
        )
    if not reason.strip():
        raise InvalidInput.one("reason", "field.required")
    taken = db_session.execute(
        select(ProtocolChoice).where(ProtocolChoice.effective_from == effective_from)
    ).scalar_one_or_none()
    if taken is not None:
        raise Conflict("error.protocol_day_taken", day=effective_from.isoformat())
    choice = ProtocolChoice(
        profile=profile,
        effective_from=effective_from,
        reason=reason.strip(),
        chosen_by=principal.user_id,
        created_at=clock.now(),
    )
    db_session.add(choice)
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="protocol.choose",
        target_type="protocol_choice",
        target_id=choice.id,
        details={"profile": profile, "effective_from": effective_from.isoformat()},
    )
    return ChoiceView(choice.profile, choice.effective_from, choice.reason)


__all__ = ["PROFILES", "ChoiceView", "choose", "history", "profile_on"]
