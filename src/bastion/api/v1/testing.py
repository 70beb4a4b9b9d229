"""Rounds, sampling sites, labs and scans (the live sampling API)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel

from bastion.api import scanpath
from bastion.api.deps import CurrentPrincipal, SessionDep
from bastion.core.auth import Perm
from bastion.core.errors import TooLarge
from bastion.core.text import Line
from bastion.testing import service as testing_service
from bastion.testing.schemas import (
    LabCreate,
    LabRead,
    RoundCreate,
    RoundRead,
    ScanBatchIn,
    ScanReport,
    SiteCreate,
    SiteRead,
)

router = APIRouter(tags=["testing"])

#: A round's or a site's code in the path: one line, no control character.
Ref = Annotated[Line, Path()]


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


@router.post("/sites", response_model=SiteRead, status_code=201)
def create_site(body: SiteCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.create_site(db_session=session, principal=principal, data=body)


@router.get("/sites/{code}", response_model=SiteRead)
def read_site(code: Ref, session: SessionDep, principal: CurrentPrincipal) -> object:
    principal.require(Perm.testing_read)
    return testing_service.get_site(db_session=session, principal=principal, code=code)


@router.post("/labs", response_model=LabRead, status_code=201)
def create_lab(body: LabCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.create_lab(db_session=session, principal=principal, data=body)


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
