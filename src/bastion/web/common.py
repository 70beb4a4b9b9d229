"""What every page shares: templates, the session cookie, CSRF, navigation by role, error pages.

A page module (``web/<page>.py``) makes ``router = APIRouter(route_class=WebRoute, ...)``, takes
the caller as ``Viewer`` (a logged-in principal, or a redirect to the login page saying why),
calls the same services as the API and renders a template. Services raise ``core.errors``;
:class:`WebRoute` turns them into an HTML page in the caller's language (or a problem JSON for
the few JSON routes the pages' scripts call), so a refusal on a page is the API's refusal.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from bastion.accounts import service as account_service
from bastion.api.deps import SessionDep
from bastion.api.errors import problem, request_language
from bastion.core import clock, crypto
from bastion.core.auth import Perm, Principal
from bastion.core.errors import BastionError, NotAuthenticated
from bastion.core.i18n import Language, t

HERE = Path(__file__).parent
SESSION_COOKIE = "bastion_session"
CSRF_COOKIE = "bastion_csrf"
CSRF_PURPOSE = "csrf"
#: Scripts (the sampling page's queue) send the form token in this header instead of a field.
CSRF_HEADER = "x-csrf-token"
CSRF_TTL = 12 * 3600

templates = Jinja2Templates(directory=HERE / "templates")


# Navigation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NavItem:
    """A link in the top navigation, shown only to roles holding ``perm`` (and, when ``roles``
    is set, only to those roles: a page meant for one kind of work, e.g. the sampling phone)."""

    path: str
    label: str
    perm: Perm
    roles: frozenset[str] | None = None

    def shown_to(self, principal: Principal) -> bool:
        if self.roles is not None and principal.role not in self.roles:
            return False
        return principal.can(self.perm)


#: In display order. Other domains append theirs with :func:`add_nav` from their page module.
NAV: list[NavItem] = [
    NavItem("/dashboard", "web.nav_dashboard", Perm.bulletin_read),
    NavItem("/rounds", "web.nav_rounds", Perm.rounds_manage),
    NavItem("/sampling", "web.nav_sampling", Perm.scans_write),
    NavItem("/boxes", "web.nav_boxes", Perm.transport_write),
    NavItem("/lab", "web.nav_lab", Perm.results_write),
    NavItem("/conflicts", "web.nav_conflicts", Perm.labs_manage),
    NavItem("/people", "web.nav_people", Perm.registry_read),
    NavItem("/grid", "web.nav_grid", Perm.registry_read, frozenset({"grid_worker", "admin"})),
    NavItem("/admin/users", "web.nav_users", Perm.users_read),
    NavItem("/admin/audit", "web.nav_audit", Perm.audit_read),
]


def add_nav(item: NavItem) -> None:
    """Add a page's link once (module reloads in tests must not duplicate it)."""
    if all(existing.path != item.path for existing in NAV):
        NAV.append(item)


def nav_for(principal: Principal | None) -> list[NavItem]:
    if principal is None:
        return []
    return [item for item in NAV if item.shown_to(principal)]


# Rendering ---------------------------------------------------------------------------------


def _csrf_seed(request: Request) -> str:
    seed = getattr(request.state, "csrf_seed", None) or request.cookies.get(CSRF_COOKIE)
    if not seed:
        seed = secrets.token_urlsafe(16)
    request.state.csrf_seed = seed
    return str(seed)


def csrf_token(request: Request) -> str:
    return crypto.sign({"seed": _csrf_seed(request)}, ttl_seconds=CSRF_TTL, purpose=CSRF_PURPOSE)


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC instant as the command's local time (Asia/Shanghai by default)."""
    return "—" if value is None else clock.to_local(value).strftime(fmt)


