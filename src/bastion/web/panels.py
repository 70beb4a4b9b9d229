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
from bastion.regions import service as region_service
from bastion.regions.enums import ZoneKind
from bastion.tracing import service as tracing_service
from bastion.web import bulletin, isolation, transfers
from bastion.web.dashboard import Panel, add_panel
from bastion.web.views import bar_chart

#: Strictest first (the older three, then the risk areas that replaced them).
ZONE_ORDER = [k.value for k in ZoneKind]
ZONE_NAMES = {
    "lockdown": "web.zone_kind_lockdown",
    "control": "web.zone_kind_control",
    "precaution": "web.zone_kind_precaution",
    "high": "web.zone_kind_high",
    "medium": "web.zone_kind_medium",
    "low": "web.zone_kind_low",
}

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


def zones_panel(
    session: Session, principal: Principal, lang: Language, region_code: str
) -> dict[str, Any]:
    """Lockdown / control / precaution zones in force today under the region shown, strictest
    kind first, with how many days each has run."""
    principal.require_region(region_code)
    today = clock.today()
    shown = region_service.scope_of(db_session=session, code=region_code)
    zones = [
        z
        for z in region_service.zones_in_force(db_session=session, principal=principal, on=today)
        if shown.contains(z.region_code)
    ]
    order = {kind: i for i, kind in enumerate(ZONE_ORDER)}
    zones.sort(key=lambda z: (order.get(z.kind, len(order)), z.region_code))
    counts: dict[str, int] = {}
    for z in zones:
        counts[z.kind] = counts.get(z.kind, 0) + 1
    return {
        "counts": [
            (kind, t(ZONE_NAMES.get(kind, kind), lang), n)
            for kind, n in sorted(counts.items(), key=lambda kv: order.get(kv[0], len(order)))
        ],
        "zones": [
            {
                "region": z.region_code,
                "kind": z.kind,
                "kind_name": t(ZONE_NAMES.get(z.kind, z.kind), lang),
                "since": z.starts_on,
                "days": (today - z.starts_on).days + 1,
            }
            for z in zones[:20]
        ],
        "more": max(0, len(zones) - 20),
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
add_panel(Panel("zones", Perm.regions_read, "panel_zones.html", zones_panel))
add_panel(Panel("bulletin", Perm.bulletin_read, "panel_bulletin.html", bulletin_panel))
