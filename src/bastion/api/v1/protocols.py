"""Protocol profiles: what each says, which is in force since when, and choosing a new one."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from bastion.api.deps import CurrentPrincipal, LangDep, SessionDep
from bastion.core import clock
from bastion.core.auth import Perm
from bastion.core.i18n import t
from bastion.core.text import Line, Text
from bastion.protocols import service as protocol_service
from bastion.protocols.profiles import PROFILES

router = APIRouter(prefix="/protocols", tags=["protocols"])


class ChoiceIn(BaseModel):
    profile: Line
    effective_from: date
    reason: Text


class ChoiceOut(BaseModel):
    profile: str
    effective_from: date | None
    reason: str
    #: A change applies to new placements only: running ones keep the profile they began under.
    note: str


@router.get("")
def protocols(session: SessionDep, principal: CurrentPrincipal, lang: LangDep) -> dict[str, Any]:
    """Every profile (its rules), the history of choices and the profile in force today.
    Administrators choose; whoever watches isolation may read what is in force."""
    if not principal.can(Perm.protocols_manage):
        principal.require(Perm.isolation_read)
    profiles = []
    for key, profile in PROFILES.items():
        profiles.append(
            {
                "key": key,
                "name": t(profile.name_key, lang),
                "close": asdict(profile.close),
                "secondary": asdict(profile.secondary),
                "lookback_days": profile.lookback_days,
                "zone_kinds": list(profile.zone_kinds),
                "zone_lift_days": dict(profile.zone_lift_days),
                "case_destination": dict(profile.case_destination),
                "discharge_tests": profile.discharge_tests,
                "discharge_ct": profile.discharge_ct,
            }
        )
    history = [
        {
            "profile": c.profile,
            "effective_from": c.effective_from.isoformat() if c.effective_from else None,
            "reason": c.reason,
        }
        for c in protocol_service.history(session)
    ]
    return {
        "in_force": protocol_service.profile_on(session, clock.today()).key,
        "profiles": profiles,
        "history": history,
    }


@router.post("/choices", response_model=ChoiceOut, status_code=201)
def choose(
    body: ChoiceIn, session: SessionDep, principal: CurrentPrincipal, lang: LangDep
) -> ChoiceOut:
    choice = protocol_service.choose(
        db_session=session,
        principal=principal,
        profile=body.profile,
        effective_from=body.effective_from,
        reason=body.reason,
    )
    return ChoiceOut(
        profile=choice.profile,
        effective_from=choice.effective_from,
        reason=choice.reason,
        note=t("placement.profile_change_new_only", lang),
    )
