"""The registry page: people in a region, by name prefix or special group, masked; one person
unmasked on request (a POST with the CSRF token: it needs personal.unmask and is audited every
time) — the registry service, as ``/api/v1/persons`` calls it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.core.auth import Perm, Principal
from bastion.registry import service as registry_service
from bastion.registry.enums import SpecialGroup
from bastion.web.common import Viewer, WebRoute, check_csrf, render

router = APIRouter(include_in_schema=False, route_class=WebRoute)

PAGE = 50


def people_view(
    session: Session,
    principal: Principal,
    *,
    region_code: str | None,
    name: str | None,
    group: str | None,
    offset: int,
) -> dict[str, Any]:
    principal.require(Perm.registry_read)
    region = region_code or principal.region_code
    rows, total = registry_service.search(
        db_session=session,
        principal=principal,
        region_code=region,
        name=name or None,
        special_group=group or None,
        offset=offset,
        limit=PAGE,
    )
    return {
        "people": [registry_service.to_read(p) for p in rows],
        "total": total,
        "offset": offset,
        "page": PAGE,
        "query": {"region": region, "name": name or "", "group": group or ""},
        "groups": [g.name for g in SpecialGroup],
        "can_unmask": principal.can(Perm.personal_unmask),
    }


@router.get("/people", response_class=HTMLResponse)
def people_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    region: Annotated[str | None, Query(max_length=15)] = None,
    name: Annotated[str | None, Query(max_length=50)] = None,
    group: Annotated[str | None, Query(max_length=20)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    context = people_view(
        session, principal, region_code=region, name=name, group=group, offset=offset
    )
    return render(request, "people.html", context)


@router.post("/people/{person_id}/unmask", response_class=HTMLResponse)
def unmask(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    person_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    csrf: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """One person in clear, for this answer only (never cached: ``no-store``)."""
    check_csrf(request, csrf)
    person = registry_service.read(
        db_session=session, principal=principal, person_id=person_id, unmask=True
    )
    return render(request, "person_page.html", {"person": person})
