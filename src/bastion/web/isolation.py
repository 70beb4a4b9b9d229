"""The isolation board: sites (beds taken against beds, the basics and a form to report them),
placements with filters, who is due for release today (release, or override with a reason for
the command), and today's test tasks with a form to record a result — through
:mod:`bastion.isolation` exactly as ``/api/v1/isolation`` does (same services, same refusals).

Forms appear by permission: reporting basics, recording tests and releasing need
isolation.write; the override field is shown to those holding the override permission
(zones.write, the command), who may release early with a reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.i18n import Language, t
from bastion.isolation import service, sites, views
from bastion.isolation.enums import (
    Basic,
    BasicStatus,
    PlacementReason,
    PlacementStatus,
    Setting,
    TestResult,
)
from bastion.web.common import NavItem, Viewer, WebRoute, add_nav, render
from bastion.web.forms import Csrf, FormPage, form_int

router = APIRouter(include_in_schema=False, route_class=WebRoute)
add_nav(
    NavItem(
        "/isolation",
        "web.nav_isolation",
        Perm.isolation_read,
        frozenset({"isolation", "commander", "analyst", "admin"}),
    )
)

Text = Annotated[str, Form(max_length=64)]
Note = Annotated[str, Form(max_length=400)]
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Filter = Annotated[str | None, Query(max_length=32)]
PAGE = 50
#: Test tasks listed on the board (a province's day can hold thousands; the count says so).
MOST_TESTS = 200
DONE = ("basic", "test", "release")


def _choice(value: str | None, allowed: type[Any]) -> str | None:
    """A filter from the query string: one of the vocabulary's values, else none."""
    return value if value in allowed.__members__ else None


def isolation_summary(
    session: Session, principal: Principal, region_code: str | None = None
) -> dict[str, Any]:
    """For the dashboard: beds and beds taken across the sites of the region (the caller's by
    default), sites with a basic reported as a problem, and how many placements are due for
    release today."""
    rows = sites.list_sites(db_session=session, principal=principal, region_code=region_code)
    taken = sites.occupancy(session, [s.id for s in rows])
    views_ = [sites.to_read(session, s, taken[s.id]) for s in rows]
    _, due = service.list_placements(
        db_session=session,
        principal=principal,
        region_code=region_code,
        due_on=clock.today(),
        limit=1,
    )
    return {
        "sites": len(views_),
        "beds": sum(s.beds for s in views_),
        "occupied": sum(s.occupied for s in views_),
        "problems": sum(1 for s in views_ if any(b.status != "ok" for b in s.basics)),
        "due": due,
    }


def board_view(
    session: Session,
    principal: Principal,
    lang: Language,
    *,
    status: str | None = None,
    reason: str | None = None,
    setting: str | None = None,
    offset: int = 0,
) -> dict[str, Any]:
    """Everything the board shows, from the same services and views as the API."""
    principal.require(Perm.isolation_read)
    site_rows = sites.list_sites(db_session=session, principal=principal)
    taken = sites.occupancy(session, [s.id for s in site_rows])
    today = clock.today()
    due_rows, due_total = service.list_placements(
        db_session=session, principal=principal, due_on=today, limit=100
    )
    rows, total = service.list_placements(
        db_session=session,
        principal=principal,
        status=status,
        reason=reason,
        setting=setting,
        offset=offset,
        limit=PAGE,
    )
    tests = service.due_tests(db_session=session, principal=principal, day=today)
    can_write = principal.can(Perm.isolation_write)
    return {
        "today": today,
        "sites": [sites.to_read(session, s, taken[s.id]) for s in site_rows],
        "due": views.placements(session, principal, due_rows, detail=True, lang=lang),
        "due_total": due_total,
        "placements": views.placements(session, principal, rows, lang=lang),
        "total": total,
        "offset": offset,
        "page": PAGE,
        "filters": {"status": status or "", "reason": reason or "", "setting": setting or ""},
        "tests": views.day_test_tasks(session, principal, tests[:MOST_TESTS]),
        "tests_total": len(tests),
        "can_write": can_write,
        "can_release": can_write or principal.can(service.OVERRIDE_PERM),
        "can_override": principal.can(service.OVERRIDE_PERM),
        "basics": list(Basic.__members__),
        "basic_statuses": list(BasicStatus.__members__),
        "statuses": list(PlacementStatus.__members__),
        "reasons": list(PlacementReason.__members__),
        "settings": list(Setting.__members__),
        "results": list(TestResult.__members__),
    }


FORMS = FormPage(
    "isolation.html",
    lambda request, session, principal: board_view(session, principal, request_language(request)),
)


@router.get("/isolation", response_class=HTMLResponse)
def isolation_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    status: Filter = None,
    reason: Filter = None,
    setting: Filter = None,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    lang = request_language(request)
    context = board_view(
        session,
        principal,
        lang,
        status=_choice(status, PlacementStatus),
        reason=_choice(reason, PlacementReason),
        setting=_choice(setting, Setting),
        offset=offset,
    )
    if done in DONE:
        context["notice"] = t(f"web.isolation_done_{done}", lang)
    return render(request, "isolation.html", context)


@router.post("/isolation/basics", response_class=HTMLResponse)
def update_basic(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Csrf = "",
    site: Text = "",
    item: Text = "",
    status: Text = "",
    note: Note = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: sites.update_basic(
            db_session=session,
            principal=principal,
            code=site.strip(),
            item=item,
            status=status,
            note=note,
        ),
        done="/isolation?done=basic",
    )


@router.post("/isolation/placements/{placement_id}/release", response_class=HTMLResponse)
def release(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    placement_id: RowId,
    csrf: Csrf = "",
    override_reason: Note = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: service.release(
            db_session=session,
            principal=principal,
            placement_id=placement_id,
            override_reason=override_reason.strip() or None,
        ),
        done="/isolation?done=release",
    )


@router.post("/isolation/placements/{placement_id}/tests", response_class=HTMLResponse)
def record_test(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    placement_id: RowId,
    csrf: Csrf = "",
    day_no: Text = "",
    result: Text = "",
    tube_barcode: Text = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: service.record_test(
            db_session=session,
            principal=principal,
            placement_id=placement_id,
            day_no=form_int("day_no", day_no, low=1, high=1000) or 0,
            result=result.strip() or None,
            tube_barcode=tube_barcode.strip() or None,
        ),
        done="/isolation?done=test",
    )
