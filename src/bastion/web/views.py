"""What each page shows, gathered from the services (pages render; they do not decide)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.core.auth import ROLE_PERMISSIONS, Perm, Principal
from bastion.core.i18n import Language
from bastion.regions import service as region_service
from bastion.registry.models import Person


def home(session: Session, principal: Principal, lang: Language) -> dict[str, Any]:
    region = region_service.get(db_session=session, code=principal.region_code)
    children: list[dict[str, Any]] = []
    registered = None
    if principal.can(Perm.regions_read) and region is not None:
        kids = region_service.children(
            db_session=session, principal=principal, code=principal.region_code
        )
        if principal.can(Perm.registry_read):
            registered = session.execute(
                select(func.count())
                .select_from(Person)
                .where(principal.scope.clause(Person.region_code))
            ).scalar_one()
            counts = _counts_by_child(session, principal, [k.code for k in kids])
        else:
            counts = {}
        children = [
            {
                "code": k.code,
                "name": k.name_zh if lang == "zh-CN" else k.name_en,
                "level": k.level,
                "population": k.population,
                "registered": counts.get(k.code),
            }
            for k in kids
        ]
    return {
        "principal": principal,
        "region": region,
        "region_name": (region.name_zh if lang == "zh-CN" else region.name_en) if region else "",
        "children": children,
        "registered": registered,
        "permissions": sorted(p.value for p in ROLE_PERMISSIONS[principal.role]),
    }


def _counts_by_child(session: Session, principal: Principal, codes: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for code in codes:
        scope = region_service.scope_of(db_session=session, code=code)
        out[code] = session.execute(
            select(func.count())
            .select_from(Person)
            .where(scope.clause(Person.region_code), principal.scope.clause(Person.region_code))
        ).scalar_one()
    return out


# Charts ------------------------------------------------------------------------------------


def bar_chart(
    title: str,
    items: list[tuple[str, float, str, str]],
    *,
    scale: float = 1.0,
    mark: float | None = None,
) -> dict[str, Any]:
    """Geometry of a horizontal bar chart drawn as SVG by ``_bars.html``: one bar per
    ``(label, value, text, css class)``, the value as a share of ``scale`` (bars past it are
    clipped; ``mark`` draws a line at that share, e.g. capacity at 1.0 of a 1.5 scale)."""
    left, span, step = 130, 300, 26
    bars = []
    for i, (label, value, text, cls) in enumerate(items):
        share = 0.0 if scale <= 0 else max(0.0, min(value / scale, 1.0))
        bars.append(
            {
                "y": 4 + i * step,
                "w": round(share * span, 1),
                "label": label[:14],
                "text": text,
                "cls": cls,
                "mark": None if mark is None or scale <= 0 else round(mark / scale * span, 1),
            }
        )
    return {
        "title": title,
        "bars": bars,
        "left": left,
        "span": span,
        "width": left + span + 110,
        "height": max(step, 8 + len(items) * step),
    }


def region_name(region: Any, lang: Language) -> str:
    if region is None:
        return ""
    return str(region.name_zh if lang == "zh-CN" else region.name_en)
