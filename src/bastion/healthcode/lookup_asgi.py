"""The lean ASGI path of the hot lookups (ADR 0007).

Three endpoints carry the load: ``GET /api/v1/codes/mine`` (a resident's code),
``GET /api/v1/codes/lookup?person=TOKEN`` (staff) and ``POST /api/v1/codes/verify`` (a
checkpoint's online check). They are plain ASGI callables: :class:`FastPaths`, a middleware in
front of FastAPI's router, sends an exact path straight to its handler (no routing, no dependency
injection, no pydantic), and the same callables are also mounted as routes so the app lists
them. Authentication is the API's own: the bearer token through the per-app principal cache,
resolved from the database on a miss. Admission: a token bucket and a cap on requests waiting
for the database answer the excess 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import orjson
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool

from bastion.accounts import service as account_service
from bastion.api.principals import PrincipalCache
from bastion.core.auth import ROLE_PERMISSIONS, Perm, Principal
from bastion.core.errors import (
    BastionError,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
)
from bastion.core.i18n import Language, normalise
from bastion.healthcode.lookup import CodeLookup, Entry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MINE = "/api/v1/codes/mine"
LOOKUP = "/api/v1/codes/lookup"
VERIFY = "/api/v1/codes/verify"
MAX_BODY = 4096
_JSON = b"application/json"
_PROBLEM = b"application/problem+json"


class Overloaded(BastionError):
    status = 429
    default_key = "code.overloaded"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _language(scope: Scope) -> Language:
    query = scope.get("query_string", b"")
    if b"lang=" in query:
        values = parse_qs(query.decode("latin-1")).get("lang")
        if values:
            return normalise(values[0])
    cookie = _header(scope, b"cookie")
    if cookie and "lang=" in cookie:
        for part in cookie.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "lang":
                return normalise(value)
    return normalise(_header(scope, b"accept-language"))


async def _answer(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = _JSON,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, err: BastionError, lang: Language, retry_after: int = 1) -> None:
    body: dict[str, Any] = {"status": err.status, "title": err.message(lang), "code": err.key}
    if err.problems:
        body["errors"] = [p.render(lang) for p in err.problems]
    extra: tuple[tuple[bytes, bytes], ...] = ()
    if err.status == 401:
        extra = ((b"www-authenticate", b"Bearer"),)
    elif err.status == 429:
        extra = ((b"retry-after", str(retry_after).encode()),)
    await _answer(send, err.status, orjson.dumps(body), _PROBLEM, extra)


class _Slow:
    """A place among the requests waiting for the database (429 when none is free)."""

    def __init__(self, lookup: CodeLookup) -> None:
        self.lookup = lookup

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.lookup.limiter.enter_slow():
            raise Overloaded()
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except PoolTimeout:
            # Every database connection is busy: shed like the limiter, never a 500.
            raise Overloaded() from None
        finally:
            self.lookup.limiter.leave_slow()


#: Polls running in the background (a reference keeps each task alive until it ends).
_TASKS: set[asyncio.Task[None]] = set()


def _background(poll: Callable[..., None]) -> None:
    async def run() -> None:
        await run_in_threadpool(poll, claimed=True)

    task = asyncio.get_running_loop().create_task(run())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


def _resolve(factory: Callable[[], Any], token: str) -> Principal:
    with factory() as session:
        user = account_service.user_from_token(db_session=session, token=token)
        return account_service.principal_for(db_session=session, user=user)


async def _principal(scope: Scope, slow: _Slow) -> Principal:
    token = _bearer(scope)
    state = scope["app"].state
    cache: PrincipalCache = state.principals
    principal = cache.get(token)
    if principal is None:
        principal = await slow.run(_resolve, state.session_factory, token)
        cache.put(token, principal)
    return principal


async def _entry(
    lookup: CodeLookup, slow: _Slow, *, person_id: int | None = None, token: str | None = None
) -> Entry | None:
    hit = lookup.cached(person_id) if person_id is not None else lookup.cached_token(token or "")
    if hit is not None:
        return hit
    found: Entry | None = await slow.run(lookup.load, person_id=person_id, token=token)
    return found


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise InvalidInput.one("payload", "code.payload_too_long")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _bearer(scope: Scope) -> str:
    auth = _header(scope, b"authorization")
    if not auth or auth[:7].lower() != "bearer ":
        raise NotAuthenticated()
    return auth[7:].strip()


async def _mine(lookup: CodeLookup, slow: _Slow, scope: Scope, receive: Receive) -> bytes:
    bearer = _bearer(scope)
    hit = lookup.cached_resident(bearer)
    role, person_id = hit if hit is not None else await slow.run(lookup.load_resident, bearer)
    if Perm.self_read not in ROLE_PERMISSIONS.get(role, frozenset()):
        raise Forbidden("error.permission_missing", permission=Perm.self_read.value, role=role)
    if person_id is None:
        raise NotFound("code.no_person")
    entry = await _entry(lookup, slow, person_id=person_id)
    if entry is None:
        raise NotFound("code.no_person")
    if not lookup.has_signer():
        await slow.run(lookup.ensure_signer)
    return lookup.resident_body(entry, _language(scope))


async def _lookup(lookup: CodeLookup, slow: _Slow, scope: Scope, receive: Receive) -> bytes:
    principal = await _principal(scope, slow)
    principal.require(Perm.healthcode_read)
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("person")
    token = values[0].strip() if values else ""
    if not token or len(token) > 64:
        raise InvalidInput.one("person", "code.person_required")
    entry = await _entry(lookup, slow, token=token)
    if entry is None:
        raise NotFound("code.person_unknown")
    principal.require_region(entry.region_code)
    return lookup.staff_body(entry, _language(scope))


async def _verify(lookup: CodeLookup, slow: _Slow, scope: Scope, receive: Receive) -> bytes:
    principal = await _principal(scope, slow)
    principal.require(Perm.healthcode_read)
    try:
        data = orjson.loads(await _read_body(receive))
    except orjson.JSONDecodeError:
        data = None
    payload = data.get("payload") if isinstance(data, dict) else None
    if not isinstance(payload, str) or not payload.strip():
        raise InvalidInput.one("payload", "code.payload_required")
    if not lookup.public_keys():
        await slow.run(lookup.ensure_signer)
    verdict = lookup.verdict(payload)
    current = None
    if verdict.ok and verdict.claims is not None:
        current = await _entry(lookup, slow, token=verdict.claims.person)
    return orjson.dumps(lookup.verify_view(verdict, current, _language(scope)))


Work = Callable[[CodeLookup, _Slow, Scope, Receive], Awaitable[bytes]]


class Endpoint:
    """One hot endpoint as a plain ASGI app (also mountable as a Starlette route)."""

    def __init__(self, method: str, work: Work) -> None:
        self.method = method
        self.work = work

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lookup: CodeLookup = scope["app"].state.codes
        if scope["method"] != self.method and not (
            scope["method"] == "HEAD" and self.method == "GET"
        ):
            body = orjson.dumps({"status": 405, "title": "Method Not Allowed", "code": ""})
            await _answer(send, 405, body, _PROBLEM, ((b"allow", self.method.encode()),))
            return
        if not lookup.limiter.admit():
            await _problem(
                send, Overloaded(), _language(scope), lookup.settings.retry_after_seconds
            )
            return
        slow = _Slow(lookup)
        try:
            if lookup.due() and lookup.claim_poll():
                if lookup.settings.poll_in_background and lookup.ready():
                    _background(lookup.poll)
                else:
                    await run_in_threadpool(lookup.poll, claimed=True)
            body = await self.work(lookup, slow, scope, receive)
        except BastionError as err:
            await _problem(send, err, _language(scope), lookup.settings.retry_after_seconds)
            return
        await _answer(send, 200, body)


ENDPOINTS: dict[str, Endpoint] = {
    MINE: Endpoint("GET", _mine),
    LOOKUP: Endpoint("GET", _lookup),
    VERIFY: Endpoint("POST", _verify),
}


class FastPaths:
    """Middleware: exact hot paths go straight to their handler; everything else to the app."""

    def __init__(self, app: ASGIApp, paths: dict[str, Endpoint] | None = None) -> None:
        self.app = app
        self.paths = ENDPOINTS if paths is None else paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self.paths.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_server() -> ASGIApp:
    """The app for a production server (``bastion serve``; or ``granian --interface asgi
    --factory bastion.healthcode.lookup_asgi:create_server``): the hot paths (health-code
    lookups, the live sampling API) answered before FastAPI's own entry (its telemetry,
    body-limit and error middleware cost more than the lookup itself), everything else by the
    full app."""
    from bastion.api import scanpath
    from bastion.api.app import create_app

    app = create_app()
    fast = ENDPOINTS
    scans = scanpath.ScanFastPath(app)  # answers POST of its path, hands the rest to the app

    async def server(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = fast.get(scope["path"])
            if handler is not None:
                scope["app"] = app
                await handler(scope, receive, send)
                return
            if scope["path"] == scanpath.PATH:
                scope["app"] = app
                await scans(scope, receive, send)
                return
        await app(scope, receive, send)

    # Everything built so far (modules, the app, its routes and models: some 240,000 objects)
    # lives as long as the process. Left to the collector, each full collection walked them all
    # again: 160-185 ms with the event loop stopped, every 2-3 s under load, which was the whole
    # of hello-world's p99 (160 ms; 10 ms once frozen). Frozen, the collector skips them.
    gc.collect()
    gc.freeze()
    return server
