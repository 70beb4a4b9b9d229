"""Rounds, sampling sites, labs and scans (the live sampling API)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from bastion.api.deps import CurrentPrincipal, LangDep, SessionDep
from bastion.api.errors import problem
from bastion.api.scanwriter import Overloaded, ScanWriter
from bastion.core.auth import Perm
from bastion.core.errors import BastionError, FieldProblem
from bastion.core.i18n import Language, t
from bastion.testing import ingest
from bastion.testing import service as testing_service
from bastion.testing.schemas import (
    LabCreate,
    LabRead,
    RoundCreate,
    RoundRead,
    ScanBatchIn,
    ScanProblem,
    ScanReport,
    SiteCreate,
    SiteRead,
)

router = APIRouter(tags=["testing"])


@router.post("/rounds", response_model=RoundRead, status_code=201)
def create_round(body: RoundCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.create_round(db_session=session, principal=principal, data=body)


@router.get("/rounds", response_model=list[RoundRead])
def list_rounds(session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.list_rounds(db_session=session, principal=principal)


@router.get("/rounds/{ref}", response_model=RoundRead)
def read_round(ref: str, session: SessionDep, principal: CurrentPrincipal) -> object:
    principal.require(Perm.testing_read)
    return testing_service.get_round(db_session=session, principal=principal, ref=ref)


@router.post("/rounds/{ref}/close", response_model=RoundRead)
def close_round(ref: str, session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.close_round(db_session=session, principal=principal, ref=ref)


@router.post("/sites", response_model=SiteRead, status_code=201)
def create_site(body: SiteCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.create_site(db_session=session, principal=principal, data=body)


@router.get("/sites/{code}", response_model=SiteRead)
def read_site(code: str, session: SessionDep, principal: CurrentPrincipal) -> object:
    principal.require(Perm.testing_read)
    return testing_service.get_site(db_session=session, principal=principal, code=code)


@router.post("/labs", response_model=LabRead, status_code=201)
def create_lab(body: LabCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    return testing_service.create_lab(db_session=session, principal=principal, data=body)


def report_out(report: ingest.IngestReport, lang: Language, where: dict[int, str]) -> ScanReport:
    """The API view of an ingest report; row numbers become ``groups.G.people.P`` paths."""

    def problem(p: FieldProblem) -> ScanProblem:
        rendered = p.render(lang)
        if p.row is not None and p.row in where and p.field in ("person", "scanned_at"):
            rendered["field"] = f"{where[p.row]}.{p.field}"
        elif p.row is not None and p.row in where:
            rendered["field"] = f"{where[p.row].rsplit('.people.', 1)[0]}.{p.field}"
        return ScanProblem(
            row=rendered.get("row"),
            field=rendered["field"],
            reason=rendered["reason"],
            code=rendered["code"],
        )

    return ScanReport(
        key=report.key,
        accepted=report.accepted,
        unchanged=report.unchanged,
        refused=report.refused,
        flagged=report.flagged,
        replayed=report.replayed,
        problems=[problem(p) for p in report.problems + report.flags],
    )


@router.post("/scans/batches", response_model=ScanReport)
async def post_scan_batch(
    body: ScanBatchIn, request: Request, principal: CurrentPrincipal, lang: LangDep
) -> Response:
    """Save a scanner's groups (tube + people in order). Acknowledged only after the commit;
    re-sending the same ``key`` returns the first answer and changes nothing. Scans made offline
    keep their original times."""
    scans: list[ingest.RawScan] = []
    where: dict[int, str] = {}
    row = 0
    for g, group in enumerate(body.groups):
        for p, person in enumerate(group.people):
            row += 1
            where[row] = f"groups.{g}.people.{p}"
            scans.append(
                ingest.RawScan(
                    row=row,
                    round=body.round,
                    site=body.site,
                    tube=group.tube,
                    person=person,
                    scanned_at=group.scanned_at,
                    kind=group.kind,
                    capacity=group.capacity,
                )
            )
    principal.require(Perm.scans_write)
    writer: ScanWriter = request.app.state.scan_writer
    try:
        report = await writer.submit(
            ingest.BatchIn(principal=principal, key=body.key, source="api", scans=scans)
        )
    except Overloaded:
        return problem(
            429,
            t("error.rate_limited", lang),
            code="error.rate_limited",
            headers={"Retry-After": "1"},
        )
    except BastionError:
        raise
    except Exception:  # noqa: BLE001 - the database failed: the client re-sends the same key
        return problem(
            503,
            t("error.unavailable", lang),
            code="error.unavailable",
            headers={"Retry-After": "2"},
        )
    return JSONResponse(report_out(report, lang, where).model_dump())
