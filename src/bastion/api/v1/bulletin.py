"""The daily bulletin: figures, texts (Markdown, HTML, XLSX), charts, publication, corrections
and revisions. A city's bulletin needs the city in your region; the province's, the province."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from bastion.api.deps import CurrentPrincipal, LangDep, SessionDep
from bastion.bulletin import charts, formats
from bastion.bulletin import service as bulletin_service
from bastion.bulletin.schemas import BulletinRead, RevisionRead
from bastion.core.errors import InvalidInput
from bastion.core.text import Line, Text

router = APIRouter(prefix="/bulletin", tags=["bulletin"])

RegionQuery = Annotated[
    str | None, Query(max_length=15, description="Province or city code; default: yours")
]


class CorrectionIn(BaseModel):
    reason: Text = Field(max_length=bulletin_service.MAX_REASON)
    region: Line | None = Field(default=None, max_length=15)


@router.get("/{day}", response_model=BulletinRead)
def figures(
    day: date,
    session: SessionDep,
    principal: CurrentPrincipal,
    region: RegionQuery = None,
    live: bool = False,
) -> BulletinRead:
    """The figures of local day ``day``: the published revision's, else computed now (a draft).
    ``live=true`` computes them now in any case and says whether they drifted."""
    return bulletin_service.get(
        db_session=session, principal=principal, day=day, region_code=region, live=live
    )


@router.get("/{day}/text")
def text(
    day: date,
    session: SessionDep,
    principal: CurrentPrincipal,
    lang: LangDep,
    region: RegionQuery = None,
    format: Annotated[str, Query(max_length=8)] = "md",
    live: bool = False,
) -> Response:
    """The bulletin as Markdown, HTML or XLSX in ``lang`` (zh-CN or en)."""
    body = bulletin_service.render(
        db_session=session,
        principal=principal,
        day=day,
        lang=lang,
        fmt=format,
        region_code=region,
        live=live,
    )
    headers = {}
    if format == "xlsx":
        headers["Content-Disposition"] = f'attachment; filename="bulletin-{day.isoformat()}.xlsx"'
    return Response(content=body, media_type=formats.MEDIA_TYPES[format], headers=headers)


@router.get("/{day}/charts/{chart}")
def chart(
    day: date,
    chart: Annotated[str, Path(max_length=16)],
    session: SessionDep,
    principal: CurrentPrincipal,
    lang: LangDep,
    region: RegionQuery = None,
) -> Response:
    """``curve.png``, ``curve.svg``, ``cities.png`` or ``cities.svg``."""
    name, _, kind = chart[:16].partition(".")
    if kind not in charts.KINDS:
        raise InvalidInput.one("chart", "bulletin.unknown_chart", value=chart[:16])
    data = bulletin_service.chart(
        db_session=session,
        principal=principal,
        day=day,
        name=name,
        kind=kind,
        lang=lang,
        region_code=region,
    )
    return Response(content=data, media_type=charts.KINDS[kind])


@router.post("/{day}/publish", response_model=RevisionRead, status_code=201)
def publish(
    day: date, session: SessionDep, principal: CurrentPrincipal, region: RegionQuery = None
) -> RevisionRead:
    """Publish (freeze) the bulletin of a day that is over."""
    return bulletin_service.publish(
        db_session=session, principal=principal, day=day, region_code=region
    )


@router.post("/{day}/corrections", response_model=RevisionRead, status_code=201)
def correct(
    day: date, body: CorrectionIn, session: SessionDep, principal: CurrentPrincipal
) -> RevisionRead:
    """Correct a published day: a new revision with the figures the record gives now, the
    reason, and every figure that changed."""
    return bulletin_service.correct(
        db_session=session,
        principal=principal,
        day=day,
        reason=body.reason,
        region_code=body.region,
    )


@router.get("/{day}/revisions", response_model=list[RevisionRead])
def revisions(
    day: date, session: SessionDep, principal: CurrentPrincipal, region: RegionQuery = None
) -> list[RevisionRead]:
    """Every published revision of the day, first to last."""
    return bulletin_service.revisions(
        db_session=session, principal=principal, day=day, region_code=region
    )
