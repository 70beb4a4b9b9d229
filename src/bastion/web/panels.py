"""The dashboard's slots for cases, isolation, transfers and the latest bulletin, filled from
the owning domains' services (the isolation, transfer and bulletin pages' summary functions and
the tracing figures). Registered on import; :func:`bastion.web.routes.install` imports it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.i18n import Language, t
from bastion.tracing import service as tracing_service
from bastion.web import bulletin, isolation, transfers
from bastion.web.dashboard import Panel, add_panel
from bastion.web.views import bar_chart

#: No routes of its own (the panels render inside /dashboard); kept for routes.install.
router = APIRouter(include_in_schema=False)


def cases_panel(
    session: Session, principal: Principal, lang: Language, region_code: str
) -> dict[str, Any]:
    """Today's new cases in the region shown (by clinical type), the contacts under
    management, and the epidemic curve the bulletin draws."""
    principal.require(Perm.tracing_read)
    principal.require_region(region_code)
    today = clock.today()
    f = tracing_service.figures(db_session=session, day=today, region_code=region_code)
    last = tracing_service.latest_case_day(db_session=session, region_code=region_code)
    return {
        "day": today,
        "figures": f,
        "by_type": sorted(f.new_confirmed_by_type.items()),
        "close_active": f.close_cumulative - f.close_released,
        "secondary_active": f.secondary_cumulative - f.secondary_released,
        "last_day": last,
        "curve": f"/bulletin/{today.isoformat()}/charts/curve.svg?region={region_code}"
        if principal.can(Perm.bulletin_read)
        else None,
    }


def isolation_panel(
    session: Session, principal: Principal, lang: Language, region_code: str
) -> dict[str, Any]:
    """Beds taken against beds across the caller's sites (a bar with capacity marked)."""
    summary = isolation.isolation_summary(session, principal)
    beds, occupied = summary["beds"], summary["occupied"]
    chart = bar_chart(
        t("web.pn_occupancy", lang),
        [
            (
                t("web.pn_beds", lang),
                occupied / beds if beds else 0.0,
                f"{occupied:,}/{beds:,}",
                "over" if beds and occupied > beds else "",
            )
        ],
        scale=max(1.2, occupied / beds if beds else 1.0),
        mark=1.0,
    )
    return {**summary, "chart": chart}


def transfers_panel(
    session: Session, principal: Principal, lang: Language, region_code: str
) -> dict[str, Any]:
    """Open transfer tasks, and those still open from before today (red)."""
    return transfers.transfer_summary(session, principal)


def bulletin_panel(
    session: Session, principal: Principal, lang: Language, region_code: str
) -> dict[str, Any]:
    """The latest bulletin's day, whether it is published, and a link to it."""
    return bulletin.latest_bulletin_summary(session, principal, lang)


add_panel(Panel("cases", Perm.tracing_read, "panel_cases.html", cases_panel))
add_panel(Panel("isolation", Perm.isolation_read, "panel_isolation.html", isolation_panel))
add_panel(Panel("transfers", Perm.isolation_read, "panel_transfers.html", transfers_panel))
add_panel(Panel("bulletin", Perm.bulletin_read, "panel_bulletin.html", bulletin_panel))
