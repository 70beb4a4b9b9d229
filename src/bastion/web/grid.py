"""The grid worker's page: my grid's residents (masked), who the round requires and has not
sampled yet (应检未检), retests due, people isolated or monitored at home (with their test days)
and the special groups to look after — the registry, coverage, pools and isolation services, as
the API's ``/persons``, ``/rounds/{ref}/not-tested``, ``/retests`` and ``/isolation/placements``
call them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.i18n import Language
from bastion.isolation import service as isolation_service
from bastion.isolation import views as isolation_views
from bastion.regions import service as region_service
from bastion.regions.models import Region
from bastion.registry import service as registry_service
from bastion.registry.enums import SpecialGroup
from bastion.testing import coverage, pools
from bastion.testing import service as testing_service
from bastion.testing.coverage.views import NOT_TESTED_MIN_CODE
from bastion.web.common import Viewer, WebRoute, render
from bastion.web.views import region_name

router = APIRouter(include_in_schema=False, route_class=WebRoute)

PAGE = 100
MAX_GRIDS = 300
#: Grids and communities: the door-knocking lists are never wider.
NARROWEST = NOT_TESTED_MIN_CODE


def grids_for(session: Session, principal: Principal, lang: Language) -> list[dict[str, str]]:
    """The grids inside the user's region to choose from (a read-only view of the tree)."""
    principal.require(Perm.regions_read)
    rows: Sequence[Region] = (
        session.execute(
            select(Region)
            .where(Region.level == "grid", principal.scope.clause(Region.code))
            .order_by(Region.code)
            .limit(MAX_GRIDS)
        )
        .scalars()
        .all()
    )
    return [{"code": r.code, "name": region_name(r, lang)} for r in rows]


def grid_view(
    session: Session,
    principal: Principal,
    lang: Language,
    *,
    region_code: str | None,
    round_ref: str | None,
) -> dict[str, Any]:
    principal.require(Perm.registry_read)
    principal.require(Perm.testing_read)
    code = region_code or (
        principal.region_code if len(principal.region_code) >= NARROWEST else None
    )
    context: dict[str, Any] = {
        "grids": grids_for(session, principal, lang),
        "region": None,
        "rounds": testing_service.list_rounds(db_session=session, principal=principal),
    }
    if code is None:
        return context
    region = region_service.read(db_session=session, principal=principal, code=code)
    people, people_total = registry_service.search(
        db_session=session, principal=principal, region_code=code, limit=PAGE
    )
    today = clock.today()
    context.update(
        region=region,
        region_label=region_name(region, lang),
        people=[registry_service.to_read(p, today=today) for p in people],
        people_total=people_total,
    )
    rounds = context["rounds"]
    if rounds and len(code) >= NARROWEST:
        ref = round_ref or str(rounds[0].id)
        missing, missing_total = coverage.not_tested(
            db_session=session, principal=principal, ref=ref, region_code=code, limit=PAGE
        )
        context.update(
            round=testing_service.get_round(db_session=session, principal=principal, ref=ref),
            not_tested=[registry_service.to_read(p, today=today) for p in missing],
            not_tested_total=missing_total,
        )
    tasks, tasks_total = pools.list_tasks(
        db_session=session, principal=principal, region_code=code, status="open", limit=PAGE
    )
    context.update(
        tasks=[
            {"task": v.task, "person": registry_service.to_read(v.person), "overdue": v.overdue}
            for v in tasks
        ],
        tasks_total=tasks_total,
    )
    context.update(special_groups(session, principal, code, today))
    if principal.can(Perm.isolation_read):
        context.update(home_isolation(session, principal, lang, code))
    return context


#: The settings a grid worker looks after: home isolation and home health monitoring.
HOME_SETTINGS = ("home", "home_monitoring")
SETTING_NAMES = {
    "home": "web.iso_setting_home",
    "home_monitoring": "web.iso_setting_home_monitoring",
}


def home_isolation(
    session: Session, principal: Principal, lang: Language, code: str
) -> dict[str, Any]:
    """People of the grid isolated or monitored at home now, with their test days."""
    rows: list[Any] = []
    total = 0
    for setting in HOME_SETTINGS:
        found, n = isolation_service.list_placements(
            db_session=session,
            principal=principal,
            region_code=code,
            status="active",
            setting=setting,
            limit=PAGE,
        )
        rows.extend(found)
        total += n
    views = isolation_views.placements(session, principal, rows, detail=True, lang=lang)
    today = clock.today()
    home = []
    for v in views:
        pending = [test for test in v.tests if test.result is None]
        home.append(
            {
                "name": v.person_name,
                "id_number": v.person_id_number,
                "setting": SETTING_NAMES[v.setting],
                "starts_on": v.starts_on,
                "planned_end_on": v.planned_end_on,
                "next_test": pending[0].due_on if pending else None,
                "test_due": bool(pending) and pending[0].due_on <= today,
            }
        )
    return {"home": home, "home_total": total}


def special_groups(session: Session, principal: Principal, code: str, today: Any) -> dict[str, Any]:
    """Residents of the grid in each special group (独居, 卧床, 残疾, 低保, 退役军人)."""
    groups = []
    for group in SpecialGroup:
        name = group.name or str(group.value)
        people, total = registry_service.search(
            db_session=session,
            principal=principal,
            region_code=code,
            special_group=name,
            limit=PAGE,
        )
        if total:
            groups.append(
                {
                    "key": f"web.group_{name}",
                    "people": [registry_service.to_read(p, today=today) for p in people],
                    "total": total,
                }
            )
    return {"groups": groups}


@router.get("/grid", response_class=HTMLResponse)
def grid_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    region: Annotated[str | None, Query(max_length=15)] = None,
    round_ref: Annotated[str | None, Query(alias="round", max_length=40)] = None,
) -> Response:
    lang = request_language(request)
    context = grid_view(session, principal, lang, region_code=region, round_ref=round_ref)
    return render(request, "grid.html", context)
