"""Server-rendered pages: login, logout, home. Same services as the API; no logic here."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from bastion.accounts import service as account_service
from bastion.api.deps import SessionDep
from bastion.api.errors import request_language
from bastion.core import crypto
from bastion.core.auth import Principal
from bastion.core.config import get_settings
from bastion.core.errors import BastionError, NotAuthenticated
from bastion.core.i18n import Language, t
from bastion.web import views

HERE = Path(__file__).parent
SESSION_COOKIE = "bastion_session"
CSRF_COOKIE = "bastion_csrf"
CSRF_PURPOSE = "csrf"

templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


def _csrf_seed(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)


def render(
    request: Request, name: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    lang = request_language(request)
    seed = _csrf_seed(request)
    ctx = {
        "lang": lang,
        "t": lambda key, **kw: t(key, lang, **kw),
        "csrf_token": crypto.sign({"seed": seed}, ttl_seconds=4 * 3600, purpose=CSRF_PURPOSE),
        **context,
    }
    response = templates.TemplateResponse(request, name, ctx, status_code=status)
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(CSRF_COOKIE, seed, httponly=True, samesite="strict")
    if "lang" in request.query_params:
        response.set_cookie("lang", lang, samesite="lax", max_age=365 * 86400)
    return response


def check_csrf(request: Request, token: str) -> None:
    body = crypto.unsign(token, purpose=CSRF_PURPOSE)
    if body is None or body.get("seed") != request.cookies.get(CSRF_COOKIE):
        raise NotAuthenticated("auth.csrf")


def web_principal(request: Request, session: SessionDep) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        user = account_service.user_from_token(db_session=session, token=token)
    except NotAuthenticated:
        return None
    return account_service.principal_for(db_session=session, user=user)


WebPrincipal = Annotated[Principal | None, Depends(web_principal)]


def _to_login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", {"next": _safe_next(next), "error": None})


def _safe_next(target: str) -> str:
    """Only local paths: never redirect off-site after login."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
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
    csrf: Annotated[str, Form()] = "",
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
        return _to_login(request)
    return render(request, "home.html", views.home(session, principal, request_language(request)))


def install(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(router)
