"""The investigator's pages: cases (list and record: reclassify, discharge, release, death),
exposures recorded by form or CSV file (with the row report), the contacts of a case, and the
chain of transmission drawn as a graph on the server (SVG, no script).

Same services as ``/api/v1/cases``, ``/exposures`` and ``/contacts``: tracing.read to read,
cases.write and contacts.write for the forms; people are shown masked, and "show in full" is a
POST that the registry service checks (personal.unmask) and audits each time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core.auth import Perm, Principal
from bastion.core.config import get_settings
from bastion.core.errors import BastionError, FieldProblem, InvalidInput
from bastion.core.i18n import t
from bastion.registry import service as registry_service
from bastion.registry.models import Person
from bastion.tracing import service as tracing_service
from bastion.tracing.enums import CASE_STATUSES, CLASSIFICATIONS, CLINICAL_TYPES, SETTINGS
from bastion.tracing.models import Case
from bastion.tracing.schemas import ExposureIn
from bastion.web.chains import case_chain_view, contact_chain_view
from bastion.web.common import NavItem, Viewer, WebRoute, add_nav, check_csrf, render
from bastion.web.exposures import CSV_COLUMNS, parse_csv, record, report_lines
from bastion.web.forms import Csrf, FormPage, in_savepoint, see_other

router = APIRouter(include_in_schema=False, route_class=WebRoute)
add_nav(NavItem("/cases", "web.nav_cases", Perm.tracing_read))

Text = Annotated[str, Form(max_length=500)]
Ref = Annotated[str, Path(max_length=24)]
PAGE = 50
DONE = ("reclassify", "close", "exposure")


# Views ---------------------------------------------------------------------------------------


def _people(session: Session, ids: Sequence[int], unmask: int | None = None) -> dict[int, Any]:
    """Masked views of people (as the API's ``_persons``); ``unmask``: one already checked."""
    rows = session.execute(select(Person).where(Person.id.in_(sorted(set(ids))))).scalars()
    return {p.id: registry_service.to_read(p, unmasked=p.id == unmask) for p in rows}


def cases_view(
    session: Session,
    principal: Principal,
    *,
    status: str | None,
    classification: str | None,
    offset: int,
) -> dict[str, Any]:
    status = status if status in CASE_STATUSES else None
    classification = classification if classification in CLASSIFICATIONS else None
    rows, total = tracing_service.list_cases(
        db_session=session,
        principal=principal,
        status=status,
        classification=classification,
        offset=offset,
        limit=PAGE,
    )
    people = _people(session, [c.person_id for c in rows])
    return {
        "cases": [(c, people.get(c.person_id)) for c in rows],
        "total": total,
        "offset": offset,
        "page": PAGE,
        "query": {"status": status or "", "classification": classification or ""},
        "statuses": CASE_STATUSES,
        "classifications": CLASSIFICATIONS,
    }


def case_view(
    session: Session, principal: Principal, ref: str, *, unmask: bool = False
) -> dict[str, Any]:
    """A case, its person (masked unless ``unmask``: checked and audited by the registry), its
    contacts and the forms the caller may use."""
    case = tracing_service.get_case(db_session=session, principal=principal, ref=ref)
    shown = None
    if unmask:
        shown = registry_service.read(
            db_session=session, principal=principal, person_id=case.person_id, unmask=True
        ).id
    contacts, total = tracing_service.list_contacts(
        db_session=session, principal=principal, case=str(case.id), limit=200
    )
    people = _people(session, [case.person_id, *(c.person_id for c in contacts)], shown)
    return {
        "case": case,
        "person": people.get(case.person_id),
        "contacts": [(c, people.get(c.person_id)) for c in contacts],
        "contacts_total": total,
        "can_write": principal.can(Perm.cases_write),
        "can_expose": principal.can(Perm.contacts_write),
        "can_unmask": principal.can(Perm.personal_unmask),
        "unmasked": shown is not None,
        "clinical_types": CLINICAL_TYPES,
        "settings": SETTINGS,
        "close_actions": _close_actions(case),
        "csv_columns": ", ".join(CSV_COLUMNS),
    }


def _close_actions(case: Case) -> list[str]:
    if case.status != "open":
        return []
    return ["discharge" if case.classification == "confirmed" else "release", "death"]


# Routes --------------------------------------------------------------------------------------


@router.get("/cases", response_class=HTMLResponse)
def cases_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    status: Annotated[str | None, Query(max_length=16)] = None,
    classification: Annotated[str | None, Query(max_length=16)] = None,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    context = cases_view(
        session, principal, status=status, classification=classification, offset=offset
    )
    return render(request, "cases.html", context)


def _case_page(request: Request, session: Session, principal: Principal, ref: str) -> Response:
    context = case_view(session, principal, ref)
    done = request.query_params.get("done")
    if done in DONE:
        context["notice"] = t(f"web.cs_done_{done}", request_language(request))
    return render(request, "case_page.html", context)


@router.get("/cases/{ref}", response_class=HTMLResponse)
def case_page(request: Request, session: SessionDep, principal: Viewer, ref: Ref) -> Response:
    return _case_page(request, session, principal, ref)


def _forms(ref: str) -> FormPage:
    """The case page of ``ref`` with its forms."""
    return FormPage(
        "case_page.html", lambda _request, session, principal: case_view(session, principal, ref)
    )


def _done(what: str) -> Callable[[Case], str]:
    """Where a case's form sends the browser: its page, saying what was done."""
    return lambda case: f"/cases/{case.id}?done={what}"


def _day(value: str) -> date | None:
    text = value.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput.one("day", "web.cs_bad_day") from None


@router.post("/cases/{ref}/reclassify", response_class=HTMLResponse)
def reclassify(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    ref: Ref,
    csrf: Csrf = "",
    clinical_type: Annotated[str, Form(max_length=16)] = "",
    day: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    return _forms(ref).submit(
        request,
        session,
        principal,
        csrf,
        lambda: tracing_service.reclassify(
            db_session=session,
            principal=principal,
            ref=ref,
            clinical_type=clinical_type,
            day=_day(day),
        ),
        done=_done("reclassify"),
    )


@router.post("/cases/{ref}/close", response_class=HTMLResponse)
def close(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    ref: Ref,
    csrf: Csrf = "",
    action: Annotated[str, Form(max_length=16)] = "",
    day: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    return _forms(ref).submit(
        request,
        session,
        principal,
        csrf,
        lambda: tracing_service.close_case(
            db_session=session, principal=principal, ref=ref, action=action, day=_day(day)
        ),
        done=_done("close"),
    )


@router.post("/cases/{ref}/exposures", response_class=HTMLResponse)
def record_exposure(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    ref: Ref,
    csrf: Csrf = "",
    person_id: Annotated[str, Form(max_length=20)] = "",
    id_number: Annotated[str, Form(max_length=32)] = "",
    exposed_on: Annotated[str, Form(max_length=10)] = "",
    setting: Annotated[str, Form(max_length=16)] = "",
    place: Text = "",
) -> Response:
    """One exposure of this case, typed in; a refusal names its field."""
    check_csrf(request, csrf)
    case = tracing_service.get_case(db_session=session, principal=principal, ref=ref)
    fields = {"case": str(case.id), "person_id": person_id.strip() or None, "setting": setting}
    fields["id_number"] = id_number.strip() or None  # the usual way to name someone; audited
    fields.update(exposed_on=exposed_on.strip() or None, place=place)
    try:
        try:
            item = ExposureIn.model_validate(fields)
        except ValidationError as err:
            name = str(err.errors()[0]["loc"][0])
            raise InvalidInput.one(name, "web.cs_csv_value", value=name) from None
        report = in_savepoint(session, lambda: record(session, principal, [item]))
        if report.problems:
            first = report.problems[0]
            raise InvalidInput(problems=[FieldProblem(first.field, first.reason, first.params)])
    except BastionError as err:
        return _forms(ref).again(request, session, principal, err)
    return see_other(_done("exposure")(case))


@router.post("/cases/{ref}/exposures/file", response_class=HTMLResponse)
def upload_exposures(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    ref: Ref,
    file: Annotated[UploadFile, File()],
    csrf: Csrf = "",
) -> Response:
    """A CSV file of exposures: the good rows land, each refused row is listed by its line."""
    check_csrf(request, csrf)
    lang = request_language(request)
    principal.require(Perm.contacts_write)
    try:
        data = file.file.read(get_settings().max_upload_bytes + 1)
        if len(data) > get_settings().max_upload_bytes:
            raise InvalidInput.one("file", "field.out_of_range", min=0, max=len(data) - 1)
        items, rows, unreadable = parse_csv(data)
        report = in_savepoint(session, lambda: record(session, principal, items))
    except BastionError as err:
        return _forms(ref).again(request, session, principal, err)
    context = case_view(session, principal, ref)
    context.update(
        report=report,
        report_refused=report.refused + len(unreadable),
        report_rows=report.rows + len(unreadable),
        report_lines=report_lines(report, rows, unreadable, lang),
    )
    return render(request, "case_page.html", context)


@router.post("/cases/{ref}/unmask", response_class=HTMLResponse)
def unmask(
    request: Request, session: SessionDep, principal: Viewer, ref: Ref, csrf: Csrf = ""
) -> Response:
    """The case's person in full, for this answer only (needs personal.unmask; audited)."""
    check_csrf(request, csrf)
    return render(request, "case_page.html", case_view(session, principal, ref, unmask=True))


@router.get("/cases/{ref}/chain", response_class=HTMLResponse)
def case_chain(request: Request, session: SessionDep, principal: Viewer, ref: Ref) -> Response:
    return render(request, "chain.html", case_chain_view(session, principal, ref))


@router.get("/contacts/{contact_id}/chain", response_class=HTMLResponse)
def contact_chain(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    contact_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> Response:
    return render(request, "chain.html", contact_chain_view(session, principal, contact_id))
