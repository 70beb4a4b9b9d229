"""The sampling site page (sampler, phone-sized): scan a tube, then its people, save the group.

The page works through a network outage: its script (``static/sampling.js``) keeps every saved
group in the browser (localStorage) with its original scan time, and sends the queue as batches
with a key the browser made, to ``POST /sampling/batches``. That route takes the session cookie
and the CSRF token in a header, and hands the batch to the code that answers
``POST /api/v1/scans/batches`` (:mod:`bastion.api.scanpath` and its group-commit writer), so a
batch re-sent after a lost answer is replayed, never counted twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.api import scanpath
from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import TooLarge
from bastion.testing import service as testing_service
from bastion.testing.models import Round, Site
from bastion.web.common import (
    SESSION_COOKIE,
    ScriptViewer,
    Viewer,
    WebRoute,
    check_csrf_header,
    render,
)

router = APIRouter(include_in_schema=False, route_class=WebRoute)

MAX_SITES = 200


def sites_for(session: Session, principal: Principal) -> Sequence[Site]:
    """Active sampling sites inside the user's region (a read-only view of the site table)."""
    principal.require(Perm.testing_read)
    return (
        session.execute(
            select(Site)
            .where(Site.active, principal.scope.clause(Site.region_code))
            .order_by(Site.code)
            .limit(MAX_SITES)
        )
        .scalars()
        .all()
    )


def sampling_view(
    session: Session, principal: Principal, *, site_code: str | None, round_ref: str | None
) -> dict[str, Any]:
    """The rounds open for sampling, the user's sites, the chosen pair and its pool size."""
    principal.require(Perm.scans_write)
    rounds: list[Round] = [
        r
        for r in testing_service.list_rounds(db_session=session, principal=principal)
        if r.status == "open"
    ]
    sites = sites_for(session, principal)
    site = (
        testing_service.get_site(db_session=session, principal=principal, code=site_code)
        if site_code
        else (sites[0] if len(sites) == 1 else None)
    )
    rnd = (
        testing_service.get_round(db_session=session, principal=principal, ref=round_ref)
        if round_ref
        else (rounds[0] if rounds else None)
    )
    capacity = None
    if site is not None and rnd is not None:
        capacity = testing_service.planned_capacity(
            db_session=session, rnd=rnd, region_code=site.region_code, on=clock.today()
        )
    return {"rounds": rounds, "sites": sites, "site": site, "round": rnd, "capacity": capacity}


@router.get("/sampling", response_class=HTMLResponse)
def sampling_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    site: Annotated[str | None, Query(max_length=64)] = None,
    round_ref: Annotated[str | None, Query(alias="round", max_length=40)] = None,
) -> Response:
    context = sampling_view(session, principal, site_code=site, round_ref=round_ref)
    return render(request, "sampling.html", context)


@router.post("/sampling/batches")
async def send_batch(request: Request, principal: ScriptViewer) -> Response:
    """One queued batch from the page, answered by the API's own scan path
    (:func:`bastion.api.scanpath.handle`: validation, the group-commit writer, replayed answers,
    429/503 with Retry-After). The page authenticates with its session cookie — the same signed
    token the API takes as a bearer token — plus the CSRF header; ``principal`` (resolved first)
    turns a lost session into a 401 the page understands."""
    check_csrf_header(request)
    principal.require(Perm.scans_write)
    body = await request.body()
    if len(body) > scanpath.MAX_BODY:
        raise TooLarge()
    token = request.cookies[SESSION_COOKIE].encode("latin-1")
    scope = dict(request.scope)
    scope["headers"] = [
        (k, v) for k, v in request.scope["headers"] if k not in (b"authorization", b"cookie")
    ] + [(b"authorization", b"Bearer " + token)]
    lang = request_language(request)
    scope["query_string"] = f"lang={lang}".encode()
    status, headers, payload = await scanpath.handle(request.app.state, scope, body)
    return Response(payload, status_code=status, headers=headers)
