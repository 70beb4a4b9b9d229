"""Server-rendered pages: login, logout, home, and the page modules' routers.

Same services as the API; no logic here. Each page lives in its own module (``web/<page>.py``,
its view helpers beside it) and is included by :func:`install`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from bastion.accounts import service as account_service
from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core.config import get_settings
from bastion.core.errors import BastionError
from bastion.core.i18n import Language, t
from bastion.web import views
from bastion.web.common import (
    CSRF_COOKIE,
    HERE,
    SESSION_COOKIE,
    WebPrincipal,
    WebRoute,
    check_csrf,
    render,
    to_login,
)

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "install", "router"]

router = APIRouter(include_in_schema=False, route_class=WebRoute)


def _safe_next(target: str) -> str:
    """Only local paths: never redirect off-site after login."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", expired: bool = False) -> Response:
    lang = request_language(request)
    notice = t("auth.bad_token", lang) if expired else None
    return render(request, "login.html", {"next": _safe_next(next), "error": notice})


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=500)] = "",
    csrf: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    lang: Language = request_language(request)
    try:
        check_csrf(request, csrf)
        user = account_service.authenticate(
            db_session=session, username=username, password=password
        )
    except BastionError as err:
        return render(
            request,
            "login.html",
            {"next": _safe_next(next), "error": err.message(lang), "username": username},
            status=400 if err.key == "auth.csrf" else 401,
        )
    token, ttl = account_service.issue_token(user)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=get_settings().environment == "production",
    )
    return response


@router.post("/logout")
def logout(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    csrf: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    check_csrf(request, csrf)
    if principal is not None and principal.user_id is not None:
        user = account_service.get(db_session=session, user_id=principal.user_id)
        if user is not None:
            account_service.logout(db_session=session, user=user)
            request.app.state.principals.drop_user(user.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, principal: WebPrincipal) -> Response:
    if principal is None:
        return to_login(request, expired=SESSION_COOKIE in request.cookies)
    return render(
        request,
        "home.html",
        views.home(session, principal, request_language(request)),
        principal=principal,
    )


def install(app: FastAPI) -> None:
    from bastion.web import admin, boxes, dashboard, grid, lab, people, rounds, sampling

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
    for page in (dashboard, rounds, sampling, boxes, lab, grid, people, admin):
        app.include_router(page.router)
    from bastion.web import bulletin, isolation, protocols, transfers  # the boards

    for page in (isolation, transfers, bulletin, protocols):
        app.include_router(page.router)
    from bastion.web import cases, panels, resident  # investigator, resident, dashboard panels

    for page in (cases, resident, panels):
        app.include_router(page.router)
