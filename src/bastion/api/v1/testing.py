"""Rounds, sampling sites, labs and scans (the live sampling API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from bastion.api import scanpath
from bastion.api.deps import CurrentPrincipal, SessionDep
from bastion.core.auth import Perm
from bastion.core.errors import TooLarge
from bastion.core.text import Line
from bastion.testing import recorders, site_load, sites
from bastion.testing import service as testing_service
from bastion.testing.schemas import (
    LabCreate,
    LabPage,
    LabRead,
    LabUpdate,
    RecorderRead,
    RecordersIn,
    RoundCreate,
    RoundRead,
    ScanBatchIn,
    ScanReport,
    SiteCreate,
    SitePage,
    SiteRead,
    SiteUpdate,
)

router = APIRouter(tags=["testing"])


#: A round's or a site's code in the path: one line, no control character.
Ref = Annotated[Line, Path()]
#: List filters and pages (a NUL never reaches SQL).
Region = Annotated[Line | None, Query(description="only this region's subtree")]
Active = Annotated[bool | None, Query(description="only active (true) or inactive (false)")]
Offset = Annotated[int, Query(ge=0, le=100_000)]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.post("/rounds", response_model=RoundRead, status_code=201)
def create_round(body: RoundCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.create_round(db_session=session, principal=principal, data=body)


@router.get("/rounds", response_model=list[RoundRead])
def list_rounds(session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.list_rounds(db_session=session, principal=principal)


@router.get("/rounds/{ref}", response_model=RoundRead)
def read_round(ref: Ref, session: SessionDep, principal: CurrentPrincipal) -> object:
    principal.require(Perm.testing_read)
    return testing_service.get_round(db_session=session, principal=principal, ref=ref)


@router.post("/rounds/{ref}/close", response_model=RoundRead)
def close_round(ref: Ref, session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.close_round(db_session=session, principal=principal, ref=ref)


# The service's dataclasses are the answer's schema: no second copy of their fields here.
@router.get("/rounds/{ref}/site-load", response_model=site_load.RoundSiteLoad)
def read_site_load(
    ref: Ref, session: SessionDep, principal: CurrentPrincipal, region: Region = None
) -> site_load.RoundSiteLoad:
    """Per site and local hour: the round's scans against the site's capacity per hour, the
    hours over it, and the scans recorded outside the site's opening hours."""
    load = site_load.site_load(db_session=session, principal=principal, ref=ref, region_code=region)
    return load


@router.post("/sites", response_model=SiteRead, status_code=201)
def create_site(body: SiteCreate, session: SessionDep, principal: CurrentPrincipal) -> SiteRead:
    site = testing_service.create_site(db_session=session, principal=principal, data=body)
    return sites.to_read(session, site)


@router.get("/sites", response_model=SitePage)
def list_sites(
    session: SessionDep,
    principal: CurrentPrincipal,
    region: Region = None,
    active: Active = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> SitePage:
    rows, total = sites.list_sites(
        db_session=session,
        principal=principal,
        region_code=region,
        active=active,
        offset=offset,
        limit=limit,
    )
    return SitePage(items=sites.to_reads(session, rows), total=total, offset=offset, limit=limit)


@router.get("/sites/{code}", response_model=SiteRead)
def read_site(code: Ref, session: SessionDep, principal: CurrentPrincipal) -> SiteRead:
    principal.require(Perm.testing_read)
    site = testing_service.get_site(db_session=session, principal=principal, code=code)
    return sites.to_read(session, site)


@router.patch("/sites/{code}", response_model=SiteRead)
def update_site(
    code: Ref, body: SiteUpdate, session: SessionDep, principal: CurrentPrincipal
) -> SiteRead:
    site = sites.update_site(db_session=session, principal=principal, code=code, data=body)
    return sites.to_read(session, site)


@router.get("/sites/{code}/recorders", response_model=list[RecorderRead])
def list_recorders(code: Ref, session: SessionDep, principal: CurrentPrincipal) -> object:
    return recorders.list_recorders(db_session=session, principal=principal, code=code)


@router.put("/sites/{code}/recorders", response_model=list[RecorderRead])
def set_recorders(
    code: Ref, body: RecordersIn, session: SessionDep, principal: CurrentPrincipal
) -> object:
    """Bind exactly these users to the site (an empty list unbinds everyone). A user bound to
    one or more sites may send scans for those sites only."""
    return recorders.set_recorders(
        db_session=session, principal=principal, code=code, usernames=body.usernames
    )


@router.post("/labs", response_model=LabRead, status_code=201)
def create_lab(body: LabCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.create_lab(db_session=session, principal=principal, data=body)


@router.get("/labs", response_model=LabPage)
def list_labs(
    session: SessionDep,
    principal: CurrentPrincipal,
    region: Region = None,
    active: Active = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> LabPage:
    rows, total = testing_service.list_labs(
        db_session=session,
        principal=principal,
        region_code=region,
        active=active,
        offset=offset,
        limit=limit,
    )
    return LabPage(
        items=[LabRead.model_validate(lab) for lab in rows],
        total=total,
        offset=offset,
        limit=limit,
    )


@router.patch("/labs/{code}", response_model=LabRead)
def update_lab(
    code: Ref, body: LabUpdate, session: SessionDep, principal: CurrentPrincipal
) -> object:
    return testing_service.update_lab(db_session=session, principal=principal, code=code, data=body)


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its ``$defs`` written in place (a schema inside an operation
    cannot refer to definitions of its own)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


@router.post(
    "/scans/batches",
    response_model=ScanReport,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_schema(ScanBatchIn)}},
        }
    },
)
async def post_scan_batch(request: Request) -> Response:
    """Save a scanner's groups (tube + people in order). Acknowledged only after the commit;
    re-sending the same ``key`` returns the first answer and changes nothing. Scans made offline
    keep their original times. Served by ``api/scanpath.py`` (the app's middleware answers this
    path before routing; this route answers alike where that middleware is not installed)."""
    body = await request.body()
    if len(body) > scanpath.MAX_BODY:
        raise TooLarge()
    status, headers, payload = await scanpath.handle(request.app.state, request.scope, body)
    return Response(payload, status_code=status, headers=headers)
