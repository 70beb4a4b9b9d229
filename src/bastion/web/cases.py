"""The investigator's pages: cases (list and record: reclassify, discharge, release, death),
exposures recorded by form or CSV file (with the row report), the contacts of a case, and the
chain of transmission drawn as a graph on the server (SVG, no script).

Same services as ``/api/v1/cases``, ``/exposures`` and ``/contacts``: tracing.read to read,
cases.write and contacts.write for the forms; people are shown masked, and "show in full" is a
POST that the registry service checks (personal.unmask) and audits each time.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core.auth import Perm, Principal
from bastion.core.config import get_settings
from bastion.core.errors import BastionError, FieldProblem, InvalidInput
from bastion.core.i18n import Language, t
from bastion.registry import service as registry_service
from bastion.registry.models import Person
from bastion.tracing import handover
from bastion.tracing import service as tracing_service
from bastion.tracing.chains import Chain
from bastion.tracing.enums import CASE_STATUSES, CLASSIFICATIONS, CLINICAL_TYPES, SETTINGS
from bastion.tracing.models import Case
from bastion.tracing.schemas import ExposureIn
from bastion.web.common import (
    NavItem,
    Viewer,
    WebRoute,
    add_nav,
    check_csrf,
    in_savepoint,
    problems_of,
    render,
)

router = APIRouter(include_in_schema=False, route_class=WebRoute)
add_nav(NavItem("/cases", "web.nav_cases", Perm.tracing_read))

Csrf = Annotated[str, Form(max_length=500)]
Text = Annotated[str, Form(max_length=500)]
Ref = Annotated[str, Path(max_length=24)]
PAGE = 50
#: The columns of an exposures file (the batch API's fields).
CSV_COLUMNS = ("case", "contact_id", "person_id", "exposed_on", "setting", "place", "region_code")
MAX_ROWS = 10_000
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


# Exposures: form and file --------------------------------------------------------------------


def parse_csv(data: bytes) -> tuple[list[ExposureIn], list[int], list[FieldProblem]]:
    """The rows of an exposures file (header line first; row 1 is the first data line): the
    good ones as :class:`ExposureIn` with their row numbers, the unreadable ones as problems."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput.one("file", "web.cs_csv_encoding") from None
    reader = csv.DictReader(io.StringIO(text))
    header = {(h or "").strip() for h in reader.fieldnames or ()}
    missing = [c for c in ("person_id", "exposed_on", "setting") if c not in header]
    if missing:
        raise InvalidInput.one("file", "web.cs_csv_columns", columns=", ".join(CSV_COLUMNS))
    items: list[ExposureIn] = []
    rows: list[int] = []
    problems: list[FieldProblem] = []
    for n, raw in enumerate(reader, start=1):
        if n > MAX_ROWS:
            raise InvalidInput.one("file", "field.out_of_range", min=1, max=MAX_ROWS)
        values = {
            (k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)
        }
        fields = {k: values[k] for k in CSV_COLUMNS if values.get(k)}
        try:
            items.append(ExposureIn.model_validate(fields))
        except ValidationError as err:
            first = err.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "row"
            problems.append(FieldProblem(name, "web.cs_csv_value", {"value": name}, n))
            continue
        rows.append(n)
    return items, rows, problems


def record(
    session: Session, principal: Principal, items: list[ExposureIn]
) -> tracing_service.ExposureReport:
    """Record exposures and hand their new contacts to isolation, as the API does."""
    report = tracing_service.record_exposures(db_session=session, principal=principal, items=items)
    handover.hand_over(session, case_ids=[], contact_ids=report.close_ids + report.secondary_ids)
    return report


def report_lines(
    report: tracing_service.ExposureReport,
    rows: Sequence[int],
    unreadable: Sequence[FieldProblem],
    lang: Language,
) -> list[dict[str, Any]]:
    """Each refused row by its line in the file (the service numbers the rows it was sent)."""
    lines = [(p.row or 0, p) for p in unreadable]
    for p in report.problems:
        index = (p.row or 1) - 1
        lines.append((rows[index] if 0 <= index < len(rows) else (p.row or 0), p))
    return [
        {"row": n, "field": p.field, "reason": t(p.reason, lang, **p.params)}
        for n, p in sorted(lines, key=lambda x: x[0])
    ]


# The chain of transmission -------------------------------------------------------------------

NODE_W, NODE_H, COL, ROW = 118, 34, 170, 48
MAX_DRAWN = 400


