"""Permission-matrix entries of the sampling-site and lab administration API (lists, changes,
recorder bindings) and of a round's site load."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bastion.core.auth import Perm, system_principal
from bastion.testing import service as testing_service
from bastion.testing.schemas import LabCreate
from tests.integration.api.matrix import (
    CITY,
    Endpoint,
    Req,
    _found,
    _marked,
    _n,
    _round,
    _site,
)


def _lab_code(db: Session, where: str) -> str:
    lab = testing_service.create_lab(
        db_session=db,
        principal=system_principal(),
        data=LabCreate(
            code=f"L-A{_n()}", name="实验室", region_code=CITY[where], daily_capacity=1000
        ),
    )
    return lab.code


def _listed_site(db: Session, where: str) -> Req:
    return _marked(_site(db, where).code, where, Req("GET", "/api/v1/sites"))


def _listed_lab(db: Session, where: str) -> Req:
    return _marked(_lab_code(db, where), where, Req("GET", "/api/v1/labs"))


ENTRIES: list[Endpoint] = [
    Endpoint(
        "GET",
        "/api/v1/sites",
        Perm.testing_read,
        lambda db, r, w: _listed_site(db, w),
        outside=200,
        check=_found("code", page=True),
    ),
    Endpoint(
        "PATCH",
        "/api/v1/sites/{code}",
        Perm.sites_manage,
        lambda db, r, w: Req(
            "PATCH", f"/api/v1/sites/{_site(db, w).code}", json={"name": "新名", "teams": 2}
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/sites/{code}/recorders",
        Perm.sites_manage,
        lambda db, r, w: Req("GET", f"/api/v1/sites/{_site(db, w).code}/recorders"),
        outside=404,
    ),
    Endpoint(
        "PUT",
        "/api/v1/sites/{code}/recorders",
        Perm.sites_manage,
        lambda db, r, w: Req(
            "PUT",
            f"/api/v1/sites/{_site(db, w).code}/recorders",
            json={"usernames": ["sampler_in"]},
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/labs",
        Perm.testing_read,
        lambda db, r, w: _listed_lab(db, w),
        outside=200,
        check=_found("code", page=True),
    ),
    Endpoint(
        "PATCH",
        "/api/v1/labs/{code}",
        Perm.labs_manage,
        lambda db, r, w: Req(
            "PATCH", f"/api/v1/labs/{_lab_code(db, w)}", json={"daily_capacity": 2000}
        ),
    ),
    Endpoint(
        "GET",
        "/api/v1/rounds/{ref}/site-load",
        Perm.testing_read,
        lambda db, r, w: Req("GET", f"/api/v1/rounds/{_round(db, w).code}/site-load"),
        outside=404,
    ),
]
