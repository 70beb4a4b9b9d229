"""Every API endpoint × every role × a target inside or outside the caller's region.

The expected status is derived from ``core.auth.ROLE_PERMISSIONS``, never written per role: a
role without the endpoint's permission(s) gets 403, a role with them gets the endpoint's success
status for a target inside its region (Changchun) and the endpoint's "outside" answer for a
target in Jilin City. Unauthenticated calls get 401 everywhere but the public endpoints.

A new endpoint under /api/v1 fails ``test_every_endpoint_is_in_the_matrix`` until it has an
``Endpoint`` entry in ``MATRIX``: its permission(s), a builder that places what the request needs
inside or outside the caller's region (through the services) and returns the request, the
success status, and what a caller with the permission gets for a target outside its region.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from bastion.api.app import create_app
from bastion.api.principals import PrincipalCache
from bastion.core import clock
from bastion.core.auth import ROLE_PERMISSIONS, ROLES, Perm, system_principal
from bastion.registry.models import Person
from bastion.testing import antigen, results, transport
from bastion.testing import service as testing_service
from bastion.testing.models import Lab, ResultConflict, RetestTask, Round, Site, Tube
from bastion.testing.schemas import LabCreate, RoundCreate
from tests.integration.api.matrix import (
    ANY_USER,
    CITY,
    COMMUNITY,
    DISTRICT,
    GRID,
    MARK,
    NOW,
    PUBLIC,
    START,
    Endpoint,
    Req,
    _found,
    _import,
    _import_check,
    _link,
    _marked,
    _n,
    _only_mark,
    _person,
    _round,
    _scan,
    _scan_check,
    _site,
    _zone,
)
from tests.integration.registry.imports import csv_bytes
from tests.integration.registry.people import new_id_number, payload
from tests.support import pool_factories
from tests.support.world import PASSWORD

# Transport, results and labs. -------------------------------------------------------------

#: A round over the whole province: every caller sees it, so the site alone is in or out.
PROVINCE = "220000"
TESTED_AT = START + timedelta(hours=4)


def _lab(db: Session, where: str) -> Lab:
    return testing_service.create_lab(
        db_session=db,
        principal=system_principal(),
        data=LabCreate(
            code=f"L-M{_n()}", name="实验室", region_code=CITY[where], daily_capacity=1000
        ),
    )


def _sampled(
    db: Session, where: str, *, people: int = 1, region: str | None = None
) -> tuple[Round, Site, Tube]:
    """A tube of ``people`` sampled at a site in ``where`` (round of ``region``, else the city)."""
    rnd = testing_service.create_round(
        db_session=db,
        principal=system_principal(),
        data=RoundCreate(
            code=f"R-M{_n()}", name="matrix", region_code=region or CITY[where], starts_at=START
        ),
    )
    site = _site(db, where)
    members = [_person(db, where) for _ in range(people)]
    tube = pool_factories.tube(
        db, rnd, site, f"TM{_n():08d}", members, at=START + timedelta(hours=1)
    )
    return rnd, site, tube


def _pack(db: Session, rnd: Round, site: Site, tube: Tube) -> str:
    view = transport.pack_box(
        db_session=db,
        principal=system_principal(),
        code=f"BOX-M{_n()}",
        round_ref=rnd.code,
        site_code=site.code,
        tubes=[tube.barcode],
        declared_tubes=1,
        at=START + timedelta(hours=2),
    )
    return view.box.code


def _box(db: Session, where: str) -> str:
    """The code of a box packed at a site in ``where``."""
    return _pack(db, *_sampled(db, where))


def _in_lab(db: Session, where: str) -> tuple[Lab, Tube]:
    """A tube sampled in ``where``, boxed and received by a lab there."""
    rnd, site, tube = _sampled(db, where)
    lab = _lab(db, where)
    transport.receive_box(
        db_session=db,
        principal=system_principal(),
        code=_pack(db, rnd, site, tube),
        lab_code=lab.code,
        tubes_counted=1,
        at=START + timedelta(hours=3),
    )
    return lab, tube


def _upload(db: Session, lab: Lab, tube: Tube, result: str) -> results.ResultReport:
    return results.upload_results(
        db_session=db,
        principal=system_principal(),
        rows=[
            results.RawResult(
                row=1,
                lab=lab.code,
                tube=tube.barcode,
                result=result,
                tested_at=TESTED_AT,
                ct_orf1ab=30.5 if result == "positive" else None,
            )
        ],
    )


def _conflict(db: Session, where: str) -> int:
    """The id of an open result conflict on a tube sampled and tested in ``where``."""
    lab, tube = _in_lab(db, where)
    assert _upload(db, lab, tube, "negative").accepted == 1
    assert _upload(db, lab, tube, "positive").conflicts == 1
    return db.execute(
        select(ResultConflict.id).where(ResultConflict.tube_id == tube.id)
    ).scalar_one()


def _pack_req(db: Session, role: str, where: str) -> Req:
    rnd, site, tube = _sampled(db, where, region=PROVINCE)
    body = {
        "code": f"BOX-N{_n()}",
        "round": rnd.code,
        "site": site.code,
        "tubes": [tube.barcode],
        "declared_tubes": 1,
    }
    return Req("POST", "/api/v1/boxes", json=body)


def _receive_req(db: Session, role: str, where: str) -> Req:
    code, lab = _box(db, where), _lab(db, where)
    body = {"lab": lab.code, "tubes_counted": 1}
    return Req("POST", f"/api/v1/boxes/{code}/receive", json=body)


def _result_row(db: Session, where: str) -> dict[str, str]:
    lab, tube = _in_lab(db, where)
    return {
        "lab": lab.code,
        "tube": tube.barcode,
        "result": "negative",
        "tested_at": TESTED_AT.isoformat(),
    }


def _results_file(db: Session, role: str, where: str) -> Req:
    csv = csv_bytes([_result_row(db, where)], columns=["lab", "tube", "result", "tested_at"])
    return Req("POST", "/api/v1/results/file", files={"file": ("r.csv", csv, "text/csv")})


def _results_check(field_name: str) -> Callable[[Any, str], None]:
    """Results from a lab inside land; a lab outside has each of its rows refused."""

    def check(response: Any, where: str) -> None:
        report = response.json()
        if where == "in":
            assert (report["accepted"], report["refused"]) == (1, 0), report
        else:
            assert (report["accepted"], report["refused"]) == (0, 1), report
            problems = [(p["field"], p["code"]) for p in report["problems"]]
            assert problems == [(field_name, "error.region_outside")], report

    return check


# Positive pools, retests, antigen self-tests. ----------------------------------------------


def _hold(db: Session, where: str) -> int:
    """The id of the hold on a positive two-person pool sampled and tested in ``where``."""
    _, _, tube = _sampled(db, where, people=2)
    summary = pool_factories.result_and_process(
        db, tube, "positive", at=TESTED_AT, lab=_lab(db, where)
    )
    (hold_id,) = summary.hold_ids
    return hold_id


def _retest(db: Session, where: str) -> int:
    """The id of a retest task (a positive pool's) owed by someone in ``where``."""
    hold_id = _hold(db, where)
    first = select(RetestTask.id).where(RetestTask.hold_id == hold_id).order_by(RetestTask.id)
    return db.execute(first.limit(1)).scalar_one()


def _antigen(db: Session, person: Person, result: str = "positive") -> antigen.AntigenOutcome:
    return antigen.report_antigen(
        db_session=db,
        principal=system_principal(),
        data=antigen.AntigenReportIn(
            person_id=person.id, result=result, tested_at=START + timedelta(hours=5)
        ),
    )


def _my_retests(db: Session, role: str, where: str) -> Req:
    """The caller's own task (the caller living in ``where``) and a neighbour's. Every role's
    account is linked to a person here: one without self.read is refused all the same."""
    own, neighbour = _person(db, where), _person(db, where)
    _link(db, role, own)
    tasks = [_antigen(db, p).task for p in (own, neighbour)]
    assert tasks[0] is not None
    return _marked(tasks[0].id, where, Req("GET", "/api/v1/retests/mine"))


def _my_antigen_reports(db: Session, role: str, where: str) -> Req:
    """The caller's own report (the caller living in ``where``) and a neighbour's."""
    own, neighbour = _person(db, where), _person(db, where)
    _link(db, role, own)
    reports = [_antigen(db, p, "negative").report for p in (own, neighbour)]
    return _marked(reports[0].id, where, Req("GET", "/api/v1/antigen-reports/mine"))


def _report_antigen(db: Session, role: str, where: str) -> Req:
    """A positive self-test of someone in ``where``. A resident names themselves inside and a
    stranger outside (a resident may report for no one else); staff name the person."""
    target = _person(db, where)
    if role == "resident":
        _link(db, role, target if where == "in" else _person(db, "in"))
    body = {
        "person_id": target.id,
        "result": "positive",
        "tested_at": (START + timedelta(hours=5)).isoformat(),
    }
    return _marked(target.id, where, Req("POST", "/api/v1/antigen-reports", json=body))


def _reported(response: Any, where: str) -> None:
    report = response.json()
    assert report["person_id"] == MARK[where], report
    assert report["created"], report
    assert report["task"]["reason"] == "antigen", report


MATRIX: list[Endpoint] = [
    Endpoint("GET", "/api/v1/health", PUBLIC, lambda db, r, w: Req("GET", "/api/v1/health")),
    Endpoint(
        "GET", "/api/v1/openapi.json", PUBLIC, lambda db, r, w: Req("GET", "/api/v1/openapi.json")
    ),
    Endpoint("GET", "/api/v1/docs", PUBLIC, lambda db, r, w: Req("GET", "/api/v1/docs")),
    Endpoint(
        "POST",
        "/api/v1/auth/token",
        PUBLIC,
        lambda db, r, w: Req(
            "POST", "/api/v1/auth/token", data={"username": f"{r}_in", "password": PASSWORD}
        ),
    ),
    Endpoint("GET", "/api/v1/auth/me", ANY_USER, lambda db, r, w: Req("GET", "/api/v1/auth/me")),
    Endpoint(
        "POST",
        "/api/v1/auth/logout",
        ANY_USER,
        lambda db, r, w: Req("POST", "/api/v1/auth/logout"),
        ok=204,
    ),
    Endpoint(
        "GET",
        "/api/v1/regions/{code}",
        Perm.regions_read,
        lambda db, r, w: Req("GET", f"/api/v1/regions/{DISTRICT[w]}"),
    ),
    Endpoint(
        "GET",
        "/api/v1/regions/{code}/children",
        Perm.regions_read,
        lambda db, r, w: Req("GET", f"/api/v1/regions/{CITY[w]}/children"),
    ),
    Endpoint(
        "GET",
        "/api/v1/zones",
        Perm.regions_read,
        lambda db, r, w: _marked(
            _zone(db, w).id, w, Req("GET", "/api/v1/zones", params={"on": "2022-03-25"})
        ),
        outside=200,
        check=_found("id"),
    ),
    Endpoint(
        "POST",
        "/api/v1/zones",
        Perm.zones_write,
        lambda db, r, w: Req(
            "POST",
            "/api/v1/zones",
            json={
                "region_code": GRID[w],
                "kind": "lockdown",
                "starts_on": "2022-03-25",
                "reason": "matrix",
            },
        ),
        ok=201,
    ),
    Endpoint(
        "POST",
        "/api/v1/zones/{zone_id}/lift",
        Perm.zones_write,
        lambda db, r, w: Req(
            "POST", f"/api/v1/zones/{_zone(db, w).id}/lift", json={"ends_on": "2022-03-30"}
        ),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/persons",
        Perm.registry_write,
        lambda db, r, w: Req("POST", "/api/v1/persons", json=payload(region_code=GRID[w])),
        ok=201,
    ),
    Endpoint(
        "GET",
        "/api/v1/persons",
        Perm.registry_read,
        lambda db, r, w: Req("GET", "/api/v1/persons", params={"region": CITY[w]}),
    ),
    Endpoint(
        "POST",
        "/api/v1/persons/lookup",
        Perm.registry_read,
        lambda db, r, w: Req(
            "POST",
            "/api/v1/persons/lookup",
            json={"id_number": _mark_number(db, w)},
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/persons/{person_id}",
        Perm.registry_read,
        lambda db, r, w: Req("GET", f"/api/v1/persons/{_person(db, w).id}"),
        outside=404,
        # A resident may read only their own record: anyone else's is simply not found.
        instead={Perm.self_read: 404},
    ),
    Endpoint(
        "PATCH",
        "/api/v1/persons/{person_id}",
        Perm.registry_write,
        lambda db, r, w: Req(
            "PATCH", f"/api/v1/persons/{_person(db, w).id}", json={"address": "新地址"}
        ),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/persons/import",
        Perm.registry_import,
        _import,
        outside=200,
        check=_import_check,
    ),
    Endpoint(
        "GET",
        "/api/v1/persons/export/{region_code}.csv",
        Perm.registry_export,
        lambda db, r, w: Req("GET", f"/api/v1/persons/export/{CITY[w]}.csv"),
    ),
    Endpoint(
        "GET",
        "/api/v1/users",
        Perm.users_read,
        lambda db, r, w: _marked(f"analyst_{w}", w, Req("GET", "/api/v1/users")),
        outside=200,
        check=_found("username"),
    ),
    Endpoint(
        "POST",
        "/api/v1/users",
        Perm.users_manage,
        lambda db, r, w: Req(
            "POST",
            "/api/v1/users",
            json={
                "username": f"matrix.{_n()}",
                "password": "long-enough-1",
                "role": "sampler",
                "region_code": DISTRICT[w],
            },
        ),
        ok=201,
    ),
    Endpoint(
        "GET",
        "/api/v1/audit/verify",
        Perm.audit_read,
        lambda db, r, w: Req("GET", "/api/v1/audit/verify"),
        outside=200,
    ),
    Endpoint(
        "POST",
        "/api/v1/rounds",
        Perm.rounds_manage,
        lambda db, r, w: Req(
            "POST",
            "/api/v1/rounds",
            json={
                "code": f"R-N{_n()}",
                "name": "matrix",
                "region_code": CITY[w],
                "starts_at": START.isoformat(),
            },
        ),
        ok=201,
    ),
    Endpoint(
        "GET",
        "/api/v1/rounds",
        Perm.testing_read,
        lambda db, r, w: _marked(_round(db, w).code, w, Req("GET", "/api/v1/rounds")),
        outside=200,
        check=_found("code"),
    ),
    Endpoint(
        "GET",
        "/api/v1/rounds/{ref}",
        Perm.testing_read,
        lambda db, r, w: Req("GET", f"/api/v1/rounds/{_round(db, w).code}"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/rounds/{ref}/close",
        Perm.rounds_manage,
        lambda db, r, w: Req("POST", f"/api/v1/rounds/{_round(db, w).code}/close"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/sites",
        Perm.sites_manage,
        lambda db, r, w: Req(
            "POST",
            "/api/v1/sites",
            json={
                "code": f"S-N{_n()}",
                "name": "采样点",
                "region_code": COMMUNITY[w],
                "capacity_per_hour": 300,
                "grids": [GRID[w]],
            },
        ),
        ok=201,
    ),
    Endpoint(
        "GET",
        "/api/v1/sites/{code}",
        Perm.testing_read,
        lambda db, r, w: Req("GET", f"/api/v1/sites/{_site(db, w).code}"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/labs",
        Perm.labs_manage,
        lambda db, r, w: Req(
            "POST",
            "/api/v1/labs",
            json={
                "code": f"L-N{_n()}",
                "name": "实验室",
                "region_code": CITY[w],
                "daily_capacity": 1000,
            },
        ),
        ok=201,
    ),
    Endpoint(
        "POST",
        "/api/v1/scans/batches",
        Perm.scans_write,
        _scan,
        outside=200,
        check=_scan_check,
    ),
    Endpoint(
        "GET",
        "/api/v1/rounds/{ref}/coverage",
        Perm.testing_read,
        lambda db, r, w: Req("GET", f"/api/v1/rounds/{_round(db, w).code}/coverage"),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/rounds/{ref}/status",
        Perm.testing_read,
        lambda db, r, w: Req("GET", f"/api/v1/rounds/{_round(db, w).code}/status"),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/rounds/{ref}/not-tested",
        (Perm.testing_read, Perm.registry_read),
        lambda db, r, w: Req(
            "GET",
            f"/api/v1/rounds/{_round(db, w).code}/not-tested",
            params={"region": GRID[w]},
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/screening",
        Perm.testing_read,
        lambda db, r, w: Req(
            "GET", "/api/v1/screening", params={"region": CITY[w], "day": "2022-03-25"}
        ),
    ),
    Endpoint(
        "POST",
        "/api/v1/boxes",
        (Perm.transport_write, Perm.scans_write),
        _pack_req,
        ok=201,
    ),
    Endpoint(
        "POST",
        "/api/v1/boxes/{code}/pick-up",
        Perm.transport_write,
        lambda db, r, w: Req(
            "POST", f"/api/v1/boxes/{_box(db, w)}/pick-up", json={"tubes_counted": 1}
        ),
    ),
    Endpoint(
        "POST",
        "/api/v1/boxes/{code}/receive",
        (Perm.transport_write, Perm.results_write),
        _receive_req,
    ),
    Endpoint(
        "GET",
        "/api/v1/boxes/{code}",
        Perm.testing_read,
        lambda db, r, w: Req("GET", f"/api/v1/boxes/{_box(db, w)}"),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/rounds/{ref}/transport-delays",
        Perm.testing_read,
        lambda db, r, w: Req("GET", f"/api/v1/rounds/{_round(db, w).code}/transport-delays"),
        outside=404,
    ),
    Endpoint(
        "POST",
        "/api/v1/results",
        Perm.results_write,
        lambda db, r, w: Req("POST", "/api/v1/results", json={"results": [_result_row(db, w)]}),
        outside=200,
        check=_results_check("results.0.lab"),
    ),
    Endpoint(
        "POST",
        "/api/v1/results/file",
        Perm.results_write,
        _results_file,
        outside=200,
        check=_results_check("lab"),
    ),
    Endpoint(
        "GET",
        "/api/v1/tubes/{barcode}/result",
        Perm.testing_read,
        lambda db, r, w: Req("GET", f"/api/v1/tubes/{_in_lab(db, w)[1].barcode}/result"),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/results/conflicts",
        Perm.testing_read,
        lambda db, r, w: _marked(_conflict(db, w), w, Req("GET", "/api/v1/results/conflicts")),
        outside=200,
        check=_found("id"),
    ),
    Endpoint(
        "POST",
        "/api/v1/results/conflicts/{conflict_id}/resolve",
        Perm.labs_manage,
        lambda db, r, w: Req(
            "POST",
            f"/api/v1/results/conflicts/{_conflict(db, w)}/resolve",
            json={"pick": "second", "note": "复核"},
        ),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/lab-figures",
        Perm.testing_read,
        lambda db, r, w: _marked(
            _lab(db, w).code, w, Req("GET", "/api/v1/lab-figures", params={"date": "2022-03-25"})
        ),
        outside=200,
        check=_found("code"),
    ),
    Endpoint(
        "GET",
        "/api/v1/pools/holds",
        Perm.testing_read,
        lambda db, r, w: _marked(
            _hold(db, w), w, Req("GET", "/api/v1/pools/holds", params={"status": "all"})
        ),
        outside=200,
        check=_found("id", page=True),
    ),
    Endpoint(
        "GET",
        "/api/v1/pools/holds/{hold_id}",
        Perm.testing_read,
        lambda db, r, w: Req("GET", f"/api/v1/pools/holds/{_hold(db, w)}"),
        outside=404,
    ),
    Endpoint(
        "GET",
        "/api/v1/retests",
        Perm.testing_read,
        lambda db, r, w: _marked(
            _retest(db, w), w, Req("GET", "/api/v1/retests", params={"status": "all"})
        ),
        outside=200,
        check=_found("id", page=True),
    ),
    Endpoint(
        "GET",
        "/api/v1/retests/mine",
        Perm.self_read,
        _my_retests,
        # The caller's own tasks are theirs wherever they live.
        outside=200,
        check=_only_mark,
    ),
    Endpoint(
        "POST",
        "/api/v1/antigen-reports",
        Perm.antigen_report,
        _report_antigen,
        ok=201,
        outside=404,
        outside_instead={Perm.self_read: 403},
        check=_reported,
    ),
    Endpoint(
        "GET",
        "/api/v1/antigen-reports/mine",
        Perm.self_read,
        _my_antigen_reports,
        outside=200,
        check=_only_mark,
    ),
]


def _mark_number(db: Session, where: str) -> str:
    number = new_id_number(region="220102" if where == "in" else "220202")
    _person(db, where, id_number=number)
    return number


def _domain_entries() -> list[Endpoint]:
    """The entries of every ``matrix_<domain>.py`` beside this file."""
    package = "tests.integration.api"
    found: list[Endpoint] = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("matrix_"):
            found.extend(importlib.import_module(f"{package}.{info.name}").ENTRIES)
    return found


MATRIX += _domain_entries()


def expected_status(endpoint: Endpoint, role: str, where: str) -> int:
    """What ``role`` (living in Changchun) gets from ``endpoint`` for a target ``where``."""
    if endpoint.needs in (PUBLIC, ANY_USER):
        return endpoint.ok
    held = ROLE_PERMISSIONS[role]
    needed = endpoint.needs if isinstance(endpoint.needs, tuple) else (endpoint.needs,)
    if not all(perm in held for perm in needed):
        for other, status in endpoint.instead.items():
            if other in held:
                return status
        return 403
    if where == "in":
        return endpoint.ok
    for other, status in endpoint.outside_instead.items():
        if other in held:
            return status
    return endpoint.outside


def _key(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


def _send(client: Any, req: Req, headers: dict[str, str] | None) -> Any:
    return client.request(
        req.method,
        req.url,
        json=req.json,
        data=req.data,
        files=req.files,
        params=req.params,
        headers=headers or {},
    )


def _served() -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /api/v1."""
    app = create_app(factory=sessionmaker())  # never connects: only its routes are read
    served = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if path.startswith("/api/v1"):
            for method in route.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    served.add((method, path))
    return sorted(served)


def test_every_endpoint_is_in_the_matrix():
    served = {f"{method} {path}" for method, path in _served()}
    covered = {_key(e) for e in MATRIX}
    missing = sorted(served - covered)
    assert not missing, "endpoints without a permission-matrix entry:\n" + "\n".join(missing)
    stale = sorted(covered - served)
    assert not stale, "matrix entries for endpoints that no longer exist:\n" + "\n".join(stale)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


class _TestsConnection:
    """A session factory that hands out sessions on the running test's connection, so one app
    (building it is the slow part of a request here) serves the whole module."""

    def __init__(self) -> None:
        self.current: sessionmaker[Session] | None = None

    def __call__(self, **kwargs: Any) -> Session:
        assert self.current is not None, "no test is running"
        return self.current(**kwargs)


@pytest.fixture(scope="module")
def _shared(engine: Engine) -> Iterator[tuple[TestClient, _TestsConnection]]:
    factory = _TestsConnection()
    app = create_app(factory=factory)
    with TestClient(app, raise_server_exceptions=False) as shared:
        yield shared, factory


@pytest.fixture
def client(_shared, session_factory) -> Iterator[TestClient]:
    shared, factory = _shared
    factory.current = session_factory
    # Each test has a database of its own (a resident's person, say): principals the app cached
    # for an earlier test must not answer for this one.
    shared.app.state.principals = PrincipalCache()
    yield shared
    factory.current = None


@pytest.mark.parametrize("where", ["in", "out"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", MATRIX, ids=_key)
def test_each_role_gets_what_its_permissions_say(client, headers, db, endpoint, role, where):
    MARK.clear()
    req = endpoint.build(db, role, where)
    db.flush()
    auth = None if endpoint.needs == PUBLIC else headers(role)
    response = _send(client, req, auth)
    expected = expected_status(endpoint, role, where)
    assert response.status_code == expected, (
        f"{role} → {_key(endpoint)} ({where}): {response.status_code} {response.text[:300]}"
    )
    if expected < 300 and endpoint.check is not None:
        endpoint.check(response, where)
    if expected >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")


PUBLIC_ENDPOINTS = {_key(e) for e in MATRIX if e.needs == PUBLIC}


@pytest.mark.parametrize(("method", "path"), _served(), ids=[f"{m} {p}" for m, p in _served()])
def test_without_a_token_only_the_public_endpoints_answer(client, method, path):
    # Every served endpoint, matrix entry or not; path parameters get harmless stand-ins and no
    # body is sent: authentication is refused before anything else is looked at.
    url = re.sub(r"\{[^}]+\}", "1", path)
    response = client.request(method, url)
    if f"{method} {path}" in PUBLIC_ENDPOINTS:
        assert response.status_code != 401
    else:
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("endpoint", [e for e in MATRIX if e.needs != PUBLIC], ids=_key)
def test_a_forged_or_expired_token_is_401(client, headers, db, endpoint):
    req = endpoint.build(db, "admin", "in")
    db.flush()
    with clock.frozen(NOW - timedelta(days=3)):
        expired = headers("admin")
    data, mac = headers("admin")["Authorization"].removeprefix("Bearer ").split(".")
    middle = len(data) // 2
    tampered = data[:middle] + ("A" if data[middle] != "A" else "B") + data[middle + 1 :]
    forged = {"Authorization": f"Bearer {tampered}.{mac}"}
    for bad in (forged, expired):
        response = _send(client, req, bad)
        assert response.status_code == 401, response.text