def layout(chain: Chain, root: str) -> dict[str, Any]:
    """Columns by steps from ``root`` along the edges (an edge's target one column to the right
    of its source), rows in order within a column; the SVG's geometry."""
    level = {root: 0}
    frontier = [root]
    forward: dict[str, list[str]] = {}
    backward: dict[str, list[str]] = {}
    for a, b, _ in sorted(chain.edges):
        forward.setdefault(a, []).append(b)
        backward.setdefault(b, []).append(a)
    while frontier:
        nxt = []
        for key in frontier:
            steps = [(b, 1) for b in forward.get(key, [])] + [
                (a, -1) for a in backward.get(key, [])
            ]
            for other, step in steps:
                if other not in level and len(level) < MAX_DRAWN:
                    level[other] = level[key] + step
                    nxt.append(other)
        frontier = nxt
    low = min(level.values())
    columns: dict[int, list[str]] = {}
    for key in sorted(level, key=lambda k: (level[k], k)):
        columns.setdefault(level[key] - low, []).append(key)
    pos: dict[str, tuple[int, int]] = {}
    for col, keys in columns.items():
        for row, key in enumerate(keys):
            pos[key] = (12 + col * COL, 12 + row * ROW)
    nodes = []
    for key, (x, y) in pos.items():
        node = chain.nodes[key]
        is_case = node["kind"] == "case"
        nodes.append(
            {
                "key": key,
                "x": x,
                "y": y,
                "kind": node["kind"],
                "label": node["code"] if is_case else f"#{node['id']}",
                "status": node["status"],
                "classification": node["classification"],
                "href": f"/cases/{node['id']}/chain"
                if is_case
                else f"/contacts/{node['id']}/chain",
                "root": key == root,
            }
        )
    edges = [
        {
            "x1": pos[a][0] + NODE_W,
            "y1": pos[a][1] + NODE_H // 2,
            "x2": pos[b][0],
            "y2": pos[b][1] + NODE_H // 2,
            "kind": kind,
        }
        for a, b, kind in sorted(chain.edges)
        if a in pos and b in pos
    ]
    rows = max((len(keys) for keys in columns.values()), default=1)
    return {
        "nodes": nodes,
        "edges": edges,
        "w": NODE_W,
        "h": NODE_H,
        "width": 24 + len(columns) * COL,
        "height": 24 + rows * ROW,
        "truncated": chain.truncated or len(level) < len(chain.nodes),
    }


def _merged(*chains: Chain) -> Chain:
    out = Chain()
    for chain in chains:
        for key, node in chain.nodes.items():
            out.nodes.setdefault(key, node)
        out.edges |= chain.edges
        out.truncated = out.truncated or chain.truncated
    return out


def case_chain_view(session: Session, principal: Principal, ref: str) -> dict[str, Any]:
    """Both ways from a case: where it was traced from and all traced from it."""
    case = tracing_service.get_case(db_session=session, principal=principal, ref=ref)
    down = tracing_service.chain_down(db_session=session, principal=principal, ref=case.id)
    up = tracing_service.chain_up(db_session=session, principal=principal, case=str(case.id))
    return {"title": case.code, "case": case, "graph": layout(_merged(up, down), f"case:{case.id}")}


def contact_chain_view(session: Session, principal: Principal, contact_id: int) -> dict[str, Any]:
    """From a contact: the cases and contacts it was traced from, and any later case of its
    person with what was traced from that case."""
    contact = tracing_service.get_contact(
        db_session=session, principal=principal, contact_id=contact_id
    )
    up = tracing_service.chain_up(
        db_session=session, principal=principal, person_id=contact.person_id
    )
    later = [n for n in up.nodes.values() if n["kind"] == "case"]
    downs = [
        tracing_service.chain_down(db_session=session, principal=principal, ref=n["id"])
        for n in later
        if n["person_id"] == contact.person_id and principal.scope.contains(n["region_code"])
    ]
    chain = _merged(up, *downs)
    chain.add_contact(contact)
    return {
        "title": f"#{contact.id}",
        "contact": contact,
        "graph": layout(chain, f"contact:{contact.id}"),
    }


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


def _again(
    request: Request, session: Session, principal: Principal, ref: str, err: BastionError
) -> Response:
    lang = request_language(request)
    context = case_view(session, principal, ref)
    context.update(error=err.message(lang), problems=problems_of(err, lang))
    return render(request, "case_page.html", context, status=err.status)


def _done(case_id: int, what: str) -> RedirectResponse:
    return RedirectResponse(f"/cases/{case_id}?done={what}", status_code=303)


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
    check_csrf(request, csrf)
    try:
        case = in_savepoint(
            session,
            lambda: tracing_service.reclassify(
                db_session=session,
                principal=principal,
                ref=ref,
                clinical_type=clinical_type,
                day=_day(day),
            ),
        )
    except BastionError as err:
        return _again(request, session, principal, ref, err)
    return _done(case.id, "reclassify")


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
    check_csrf(request, csrf)
    try:
        case = in_savepoint(
            session,
            lambda: tracing_service.close_case(
                db_session=session, principal=principal, ref=ref, action=action, day=_day(day)
            ),
        )
    except BastionError as err:
        return _again(request, session, principal, ref, err)
    return _done(case.id, "close")


@router.post("/cases/{ref}/exposures", response_class=HTMLResponse)
def record_exposure(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    ref: Ref,
    csrf: Csrf = "",
    person_id: Annotated[str, Form(max_length=20)] = "",
    exposed_on: Annotated[str, Form(max_length=10)] = "",
    setting: Annotated[str, Form(max_length=16)] = "",
    place: Text = "",
) -> Response:
    """One exposure of this case, typed in; a refusal names its field."""
    check_csrf(request, csrf)
    case = tracing_service.get_case(db_session=session, principal=principal, ref=ref)
    fields = {"case": str(case.id), "person_id": person_id.strip() or None, "setting": setting}
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
        return _again(request, session, principal, ref, err)
    return _done(case.id, "exposure")


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
        return _again(request, session, principal, ref, err)
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
