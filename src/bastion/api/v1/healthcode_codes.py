"""Signed health codes over HTTP: the resident's code and QR image, staff and checkpoint
lookups, the public key set and key rotation.

The three hot endpoints (``/codes/mine``, ``/codes/lookup``, ``/codes/verify``) are plain ASGI
handlers from :mod:`bastion.healthcode.lookup_asgi`; :func:`install` mounts them (as routes, and
in front of the router through ``FastPaths``) together with this module's FastAPI routes.
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Literal

import segno
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.routing import Route

from bastion.api.deps import CurrentPrincipal, SessionDep
from bastion.core.auth import Perm
from bastion.core.errors import NotFound
from bastion.healthcode import keys
from bastion.healthcode.lookup import CodeLookup
from bastion.healthcode.lookup_asgi import ENDPOINTS, FastPaths

router = APIRouter(prefix="/codes", tags=["healthcode"])


@router.get(
    "/mine/qr",
    responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}},
    response_class=Response,
)
def my_qr(
    request: Request,
    principal: CurrentPrincipal,
    format: Annotated[Literal["svg", "png"], Query()] = "svg",
    scale: Annotated[int, Query(ge=1, le=20)] = 6,
) -> Response:
    """The caller's own code as a QR image (the same payload ``/codes/mine`` returns)."""
    principal.require(Perm.self_read)
    lookup: CodeLookup = request.app.state.codes
    entry = lookup.entry(person_id=principal.person_id) if principal.person_id else None
    if entry is None:
        raise NotFound("code.no_person")
    lookup.ensure_signer()
    code = lookup.signed(entry)
    qr = segno.make(code.payload, error="m")
    buffer = io.BytesIO()
    colour = {"green": "#0a7d32", "yellow": "#b58900", "red": "#c0262d"}[entry.colour]
    qr.save(buffer, kind=format, scale=scale, dark=colour, border=2)
    media = "image/svg+xml" if format == "svg" else "image/png"
    return Response(buffer.getvalue(), media_type=media, headers={"Cache-Control": "no-store"})


@router.get("/keys")
def public_keys(session: SessionDep) -> JSONResponse:
    """The public keys checkpoints verify codes with (JWKS-like; no private material)."""
    document = keys.jwks(db_session=session)
    return JSONResponse(document, headers={"Cache-Control": "public, max-age=60"})


class RotatedKey(BaseModel):
    kid: str
    activated_at: datetime
    superseded: list[str]


@router.post("/keys/rotate", response_model=RotatedKey, status_code=201)
def rotate_key(request: Request, session: SessionDep, principal: CurrentPrincipal) -> RotatedKey:
    """Activate a new signing key; the old one verifies until its grace period ends."""
    before = keys.verifying(db_session=session)
    row = keys.rotate(db_session=session, principal=principal)
    request.app.state.codes.keys_changed()
    assert row.activated_at is not None
    return RotatedKey(
        kid=row.kid,
        activated_at=row.activated_at,
        superseded=[r.kid for r in before if r.superseded_at is not None and r.kid != row.kid],
    )


def install(app: FastAPI) -> None:
    """Mount the code endpoints: the lookup cache, the hot paths, this module's routes."""
    app.state.codes = CodeLookup(app.state.session_factory)
    for path, endpoint in ENDPOINTS.items():
        app.router.routes.append(Route(path, endpoint, methods=[endpoint.method]))
    app.add_middleware(FastPaths)
    app.include_router(router, prefix="/api/v1")
