"""The live sampling API's hot path: ``POST /api/v1/scans/batches`` served beside the framework.

A city's scanners send thousands of small saves a second. Through the full FastAPI stack each
cost about a millisecond of Python before any scan was looked at (route matching over every
route of the app, dependency solving, pydantic models in and out). This path does the same work
by hand: the bearer token through the principal cache, the body parsed with orjson and checked
field by field (the refusals and field paths pydantic gave: ``groups.0.people.1``), the scans
handed to the group-commit writer, the answer written with orjson once the group is committed.
Errors are the same problem documents as everywhere else (``bastion.api.errors``).

:class:`ScanFastPath` is an ASGI middleware that answers this one path and passes everything
else on; the FastAPI route of the same path (documented in the OpenAPI schema) calls
:func:`handle` too, so both answer alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
import orjson

from bastion.accounts import service as account_service
from bastion.api.errors import PROBLEM
from bastion.api.scanwriter import Overloaded, ScanWriter
from bastion.core.auth import Perm, Principal
from bastion.core.errors import BastionError, FieldProblem, NotAuthenticated
from bastion.core.i18n import Language, normalise, t
from bastion.core.text import has_control
from bastion.testing import ingest

PATH = "/api/v1/scans/batches"
#: 1,000 groups of 20 people with long codes fit well inside this.
MAX_BODY = 4 * 1024 * 1024
MAX_GROUPS = 1000

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Answer(Exception):
    """A finished answer raised from deep inside the handler (errors)."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def language(scope: Scope) -> Language:
    """As ``errors.request_language``: ?lang=, then the lang cookie, then Accept-Language."""
    query = scope.get("query_string", b"")
    if b"lang=" in query:
        for key, value in parse_qsl(query.decode("latin-1")):
            if key == "lang" and value:
                return normalise(value)
    cookie = _header(scope, b"cookie")
    if cookie and "lang=" in cookie:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie)
        except Exception:  # noqa: BLE001 - a malformed cookie header names no language
            jar = SimpleCookie()
        if "lang" in jar and jar["lang"].value:
            return normalise(jar["lang"].value)
    return normalise(_header(scope, b"accept-language"))


def _problem(
    status: int, key: str, lang: Language, errors: list[dict[str, Any]] | None = None
) -> _Answer:
    body: dict[str, Any] = {"status": status, "title": t(key, lang), "code": key}
    if errors:
        body["errors"] = errors
    headers = {"content-type": PROBLEM}
    if status == 401:
        headers["www-authenticate"] = "Bearer"
    elif status in (429, 503):
        headers["retry-after"] = "1" if status == 429 else "2"
    return _Answer(status, body, headers)


def _domain(err: BastionError, lang: Language) -> _Answer:
    """As ``errors.install``'s handler of domain errors."""
    body: dict[str, Any] = {"status": err.status, "title": err.message(lang), "code": err.key}
    if err.problems:
        body["errors"] = [p.render(lang) for p in err.problems]
    headers = {"content-type": PROBLEM}
    if err.status == 401:
        headers["www-authenticate"] = "Bearer"
    return _Answer(err.status, body, headers)


# Validation -----------------------------------------------------------------------------------


class _Invalid:
    """Problems found in a body, as FastAPI reported them: field path, reason, pydantic-like
    detail."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, path: str, detail: str) -> None:
        self.items.append((path, detail))


def _text(value: Any, path: str, bad: _Invalid, *, min_len: int = 0, max_len: int = 0) -> str:
    if not isinstance(value, str):
        bad.add(path, "Field required" if value is _MISSING else "Input should be a valid string")
        return ""
    if len(value) < min_len:
        bad.add(path, f"String should have at least {min_len} characters")
    elif max_len and len(value) > max_len:
        bad.add(path, f"String should have at most {max_len} characters")
    elif has_control(value):
        bad.add(path, _CONTROL)
    return value


#: A NUL (or any control character) never reaches the database (PostgreSQL refuses a NUL).
_CONTROL = "String should not contain control characters"


def _moment(value: Any, path: str, bad: _Invalid) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            bad.add(path, "Input should be a valid datetime")
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    bad.add(path, "Field required" if value is _MISSING else "Input should be a valid datetime")
    return None


def _capacity(value: Any, path: str, bad: _Invalid) -> int | None:
    if value is None or value is _MISSING:
        return None
    if isinstance(value, bool):
        bad.add(path, "Input should be a valid integer")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    bad.add(path, "Input should be a valid integer")
    return None


_MISSING: Any = object()


def parse_batch(body: Any, bad: _Invalid) -> tuple[str, list[ingest.RawScan], dict[int, str]]:
    """The key, the scans (rows numbered from 1) and each row's path, from a decoded body."""
    if not isinstance(body, dict):
        bad.add("body", "Input should be a valid dictionary")
        return "", [], {}
    key = _text(body.get("key", _MISSING), "key", bad, min_len=8, max_len=80)
    rnd = _text(body.get("round", _MISSING), "round", bad)
    site = _text(body.get("site", _MISSING), "site", bad)
    groups = body.get("groups", _MISSING)
    scans: list[ingest.RawScan] = []
    where: dict[int, str] = {}
    if not isinstance(groups, list):
        bad.add(
            "groups", "Field required" if groups is _MISSING else "Input should be a valid list"
        )
        return key, scans, where
    if len(groups) > MAX_GROUPS:
        bad.add("groups", f"List should have at most {MAX_GROUPS} items")
        return key, scans, where
    row = 0
    for g, group in enumerate(groups):
        at = f"groups.{g}"
        if not isinstance(group, dict):
            bad.add(at, "Input should be a valid dictionary")
            continue
        tube = _text(group.get("tube", _MISSING), f"{at}.tube", bad)
        kind = group.get("kind", "pooled")
        if not isinstance(kind, str):
            bad.add(f"{at}.kind", "Input should be a valid string")
        elif has_control(kind):
            bad.add(f"{at}.kind", _CONTROL)
        capacity = _capacity(group.get("capacity"), f"{at}.capacity", bad)
        moment = _moment(group.get("scanned_at", _MISSING), f"{at}.scanned_at", bad)
        people = group.get("people", _MISSING)
        if not isinstance(people, list):
            bad.add(
                f"{at}.people",
                "Field required" if people is _MISSING else "Input should be a valid list",
            )
            continue
        for p, person in enumerate(people):
            if not isinstance(person, str):
                bad.add(f"{at}.people.{p}", "Input should be a valid string")
                continue
            if has_control(person):
                bad.add(f"{at}.people.{p}", _CONTROL)
                continue
            row += 1
            where[row] = f"{at}.people.{p}"
            if moment is not None and isinstance(kind, str):
                scans.append(
                    ingest.RawScan(
                        row=row,
                        round=rnd,
                        site=site,
                        tube=tube,
                        person=person,
                        scanned_at=moment,
                        kind=kind,
                        capacity=capacity,
                    )
                )
    return key, scans, where


