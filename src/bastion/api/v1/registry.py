"""Persons: register, read (masked unless unmasked and audited), search, import, export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, File, Path, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from bastion.api.deps import CurrentPrincipal, LangDep, RowId, SessionDep
from bastion.api.errors import problem
from bastion.core.config import get_settings
from bastion.core.errors import TooLarge
from bastion.core.i18n import t
from bastion.core.text import Line, Name
from bastion.registry import importer
from bastion.registry import service as registry_service
from bastion.registry.schemas import (
    ImportReport,
    PersonCreate,
    PersonPage,
    PersonRead,
    PersonUpdate,
    RowProblem,
)

router = APIRouter(prefix="/persons", tags=["registry"])


class IdLookup(BaseModel):
    id_number: str


@router.post("", response_model=PersonRead, status_code=201)
def create_person(body: PersonCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    person = registry_service.create(db_session=session, principal=principal, data=body)
    return registry_service.to_read(person)


@router.get("", response_model=PersonPage)
def search_persons(
    session: SessionDep,
    principal: CurrentPrincipal,
    region: Annotated[Line, Query()],
    # A name prefix (joiners allowed, see core.text.Name).
    name: Annotated[Name | None, Query()] = None,
    special_group: Annotated[Line | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=registry_service.MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=registry_service.MAX_PAGE)] = 50,
) -> PersonPage:
    rows, total = registry_service.search(
        db_session=session,
        principal=principal,
        region_code=region,
        name=name,
        special_group=special_group,
        offset=offset,
        limit=limit,
    )
    return PersonPage(
        items=[registry_service.to_read(p) for p in rows], total=total, offset=offset, limit=limit
    )


@router.post(
    "/lookup",
    response_model=PersonRead,
    responses={404: {"description": "No such person in the caller's region"}},
)
def lookup_person(
    body: IdLookup, session: SessionDep, principal: CurrentPrincipal, lang: LangDep
) -> object:
    """Exact lookup by ID number (sent in the body so it never lands in access logs)."""
    person = registry_service.find_by_id_number(
        db_session=session, principal=principal, id_number=body.id_number
    )
    if person is None:
        # Answered, not raised: raising would roll back the transaction and with it the audit
        # entry of the failed lookup.
        return problem(404, t("person.not_found", lang), code="person.not_found")
    return registry_service.to_read(person)


@router.get("/{person_id}", response_model=PersonRead)
def read_person(
    person_id: RowId, session: SessionDep, principal: CurrentPrincipal, unmask: bool = False
) -> object:
    return registry_service.read(
        db_session=session, principal=principal, person_id=person_id, unmask=unmask
    )


@router.patch("/{person_id}", response_model=PersonRead)
def update_person(
    person_id: RowId, body: PersonUpdate, session: SessionDep, principal: CurrentPrincipal
) -> object:
    person = registry_service.update(
        db_session=session, principal=principal, person_id=person_id, data=body
    )
    return registry_service.to_read(person)


@router.post("/import", response_model=ImportReport)
async def import_persons(
    file: Annotated[UploadFile, File()],
    session: SessionDep,
    principal: CurrentPrincipal,
    lang: LangDep,
) -> ImportReport:
    limit = get_settings().max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge()
    result = importer.import_persons(
        db_session=session, principal=principal, filename=file.filename or "upload.csv", data=data
    )
    return ImportReport(
        batch_id=result.batch_id,
        rows_total=result.rows_total,
        created=result.created,
        unchanged=result.unchanged,
        refused=result.refused,
        problems=[RowProblem(**p.render(lang)) for p in result.problems],
    )


@router.get("/export/{region_code}.csv")
def export_persons(
    region_code: Annotated[Line, Path()],
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    unmask: bool = False,
) -> StreamingResponse:
    """CSV of a region subtree's persons. The export is authorised and its audit entry committed
    before the first byte; the rows are then streamed from a read session of their own."""
    plan = registry_service.export_csv(
        db_session=session, principal=principal, region_code=region_code, unmask=unmask
    )
    factory = request.app.state.session_factory

    def body() -> Iterator[str]:
        with factory() as reader:
            yield from registry_service.export_lines(db_session=reader, plan=plan)

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="persons-{region_code}.csv"'},
    )
