"""Administration: users (list, create), roles and what each may do, the regions below the
user's, the audit log (view, verify) — the accounts and audit services, as ``/api/v1/users`` and
``/api/v1/audit/verify`` call them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from bastion.accounts import service as account_service
from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.audit import service as audit_service
from bastion.audit.models import AuditEntry
from bastion.core.auth import ROLE_PERMISSIONS, ROLES, Perm, Principal
from bastion.core.i18n import Language, t
from bastion.regions import service as region_service
from bastion.web.common import Viewer, WebRoute, render
from bastion.web.forms import FormPage
from bastion.web.views import region_name

router = APIRouter(include_in_schema=False, route_class=WebRoute)

AUDIT_PAGE = 200
Field = Annotated[str, Form(max_length=200)]


def users_view(session: Session, principal: Principal, lang: Language) -> dict[str, Any]:
    users = account_service.list_users(db_session=session, principal=principal)
    regions = region_service.children(
        db_session=session, principal=principal, code=principal.region_code
    )
    own = region_service.read(db_session=session, principal=principal, code=principal.region_code)
    return {
        "users": users,
        "can_manage": principal.can(Perm.users_manage),
        "roles": [
            {"role": r, "perms": sorted(p.value for p in ROLE_PERMISSIONS[r])} for r in ROLES
        ],
        "regions": [
            {"code": r.code, "name": region_name(r, lang), "level": r.level}
            for r in [own, *regions]
        ],
    }


USER_FORMS = FormPage(
    "users.html",
    lambda request, session, principal: users_view(session, principal, request_language(request)),
)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, session: SessionDep, principal: Viewer) -> Response:
    lang = request_language(request)
    context = users_view(session, principal, lang)
    if request.query_params.get("created"):
        context["notice"] = t("web.user_created", lang, username=request.query_params["created"])
    return render(request, "users.html", context)


@router.post("/admin/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    csrf: Field = "",
    username: Field = "",
    display_name: Field = "",
    password: Field = "",
    role: Field = "",
    region_code: Field = "",
) -> Response:
    return USER_FORMS.submit(
        request,
        session,
        principal,
        csrf,
        lambda: account_service.create(
            db_session=session,
            principal=principal,
            username=username.strip(),
            password=password,
            role=role,
            region_code=region_code.strip(),
            display_name=display_name.strip(),
        ),
        done=lambda user: f"/admin/users?created={user.username}",
        form={"username": username, "display_name": display_name, "region_code": region_code},
    )


def audit_entries(session: Session, principal: Principal, limit: int) -> Sequence[AuditEntry]:
    """The newest entries about the user's region (entries without a region — system acts —
    only for a user whose region is the root of the tree). A read-only view of the log."""
    principal.require(Perm.audit_read)
    visible = principal.scope.clause(AuditEntry.region_code)
    if len(principal.ancestors) <= 1:
        visible = or_(visible, AuditEntry.region_code.is_(None))
    else:
        visible = and_(AuditEntry.region_code.is_not(None), visible)
    stmt = select(AuditEntry).where(visible).order_by(AuditEntry.seq.desc()).limit(limit)
    return session.execute(stmt).scalars().all()


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    session: SessionDep,
    principal: Viewer,
    verify: Annotated[bool, Query()] = False,
) -> Response:
    context: dict[str, Any] = {"entries": audit_entries(session, principal, AUDIT_PAGE)}
    if verify:
        context["report"] = audit_service.verify(db_session=session)
    return render(request, "audit.html", context)
