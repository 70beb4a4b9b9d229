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
