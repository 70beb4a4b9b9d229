"""Rounds, sampling sites and labs (command staff): list them, open and close rounds, register
sites and labs — :mod:`bastion.testing.service`, as ``/api/v1/rounds``, ``/sites`` and ``/labs``
call it. Forms typed in local time (Asia/Shanghai by default) become aware instants here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import InvalidInput
from bastion.core.i18n import t
from bastion.testing import service as testing_service
from bastion.testing.models import Lab
from bastion.testing.schemas import LabCreate, RoundCreate, SiteCreate
from bastion.web.common import Viewer, WebRoute, render
from bastion.web.forms import FormPage, form_int
from bastion.web.sampling import sites_for

router = APIRouter(include_in_schema=False, route_class=WebRoute)

Field = Annotated[str, Form(max_length=200)]
MAX_LABS = 200


def labs_for(session: Session, principal: Principal) -> Sequence[Lab]:
    """Active labs inside the user's region (a read-only view of the lab table)."""
    principal.require(Perm.testing_read)
    stmt = (
        select(Lab)
        .where(Lab.active, principal.scope.clause(Lab.region_code))
        .order_by(Lab.code)
        .limit(MAX_LABS)
    )
    return session.execute(stmt).scalars().all()


def rounds_view(session: Session, principal: Principal) -> dict[str, Any]:
    principal.require(Perm.testing_read)
    return {
        "rounds": testing_service.list_rounds(db_session=session, principal=principal),
        "sites": sites_for(session, principal),
        "labs": labs_for(session, principal),
        "can_rounds": principal.can(Perm.rounds_manage),
        "can_sites": principal.can(Perm.sites_manage),
        "can_labs": principal.can(Perm.labs_manage),
    }


def local_moment(field_name: str, value: str, *, required: bool) -> datetime | None:
    """A ``datetime-local`` form value, read in the deployment's time zone."""
    text = value.strip()
    if not text:
        if required:
            raise InvalidInput.one(field_name, "field.required")
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput.one(field_name, "field.bad_datetime", value=text[:40]) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=clock.local_tz())


FORMS = FormPage(
    "rounds.html", lambda _request, session, principal: rounds_view(session, principal)
)


@router.get("/rounds", response_class=HTMLResponse)
def rounds_page(request: Request, session: SessionDep, principal: Viewer) -> Response:
    context = rounds_view(session, principal)
    done = request.query_params.get("done")
    if done in ("round", "closed", "site", "lab"):
        context["notice"] = t(f"web.created_{done}", request_language(request))
    return render(request, "rounds.html", context)


@router.post("/rounds", response_class=HTMLResponse)
def open_round(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Field = "",
    code: Field = "",
    name: Field = "",
    region_code: Field = "",
    starts_at: Field = "",
    deadline_at: Field = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: testing_service.create_round(
            db_session=session,
            principal=principal,
            data=RoundCreate(
                code=code.strip(),
                name=name.strip(),
                region_code=region_code.strip(),
                starts_at=local_moment("starts_at", starts_at, required=True) or clock.now(),
                deadline_at=local_moment("deadline_at", deadline_at, required=False),
            ),
        ),
        done="/rounds?done=round",
    )


@router.post("/rounds/{ref}/close", response_class=HTMLResponse)
def close_round(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    ref: Annotated[str, Path(max_length=40)],
    csrf: Field = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: testing_service.close_round(db_session=session, principal=principal, ref=ref),
        done="/rounds?done=closed",
    )


@router.post("/sites", response_class=HTMLResponse)
def create_site(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Field = "",
    code: Field = "",
    name: Field = "",
    region_code: Field = "",
    address: Field = "",
    capacity_per_hour: Field = "",
    teams: Field = "",
    grids: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: testing_service.create_site(
            db_session=session,
            principal=principal,
            data=SiteCreate(
                code=code.strip(),
                name=name.strip(),
                region_code=region_code.strip(),
                address=address.strip(),
                capacity_per_hour=form_int("capacity_per_hour", capacity_per_hour) or 0,
                teams=form_int("teams", teams, high=1000) or 1,
                grids=grids.replace(",", " ").split(),
            ),
        ),
        done="/rounds?done=site",
    )


@router.post("/labs", response_class=HTMLResponse)
def create_lab(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Field = "",
    code: Field = "",
    name: Field = "",
    region_code: Field = "",
    daily_capacity: Field = "",
) -> Response:
    return FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: testing_service.create_lab(
            db_session=session,
            principal=principal,
            data=LabCreate(
                code=code.strip(),
                name=name.strip(),
                region_code=region_code.strip(),
                daily_capacity=form_int("daily_capacity", daily_capacity, high=10**8) or 0,
            ),
        ),
        done="/rounds?done=lab",
    )