# The report ---------------------------------------------------------------------------------


def report_body(
    report: ingest.IngestReport, lang: Language, where: dict[int, str]
) -> dict[str, Any]:
    """The API view of an ingest report; row numbers become ``groups.G.people.P`` paths."""

    def problem(p: FieldProblem) -> dict[str, Any]:
        rendered = p.render(lang)
        if p.row is not None and p.row in where and p.field in ("person", "scanned_at"):
            rendered["field"] = f"{where[p.row]}.{p.field}"
        elif p.row is not None and p.row in where:
            rendered["field"] = f"{where[p.row].rsplit('.people.', 1)[0]}.{p.field}"
        return {
            "row": rendered.get("row"),
            "field": rendered["field"],
            "reason": rendered["reason"],
            "code": rendered["code"],
        }

    return {
        "key": report.key,
        "accepted": report.accepted,
        "unchanged": report.unchanged,
        "refused": report.refused,
        "flagged": report.flagged,
        "replayed": report.replayed,
        "problems": [problem(p) for p in report.problems + report.flags],
    }


# The handler --------------------------------------------------------------------------------


async def _principal(state: Any, scope: Scope) -> Principal:
    authorization = _header(scope, b"authorization")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated()
    principal: Principal | None = state.principals.get(token)
    if principal is not None:
        return principal

    def look_up() -> Principal:
        with state.session_factory() as session:
            user = account_service.user_from_token(db_session=session, token=token)
            return account_service.principal_for(db_session=session, user=user)

    principal = await anyio.to_thread.run_sync(look_up)
    state.principals.put(token, principal)
    return principal


async def handle(state: Any, scope: Scope, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Answer one save: (status, headers, body). Acknowledged only after the commit."""
    lang: Language | None = None
    try:
        # Authentication is refused before anything else is looked at.
        principal = await _principal(state, scope)
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise _Invalid422([("body", f"JSON decode error: {err}"[:200])]) from None
        bad = _Invalid()
        key, scans, where = parse_batch(decoded, bad)
        if bad.items:
            raise _Invalid422(bad.items)
        principal.require(Perm.scans_write)
        writer: ScanWriter = state.scan_writer
        try:
            report = await writer.submit(
                ingest.BatchIn(principal=principal, key=key, source="api", scans=scans)
            )
        except Overloaded:
            raise _problem(429, "error.rate_limited", language(scope)) from None
        except BastionError:
            raise
        except Exception:  # noqa: BLE001 - the database failed: the client re-sends the same key
            raise _problem(503, "error.unavailable", language(scope)) from None
        lang = language(scope) if report.problems or report.flags else "zh-CN"
        return (
            200,
            {"content-type": "application/json"},
            orjson.dumps(report_body(report, lang, where)),
        )
    except _Invalid422 as err:
        lang = language(scope)
        errors = []
        for path, detail in err.items:
            item = FieldProblem(path, "error.invalid_input").render(lang)
            item["detail"] = detail
            errors.append(item)
        answer = _problem(422, "error.invalid_input", lang, errors)
    except BastionError as err:
        answer = _domain(err, language(scope))
    except _Answer as done:
        answer = done
    return answer.status, answer.headers, orjson.dumps(answer.body)


class _Invalid422(Exception):
    def __init__(self, items: list[tuple[str, str]]) -> None:
        super().__init__(len(items))
        self.items = items


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when it is larger than MAX_BODY."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        part = message.get("body", b"")
        size += len(part)
        if size > MAX_BODY:
            return None
        chunks.append(part)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class ScanFastPath:
    """ASGI middleware: answers ``POST /api/v1/scans/batches`` itself, passes the rest on."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            answer = _problem(413, "error.too_large", language(scope))
            await respond(send, answer.status, answer.headers, orjson.dumps(answer.body))
            return
        status, headers, payload = await handle(scope["app"].state, scope, body)
        await respond(send, status, headers, payload)
