"""The application factory: JSON API under /api/v1, web pages at /, static assets local."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from sqlalchemy.orm import Session, sessionmaker

from bastion import __version__
from bastion.api import errors
from bastion.api.principals import PrincipalCache
from bastion.api.scanpath import ScanFastPath
from bastion.api.scanwriter import ScanWriter
from bastion.api.v1 import (
    auth,
    bulletin,
    coverage,
    healthcode,
    healthcode_codes,
    isolation,
    pools,
    protocols,
    regions,
    registry,
    testing,
    tracing,
    transport,
    users,
)
from bastion.core.db import session_factory


def create_app(factory: sessionmaker[Session] | None = None) -> FastAPI:
    """Build the app. ``factory`` makes the sessions requests use (tests pass their own)."""
    app = FastAPI(
        title="Bastion 众志成城",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.session_factory = factory or session_factory()
    app.state.principals = PrincipalCache()
    app.state.scan_writer = ScanWriter(app.state.session_factory)
    errors.install(app)
    # The live sampling API's hot path, answered before routing (api/scanpath.py).
    app.add_middleware(ScanFastPath)

    v1 = APIRouter(prefix="/api/v1")

    @v1.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    v1.include_router(auth.router)
    v1.include_router(regions.router)
    v1.include_router(registry.router)
    v1.include_router(users.router)
    v1.include_router(testing.router)
    v1.include_router(transport.router)
    v1.include_router(pools.router)
    v1.include_router(coverage.router)
    v1.include_router(isolation.router)
    v1.include_router(tracing.router)
    v1.include_router(protocols.router)
    v1.include_router(bulletin.router)
    v1.include_router(healthcode.router)
    app.include_router(v1)
    healthcode_codes.install(app)

    from bastion.web import routes as web_routes

    web_routes.install(app)
    from bastion.web import checkpoint  # health-code checkpoint page (public)

    app.include_router(checkpoint.router)
    return app