def lang_url(request: Request, lang: str) -> str:
    """The current page in another language (other query parameters kept). A page answering a
    form (POST) switches on the page the form came from, never on the form's own address."""
    if request.method != "GET":
        referer = urlsplit(request.headers.get("referer", ""))
        same_site = referer.netloc == request.url.netloc and referer.path.startswith("/")
        path = referer.path if same_site else "/"
        return f"{path}?{urlencode({'lang': lang})}"
    params = {k: v for k, v in request.query_params.items() if k != "lang"}
    params["lang"] = lang
    return f"{request.url.path}?{urlencode(params)}"


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    principal: Principal | None = None,
) -> HTMLResponse:
    lang = request_language(request)
    who = principal or context.get("principal") or getattr(request.state, "principal", None)
    ctx = {
        "lang": lang,
        "t": lambda key, **kw: t(key, lang, **kw),
        "csrf_token": csrf_token(request),
        "nav": nav_for(who),
        "principal": who,
        "path": request.url.path,
        "local_time": local_time,
        "lang_url": lambda code: lang_url(request, code),
        **context,
    }
    response = templates.TemplateResponse(request, name, ctx, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    if CSRF_COOKIE not in request.cookies:
        response.set_cookie(CSRF_COOKIE, _csrf_seed(request), httponly=True, samesite="strict")
    if "lang" in request.query_params:
        response.set_cookie("lang", lang, samesite="lax", max_age=365 * 86400)
    return response


# CSRF (double submit: a signed token bound to a random cookie) -------------------------------


def check_csrf(request: Request, token: str | None) -> None:
    """Refuse a form whose token is missing, forged, expired or not bound to this browser."""
    body = crypto.unsign(token or "", purpose=CSRF_PURPOSE)
    if body is None or body.get("seed") != request.cookies.get(CSRF_COOKIE):
        raise NotAuthenticated("auth.csrf")


def check_csrf_header(request: Request) -> None:
    check_csrf(request, request.headers.get(CSRF_HEADER))


# The caller --------------------------------------------------------------------------------


class LoginRequired(Exception):
    """No usable session: send the browser to the login page (``expired``: it had one)."""

    def __init__(self, *, expired: bool) -> None:
        super().__init__("login required")
        self.expired = expired


def web_principal(request: Request, session: SessionDep) -> Principal | None:
    """The principal of the session cookie, or None without a valid one."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        user = account_service.user_from_token(db_session=session, token=token)
    except NotAuthenticated:
        return None
    return account_service.principal_for(db_session=session, user=user)


def page_principal(request: Request, session: SessionDep) -> Principal:
    """The logged-in caller; otherwise :class:`LoginRequired` (expired when a cookie was sent
    but is no longer valid: its time ran out, or the user logged out or was disabled)."""
    principal = web_principal(request, session)
    if principal is None:
        raise LoginRequired(expired=SESSION_COOKIE in request.cookies)
    request.state.principal = principal
    return principal


def script_principal(request: Request) -> Principal:
    """As :func:`page_principal`, for routes that wait on other work (the scan writer): the
    session used to resolve the cookie is closed at once, not held for the whole request."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        with request.app.state.session_factory() as session:
            try:
                user = account_service.user_from_token(db_session=session, token=token)
            except NotAuthenticated:
                user = None
            if user is not None:
                return account_service.principal_for(db_session=session, user=user)
    raise LoginRequired(expired=bool(token))


WebPrincipal = Annotated[Principal | None, Depends(web_principal)]
ScriptViewer = Annotated[Principal, Depends(script_principal)]
Viewer = Annotated[Principal, Depends(page_principal)]


def to_login(request: Request, *, expired: bool = False) -> RedirectResponse:
    target = request.url.path
    if request.url.query and request.method == "GET":
        target += "?" + request.url.query
    url = f"/login?next={quote(target, safe='')}"
    if expired:
        url += "&expired=1"
    response = RedirectResponse(url, status_code=303)
    if expired:
        response.delete_cookie(SESSION_COOKIE)
    return response


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("content-type", "") or (
        "application/json" in request.headers.get("accept", "")
    )


def problems_of(err: BastionError, lang: Language) -> list[str]:
    """One line per refused field (row numbers first), for a page to list."""
    return [p.text(lang) for p in err.problems]


class WebRoute(APIRoute):
    """Pages render refusals as pages: a lost session → the login page (with a message when it
    expired), a domain error → an error page with its status, in the caller's language."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired as missing:
                if wants_json(request):
                    lang = request_language(request)
                    return problem(401, t("auth.bad_token", lang), code="auth.bad_token")
                return to_login(request, expired=missing.expired)
            except BastionError as err:
                lang = request_language(request)
                if wants_json(request):
                    return problem(
                        err.status,
                        err.message(lang),
                        errors=[p.render(lang) for p in err.problems],
                        code=err.key,
                    )
                return render(
                    request,
                    "error_page.html",
                    {"message": err.message(lang), "problems": problems_of(err, lang)},
                    status=err.status,
                )

        return guarded
