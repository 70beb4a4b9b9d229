"""Tube boxes: packing at the site, the courier's hand-over, the lab's receipt, and each box's
reconciliation (missing and extra tubes, counts that differ), through
:mod:`bastion.testing.transport` exactly as ``/api/v1/boxes`` does.

Forms appear by permission: packing needs scans.write (site staff), receiving results.write (a
lab); every form posts to the service, which refuses what the API refuses.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core.auth import Perm, Principal
from bastion.core.i18n import t
from bastion.testing import transport
from bastion.web.common import Viewer, WebRoute, render
from bastion.web.forms import Csrf, FormPage, form_codes, form_int
from bastion.web.sampling import sites_for

router = APIRouter(include_in_schema=False, route_class=WebRoute)

Text = Annotated[str, Form(max_length=64)]
Codes = Annotated[str, Form(max_length=transport.MAX_TUBES_PER_BOX * 70)]
MOST = transport.MAX_TUBES_PER_BOX


def boxes_view(session: Session, principal: Principal, code: str | None) -> dict[str, Any]:
    """The page: the box asked for (with its reconciliation) and which forms this user gets."""
    principal.require(Perm.transport_write)
    box = transport.get_box(db_session=session, principal=principal, code=code) if code else None
    can_pack = principal.can(Perm.scans_write)
    return {
        "box": box,
        "code": code or "",
        "can_pack": can_pack,
        "can_receive": principal.can(Perm.results_write),
        "sites": sites_for(session, principal) if can_pack else [],
    }


FORMS = FormPage(
    "boxes.html", lambda _request, session, principal: boxes_view(session, principal, None)
)


@router.get("/boxes", response_class=HTMLResponse)
def boxes_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    code: Annotated[str | None, Query(max_length=64)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    context = boxes_view(session, principal, code.strip() if code else None)
    if done in ("pack", "pick_up", "receive"):
        context["notice"] = t(f"web.box_done_{done}", request_language(request))
    return render(request, "boxes.html", context)


@router.post("/boxes/pack", response_class=HTMLResponse)
def pack(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Csrf = "",
    code: Text = "",
    round_ref: Annotated[str, Form(alias="round", max_length=64)] = "",
    site: Text = "",
    tubes: Codes = "",
    declared: Text = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: transport.pack_box(
            db_session=session,
            principal=principal,
            code=code.strip(),
            round_ref=round_ref.strip(),
            site_code=site.strip(),
            tubes=form_codes("tubes", tubes, most=MOST) or [],
            declared_tubes=form_int("declared_tubes", declared, high=MOST) or 0,
        ),
        done=lambda view: f"/boxes?code={view.box.code}&done=pack",
        form={"code": code, "round": round_ref, "site": site, "tubes": tubes},
    )


@router.post("/boxes/pick-up", response_class=HTMLResponse)
def pick_up(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Csrf = "",
    code: Text = "",
    counted: Text = "",
    tubes: Codes = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: transport.pick_up_box(
            db_session=session,
            principal=principal,
            code=code.strip(),
            tubes_counted=form_int("tubes_counted", counted, high=MOST),
            tubes=form_codes("tubes", tubes, most=MOST),
        ),
        done=lambda view: f"/boxes?code={view.box.code}&done=pick_up",
        form={"code": code, "tubes": tubes},
    )


@router.post("/boxes/receive", response_class=HTMLResponse)
def receive(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Csrf = "",
    code: Text = "",
    lab: Text = "",
    counted: Text = "",
    tubes: Codes = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: transport.receive_box(
            db_session=session,
            principal=principal,
            code=code.strip(),
            lab_code=lab.strip(),
            tubes_counted=form_int("tubes_counted", counted, high=MOST),
            tubes=form_codes("tubes", tubes, most=MOST),
        ),
        done=lambda view: f"/boxes?code={view.box.code}&done=receive",
        form={"code": code, "lab": lab, "tubes": tubes},
    )
