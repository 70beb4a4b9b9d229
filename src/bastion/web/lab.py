"""Lab pages: today's figures, box receipt (the boxes page's form), result upload (CSV or XLSX)
with its row-by-row report, and result conflicts (listed for the lab; resolved by command staff
holding labs.manage), through the same services as ``/api/v1/results``.

An upload runs the whole results flow (:mod:`bastion.testing.flows`), as the API's does: the
results land, positive pools are held, cases are opened for positive retests and single tubes,
their contacts traced and placed, and the health codes of everyone touched recomputed — all in
one savepoint of the request's transaction, which commits it with the page: an error that stops
the upload undoes all of it (and nothing else), while refused rows are reported row by row and
the good rows land, as through the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core.auth import Perm, Principal
from bastion.core.config import get_settings
from bastion.core.errors import BastionError, TooLarge
from bastion.core.filereader import read_table
from bastion.core.i18n import Language, t
from bastion.testing import flows, results
from bastion.testing import labs as lab_figures
from bastion.testing.results.rows import COLUMNS, REQUIRED
from bastion.web.common import Viewer, WebRoute, check_csrf, render
from bastion.web.forms import Csrf, FormPage, in_savepoint, refused

router = APIRouter(include_in_schema=False, route_class=WebRoute)

#: Rows of one spreadsheet upload (a lab's run is a few thousand tubes).
MAX_XLSX_ROWS = 200_000


def lab_view(session: Session, principal: Principal) -> dict[str, Any]:
    principal.require(Perm.results_write)
    return {
        "labs": lab_figures.lab_figures(db_session=session, principal=principal),
        "conflicts": results.list_conflicts(db_session=session, principal=principal, limit=100),
    }


def _text(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return "" if value is None else str(value)


def xlsx_rows(filename: str, data: bytes) -> Iterator[results.RawResult]:
    """The rows of a spreadsheet upload as the service's raw rows (the same columns as the CSV;
    the service checks every value)."""
    table = read_table(
        filename,
        data,
        aliases={},
        required=REQUIRED,
        known=COLUMNS,
        max_bytes=get_settings().max_upload_bytes,
        max_rows=MAX_XLSX_ROWS,
    )
    for number, values in table.rows:
        yield results.RawResult(
            row=number,
            lab=_text(values.get("lab")),
            tube=_text(values.get("tube")),
            result=_text(values.get("result")),
            tested_at=_text(values.get("tested_at")),
            ct_orf1ab=_text(values.get("ct_orf1ab")) or None,
            ct_n=_text(values.get("ct_n")) or None,
            received_at=_text(values.get("received_at")) or None,
        )


def upload(session: Session, principal: Principal, file: UploadFile) -> results.ResultReport:
    """Record an uploaded results file through the results flow (as ``/api/v1/results`` and
    ``/api/v1/results/file`` do): CSV streamed by the service, XLSX read here first."""
    principal.require(Perm.results_write)
    limit = get_settings().max_upload_bytes
    name = (file.filename or "").lower()
    if name.endswith((".xlsx", ".xlsm")):
        data = file.file.read(limit + 1)
        if len(data) > limit:
            raise TooLarge()
        return flows.upload_results(
            db_session=session, principal=principal, rows=xlsx_rows(name, data)
        )
    file.file.seek(0, 2)
    if file.file.tell() > limit:
        raise TooLarge()
    file.file.seek(0)
    return flows.import_results_file(db_session=session, principal=principal, binary=file.file)


def report_lines(report: results.ResultReport, lang: Language) -> list[dict[str, Any]]:
    return [
        {"row": p.row, "field": p.field, "reason": t(p.reason, lang, **p.params)}
        for p in report.problems
    ]


@router.get("/lab", response_class=HTMLResponse)
def lab_page(request: Request, session: SessionDep, principal: Viewer) -> Response:
    return render(request, "lab_page.html", lab_view(session, principal))


@router.post("/lab/results", response_class=HTMLResponse)
def upload_results(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    file: Annotated[UploadFile, File()],
    csrf: Csrf = "",
) -> Response:
    check_csrf(request, csrf)
    lang = request_language(request)
    try:
        report = in_savepoint(session, lambda: upload(session, principal, file))
    except BastionError as err:
        return refused(request, "lab_page.html", lab_view(session, principal), err)
    context = lab_view(session, principal)
    context.update(report=report, report_lines=report_lines(report, lang))
    return render(request, "lab_page.html", context)


# Conflicts (command staff) -------------------------------------------------------------------


def conflicts_view(session: Session, principal: Principal) -> dict[str, Any]:
    principal.require(Perm.labs_manage)
    return {"conflicts": results.list_conflicts(db_session=session, principal=principal, limit=500)}


CONFLICT_FORMS = FormPage(
    "conflicts.html", lambda _request, session, principal: conflicts_view(session, principal)
)


@router.get("/conflicts", response_class=HTMLResponse)
def conflicts_page(request: Request, session: SessionDep, principal: Viewer) -> Response:
    context = conflicts_view(session, principal)
    if request.query_params.get("done"):
        context["notice"] = t("web.conflict_resolved", request_language(request))
    return render(request, "conflicts.html", context)


@router.post("/conflicts/{conflict_id}/resolve", response_class=HTMLResponse)
def resolve(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    conflict_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    csrf: Csrf = "",
    pick: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    return CONFLICT_FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: results.resolve_conflict(
            db_session=session,
            principal=principal,
            conflict_id=conflict_id,
            pick=pick,
            note=note,
        ),
        done="/conflicts?done=1",
    )
