"""The resident's page (self.read): my health code (QR image, colour, the reason in plain words,
valid until), my test results, contest my code, and the proxies I have agreed to.

The code comes from the health-code services (the status as ``/api/v1/codes/status`` reads it,
the signed payload and QR as ``/api/v1/codes/mine`` makes them); the contest is the review
request of :func:`bastion.healthcode.manual.contest`.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core.auth import Perm, Principal
from bastion.core.errors import NotFound
from bastion.core.i18n import Language, t
from bastion.healthcode import manual
from bastion.healthcode import views as code_views
from bastion.healthcode.lookup import CodeLookup
from bastion.testing.models import Tube, TubeMember
from bastion.web.common import NavItem, Viewer, WebRoute, add_nav, render
from bastion.web.forms import Csrf, FormPage

router = APIRouter(include_in_schema=False, route_class=WebRoute)
add_nav(NavItem("/me", "web.nav_me", Perm.self_read))

COLOURS = {"green": "#0a7d32", "yellow": "#b58900", "red": "#c0262d"}
RESULTS = 30


def qr_svg(payload: str, colour: str) -> Markup:
    """The payload as an inline SVG QR code (segno, level M, drawn in the code's colour)."""
    buffer = io.BytesIO()
    segno.make(payload, error="m").save(
        buffer, kind="svg", scale=6, dark=COLOURS.get(colour, "#000"), border=2, xmldecl=False
    )
    return Markup(buffer.getvalue().decode())  # noqa: S704 - segno's own markup, no input


def my_code(lookup: CodeLookup | None, principal: Principal) -> dict[str, Any] | None:
    """The signed code the checkpoint scans (as ``/api/v1/codes/mine``), or None when the
    code service is not running in this process."""
    if lookup is None or principal.person_id is None:
        return None
    entry = lookup.entry(person_id=principal.person_id)
    if entry is None:
        return None
    lookup.ensure_signer()
    signed = lookup.signed(entry)
    return {
        "payload": signed.payload,
        "expires_at": signed.expires_at,
        "qr": qr_svg(signed.payload, entry.colour),
    }


def my_results(session: Session, principal: Principal) -> list[Any]:
    """The tubes the caller was sampled into and their results (newest first). Only the tube's
    own figures: never who else shared a pooled tube."""
    principal.require(Perm.self_read)
    if principal.person_id is None:
        raise NotFound("healthcode.no_person")
    rows = session.execute(
        select(
            Tube.barcode,
            Tube.kind,
            TubeMember.scanned_at,
            Tube.result,
            Tube.tested_at,
            TubeMember.retest,
        )
        .join(Tube, Tube.id == TubeMember.tube_id)
        .where(TubeMember.person_id == principal.person_id)
        .order_by(TubeMember.scanned_at.desc(), TubeMember.id.desc())
        .limit(RESULTS)
    ).all()
    return list(rows)


def resident_view(
    session: Session, principal: Principal, lang: Language, lookup: CodeLookup | None
) -> dict[str, Any]:
    principal.require(Perm.self_read)
    if principal.person_id is None:
        # An account not (yet) linked to a registered person: nothing to show but how to link.
        return {"unlinked": True, "status": None, "code": None, "results": [], "bindings": []}
    status = code_views.get_status(
        db_session=session, principal=principal, person_id=None, lang=lang
    )
    bindings = code_views.list_bindings(db_session=session, principal=principal)
    return {
        "status": status,
        "code": my_code(lookup, principal),
        "results": my_results(session, principal),
        "bindings": [
            {
                "id": b.id,
                "role": "holder" if b.holder_person_id == principal.person_id else "proxy",
                "relation": b.relation,
                "status": b.status,
                "since": b.decided_at or b.requested_at,
            }
            for b in bindings
        ],
        "can_contest": status.colour != "green",
    }


def _lookup(request: Request) -> CodeLookup | None:
    return getattr(request.app.state, "codes", None)


FORMS = FormPage(
    "resident.html",
    lambda request, session, principal: resident_view(
        session, principal, request_language(request), _lookup(request)
    ),
)


@router.get("/me", response_class=HTMLResponse)
def resident_page(request: Request, session: SessionDep, principal: Viewer) -> Response:
    lang = request_language(request)
    context = resident_view(session, principal, lang, _lookup(request))
    if request.query_params.get("done") == "contest":
        context["notice"] = t("web.rs_contested", lang)
    return render(request, "resident.html", context)


@router.post("/me/contest", response_class=HTMLResponse)
def contest(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Csrf = "",
    statement: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Ask for a review of my current code (a yellow or red one), in my own words."""
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: manual.contest(db_session=session, principal=principal, statement=statement),
        done="/me?done=contest",
    )
