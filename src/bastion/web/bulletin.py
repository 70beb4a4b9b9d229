"""The bulletin page (疫情通报): a day's bulletin in Chinese or English as the service renders it
(HTML, escaped by the service), its charts, Markdown and XLSX downloads, its revisions with what
each correction changed; publish and correct (with a reason) for bulletin.publish — through
:mod:`bastion.bulletin.service` exactly as ``/api/v1/bulletin`` does.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.bulletin import charts, formats
from bastion.bulletin import service as bulletin_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import InvalidInput
from bastion.core.i18n import Language, normalise, t
from bastion.web.common import NavItem, Viewer, WebRoute, add_nav, render
from bastion.web.forms import Csrf, FormPage

router = APIRouter(include_in_schema=False, route_class=WebRoute)
add_nav(NavItem("/bulletin", "web.nav_bulletin", Perm.bulletin_read))

Region = Annotated[str | None, Query(max_length=15)]
FormRegion = Annotated[str, Form(max_length=15)]
Day = Annotated[date, Path()]
DOWNLOADS = ("md", "xlsx", "html")


def _article(page: str | bytes) -> Markup:
    """The service's standalone HTML page, without its head: the <article> it escaped."""
    text = page.decode() if isinstance(page, bytes) else page
    inner = text.split("<article>", 1)[-1].split("</article>", 1)[0]
    return Markup(f'<article class="bulletin-text">{inner}</article>')  # noqa: S704 - escaped


def latest_bulletin_summary(
    session: Session, principal: Principal, lang: Language
) -> dict[str, Any]:
    """For the dashboard: the latest day worth a bulletin in the caller's region, whether it
    is published (and its revision), and its text as HTML."""
    day = bulletin_service.latest_day(session)
    found = bulletin_service.get(db_session=session, principal=principal, day=day)
    text = bulletin_service.render(
        db_session=session, principal=principal, day=day, lang=lang, fmt="html"
    )
    return {
        "day": day,
        "region_code": found.region_code,
        "published": found.published,
        "revision": found.revision,
        "html": _article(text),
        "url": f"/bulletin?day={day.isoformat()}",
        "can_publish": principal.can(Perm.bulletin_publish) and day < clock.today(),
    }


def bulletin_view(
    session: Session,
    principal: Principal,
    *,
    day: date | None,
    region: str | None,
    text_lang: Language,
) -> dict[str, Any]:
    """The day's figures (frozen once published), its text, revisions and what this user may
    do; refusals are the service's (permission, region, a day to come)."""
    principal.require(Perm.bulletin_read)
    day = day or bulletin_service.latest_day(session)
    found = bulletin_service.get(
        db_session=session, principal=principal, day=day, region_code=region
    )
    page = bulletin_service.render(
        db_session=session,
        principal=principal,
        day=day,
        lang=text_lang,
        fmt="html",
        region_code=region,
    )
    can_publish = principal.can(Perm.bulletin_publish)
    query = f"?lang={text_lang}" + (f"&region={found.region_code}" if region else "")
    return {
        "day": day,
        "region": region or "",
        "bulletin": found,
        "text_html": _article(page),
        "text_lang": text_lang,
        "query": query,
        "charts": [f"{name}.{kind}" for name in charts.CHARTS for kind in ("svg", "png")],
        "revisions": bulletin_service.revisions(
            db_session=session, principal=principal, day=day, region_code=region
        ),
        "can_publish": can_publish and not found.published and day < clock.today(),
        "can_correct": can_publish and found.published,
    }


@router.get("/bulletin", response_class=HTMLResponse)
def bulletin_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    day: Annotated[date | None, Query()] = None,
    region: Region = None,
    text: Annotated[str | None, Query(max_length=8)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    lang = request_language(request)
    context = bulletin_view(
        session,
        principal,
        day=day,
        region=(region or "").strip() or None,
        text_lang=normalise(text or lang),
    )
    if done in ("publish", "correct"):
        context["notice"] = t(f"web.bl_done_{done}", lang)
    return render(request, "bulletin.html", context)


@router.get("/bulletin/{day}/text.{fmt}")
def download(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    day: Day,
    fmt: Annotated[str, Path(max_length=8)],
    region: Region = None,
) -> Response:
    """The text as Markdown, XLSX or the standalone HTML page, as a download."""
    if fmt not in DOWNLOADS:
        raise InvalidInput.one("format", "bulletin.unknown_format", value=fmt[:8])
    lang = request_language(request)
    body = bulletin_service.render(
        db_session=session, principal=principal, day=day, lang=lang, fmt=fmt, region_code=region
    )
    name = f"bulletin-{day.isoformat()}-{lang}.{fmt}"
    return Response(
        content=body,
        media_type=formats.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/bulletin/{day}/charts/{chart}")
def chart(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    day: Day,
    chart: Annotated[str, Path(max_length=16)],
    region: Region = None,
) -> Response:
    """``curve.png``, ``curve.svg``, ``cities.png`` or ``cities.svg`` from the service."""
    name, _, kind = chart.partition(".")
    if kind not in charts.KINDS:
        raise InvalidInput.one("chart", "bulletin.unknown_chart", value=chart)
    data = bulletin_service.chart(
        db_session=session,
        principal=principal,
        day=day,
        name=name,
        kind=kind,
        lang=request_language(request),
        region_code=region,
    )
    return Response(content=data, media_type=charts.KINDS[kind])


def _back(day: date, region: str, done: str) -> str:
    where = f"&region={region}" if region else ""
    return f"/bulletin?day={day.isoformat()}{where}&done={done}"


def _forms(day: date, region: str) -> FormPage:
    """The bulletin of ``day`` (and ``region``) with its forms."""
    return FormPage(
        "bulletin.html",
        lambda request, session, principal: bulletin_view(
            session, principal, day=day, region=region or None, text_lang=request_language(request)
        ),
    )


@router.post("/bulletin/{day}/publish", response_class=HTMLResponse)
def publish(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    day: Day,
    csrf: Csrf = "",
    region: FormRegion = "",
) -> Response:
    return _forms(day, region).submit(
        request,
        session,
        principal,
        csrf,
        lambda: bulletin_service.publish(
            db_session=session, principal=principal, day=day, region_code=region or None
        ),
        done=_back(day, region, "publish"),
    )


@router.post("/bulletin/{day}/correct", response_class=HTMLResponse)
def correct(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    day: Day,
    csrf: Csrf = "",
    region: FormRegion = "",
    reason: Annotated[str, Form(max_length=bulletin_service.MAX_REASON)] = "",
) -> Response:
    return _forms(day, region).submit(
        request,
        session,
        principal,
        csrf,
        lambda: bulletin_service.correct(
            db_session=session,
            principal=principal,
            day=day,
            reason=reason,
            region_code=region or None,
        ),
        done=_back(day, region, "correct"),
    )
