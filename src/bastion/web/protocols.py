"""The protocol page (admin): every profile and what it rules, the one in force today, the history
of choices, and — for protocols.manage — choosing a profile from a date with a reason, through
:mod:`bastion.protocols.service` as ``/api/v1/protocols`` does. Those who read the isolation
record (the command, the isolation team) see the page read-only: the profile decides their
placements' periods and test days.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import InvalidInput
from bastion.core.i18n import Language, t
from bastion.protocols import service as protocol_service
from bastion.protocols.profiles import PROFILES
from bastion.web.common import NavItem, Viewer, WebRoute, add_nav, render
from bastion.web.forms import Csrf, FormPage

router = APIRouter(include_in_schema=False, route_class=WebRoute)
add_nav(
    NavItem(
        "/admin/protocols",
        "web.nav_protocols",
        Perm.isolation_read,
        frozenset({"admin", "commander", "analyst", "isolation"}),
    )
)


def _require_read(principal: Principal) -> None:
    """Managers, or readers of the isolation record (read-only)."""
    if not principal.can(Perm.protocols_manage):
        principal.require(Perm.isolation_read)


def protocols_view(session: Session, principal: Principal, lang: Language) -> dict[str, Any]:
    _require_read(principal)
    profiles = [
        {
            "key": key,
            "name": t(p.name_key, lang),
            "close": asdict(p.close),
            "secondary": asdict(p.secondary),
            "lookback_days": p.lookback_days,
            "zone_lift_days": dict(p.zone_lift_days),
            "case_destination": dict(p.case_destination),
            "discharge_tests": p.discharge_tests,
            "discharge_ct": p.discharge_ct,
        }
        for key, p in PROFILES.items()
    ]
    return {
        "in_force": protocol_service.profile_on(session, clock.today()).key,
        "profiles": profiles,
        "history": protocol_service.history(session),
        "today": clock.today(),
        "can_manage": principal.can(Perm.protocols_manage),
    }


@router.get("/admin/protocols", response_class=HTMLResponse)
def protocols_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    lang = request_language(request)
    context = protocols_view(session, principal, lang)
    if done == "choose":
        context["notice"] = t("placement.profile_change_new_only", lang)
    return render(request, "protocols.html", context)


def _day(principal: Principal, value: str) -> date:
    """The date typed in; the permission first, so that a reader is refused as a reader."""
    principal.require(Perm.protocols_manage)
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput.one("effective_from", "field.bad_date", value=value[:10]) from None


FORMS = FormPage(
    "protocols.html",
    lambda request, session, principal: protocols_view(
        session, principal, request_language(request)
    ),
)


@router.post("/admin/protocols/choices", response_class=HTMLResponse)
def choose(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Csrf = "",
    profile: Annotated[str, Form(max_length=40)] = "",
    effective_from: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: protocol_service.choose(
            db_session=session,
            principal=principal,
            profile=profile,
            effective_from=_day(principal, effective_from),
            reason=reason,
        ),
        done="/admin/protocols?done=choose",
        form={"profile": profile, "effective_from": effective_from, "reason": reason},
    )
