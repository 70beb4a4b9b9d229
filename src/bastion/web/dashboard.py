"""The command dashboard (commander, analyst): round progress by region with what is late, lab
load against capacity, drill-down province → city → district → … → grid.

Sections for cases, isolation occupancy, transfers and the latest bulletin are *slots*: the
domain that owns them registers a :class:`Panel` (``dashboard.add_panel(...)`` in its own
``web/<domain>.py``) and it appears in its slot for users holding its permission; until then the
slot shows a marked placeholder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core.auth import Perm, Principal
from bastion.core.i18n import Language, t
from bastion.regions import service as region_service
from bastion.testing import coverage, transport
from bastion.testing import labs as lab_figures
from bastion.testing import service as testing_service
from bastion.web.common import Viewer, WebRoute, render
from bastion.web.views import bar_chart, region_name

router = APIRouter(include_in_schema=False, route_class=WebRoute)

#: Slots other domains fill, in page order.
SLOTS: tuple[str, ...] = ("cases", "isolation", "transfers", "zones", "bulletin")
SLOT_TITLES = {
    "cases": "web.slot_cases",
    "isolation": "web.slot_isolation",
    "transfers": "web.slot_transfers",
    "zones": "web.slot_zones",
    "bulletin": "web.slot_bulletin",
}


@dataclass(frozen=True)
class Panel:
    """A dashboard section owned by another domain. ``build(session, principal, lang, region)``
    returns the context ``template`` renders (a fragment, included inside the slot's card); it
    must call that domain's services, which check permission and region."""

    slot: str
    perm: Perm
    template: str
    build: Callable[[Session, Principal, Language, str], dict[str, Any]]


PANELS: dict[str, Panel] = {}


def add_panel(panel: Panel) -> None:
    if panel.slot not in SLOTS:
        raise ValueError(f"unknown dashboard slot {panel.slot!r}; slots: {SLOTS}")
    PANELS[panel.slot] = panel


def breadcrumbs(session: Session, principal: Principal, code: str, lang: Language) -> list[Any]:
    """The regions from the user's own down to ``code`` (never above the user's region)."""
    chain = region_service.ancestors(db_session=session, code=code)
    return [
        {"code": r.code, "name": region_name(r, lang)}
        for r in chain
        if principal.scope.contains(r.code) or r.code == principal.region_code
    ]


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def dashboard_view(
    session: Session,
    principal: Principal,
    lang: Language,
    *,
    round_ref: str | None,
    region_code: str | None,
) -> dict[str, Any]:
    """What the dashboard shows. The page belongs to the command centre (``bulletin.read``, the
    watch permission); each section then calls its service, which checks its own permission and
    the region exactly as the API does."""
    principal.require(Perm.bulletin_read)
    rounds = testing_service.list_rounds(db_session=session, principal=principal)
    view = None
    if rounds:
        ref = round_ref or str(rounds[0].id)
        view = coverage.view(
            db_session=session, principal=principal, ref=ref, region_code=region_code or None
        )
    here = view.region.code if view is not None else (region_code or principal.region_code)
    if view is None and region_code:
        region_service.read(db_session=session, principal=principal, code=region_code)
    coverage_chart = None
    if view is not None:
        coverage_chart = bar_chart(
            t("web.coverage", lang),
            [
                (
                    (r.name_zh if lang == "zh-CN" else r.name_en) or r.code,
                    r.coverage or 0.0,
                    f"{r.sampled_required:,}/{r.required:,} {_pct(r.coverage)}",
                    "late" if r.late else "",
                )
                for r in view.rows
            ],
        )
    labs = lab_figures.lab_figures(db_session=session, principal=principal)
    top = max([1.5, *(lab.load for lab in labs)])
    lab_chart = bar_chart(
        t("web.lab_load", lang),
        [
            (
                lab.name,
                lab.load,
                f"{lab.received:,}/{lab.capacity:,}",
                "over" if lab.load > 1 else "",
            )
            for lab in labs
        ],
        scale=top,
        mark=1.0,
    )
    delays = None
    if view is not None:
        found = transport.transport_delays(
            db_session=session, principal=principal, ref=str(view.round_id)
        )
        # The region drilled into: its sites' tubes and boxes only.
        inside = region_service.scope_of(db_session=session, code=here)
        unboxed = [u for u in found.unboxed if inside.contains(u.region_code)]
        delays = {
            "unboxed": unboxed,
            "boxes": [b for b in found.late_boxes if inside.contains(b.region_code)],
            "tubes": sum(u.tubes for u in unboxed),
        }
    panels = []
    for slot in SLOTS:
        panel = PANELS.get(slot)
        entry: dict[str, Any] = {"slot": slot, "title": SLOT_TITLES[slot], "template": None}
        if panel is not None and principal.can(panel.perm):
            entry["template"] = panel.template
            entry["context"] = panel.build(session, principal, lang, here)
        elif panel is not None:
            continue
        panels.append(entry)
    return {
        "rounds": rounds,
        "view": view,
        "crumbs": breadcrumbs(session, principal, here, lang),
        "coverage_chart": coverage_chart,
        "labs": labs,
        "lab_chart": lab_chart,
        "delays": delays,
        "panels": panels,
        "pct": _pct,
    }


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    round_ref: Annotated[str | None, Query(alias="round", max_length=40)] = None,
    region: Annotated[str | None, Query(max_length=15)] = None,
) -> Response:
    lang = request_language(request)
    context = dashboard_view(session, principal, lang, round_ref=round_ref, region_code=region)
    return render(request, "dashboard.html", context)
