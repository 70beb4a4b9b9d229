"""The one place domain errors become HTTP problem responses (RFC 9457)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion.core.errors import BastionError, FieldProblem
from bastion.core.i18n import Language, normalise, t
from bastion.core.text import CONTROL_CHARS

log = logging.getLogger("bastion.api")

PROBLEM = "application/problem+json"


def request_language(request: Request) -> Language:
    return normalise(
        request.query_params.get("lang")
        or request.cookies.get("lang")
        or request.headers.get("accept-language")
    )


def problem(
    status: int,
    title: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    code: str = "",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "title": title, "code": code}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _validation_field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie", "form")]
    return ".".join(parts) or "body"


#: pydantic error types that have a reason of their own (else ``error.invalid_input``).
_REASONS = {CONTROL_CHARS: "field.control_chars"}


def _refuses_nul(exc: DataError) -> bool:
    """Whether the database refused the statement for a NUL in a text value (PostgreSQL)."""
    text = str(exc.orig)
    return "NUL" in text and "0x00" in text


def _nul_fields(request: Request, exc: DataError) -> list[str]:
    """The fields that carried a NUL: the request's path and query parameters by name, else
    the statement's parameters (named after their columns), else the body."""
    fields = [k for k, v in request.path_params.items() if isinstance(v, str) and "\x00" in v]
    fields += [k for k, v in request.query_params.multi_items() if "\x00" in v]
    if not fields:
        rows = exc.params if isinstance(exc.params, list | tuple) else [exc.params]
        for row in rows:
            if isinstance(row, Mapping):
                fields += [
                    re.sub(r"_\d+$", "", str(k))
                    for k, v in row.items()
                    if isinstance(v, str) and "\x00" in v
                ]
    return sorted(set(fields)) or ["body"]


def install(app: FastAPI) -> None:
    @app.exception_handler(BastionError)
    async def _domain(request: Request, exc: BastionError) -> JSONResponse:
        lang = request_language(request)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem(
            exc.status,
            exc.message(lang),
            errors=[p.render(lang) for p in exc.problems],
            code=exc.key,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(request, exc.errors())

    @app.exception_handler(ValidationError)
    async def _schema(request: Request, exc: ValidationError) -> JSONResponse:
        # A schema built inside a handler (a web form's fields, say) refused a value: the
        # same 422, naming the field, rather than a 500.
        return _invalid(request, exc.errors())

    def _invalid(request: Request, found: Sequence[Any]) -> JSONResponse:
        lang = request_language(request)
        errors = []
        for err in found:
            # A body that is not JSON at all is located at a character offset: name the body.
            loc = ("body",) if err.get("type") == "json_invalid" else tuple(err.get("loc", ()))
            reason = _REASONS.get(str(err.get("type", "")), "error.invalid_input")
            fp = FieldProblem(_validation_field(loc), reason)
            item = fp.render(lang)
            # pydantic's own message says what was expected (in English); keep it alongside.
            item["detail"] = err.get("msg", "")
            errors.append(item)
        return problem(
            422, t("error.invalid_input", lang), errors=errors, code="error.invalid_input"
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        lang = request_language(request)
        key = {
            404: "error.not_found",
            401: "error.not_authenticated",
            403: "error.forbidden",
            405: "error.bad_request",
            413: "error.too_large",
            429: "error.rate_limited",
        }.get(exc.status_code, "error.bad_request")
        return problem(
            exc.status_code, t(key, lang), code=key, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(IntegrityError)
    async def _race(request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests creating the same thing at once: the checks passed for both and the
        # database's unique index refused the second. Its transaction was rolled back whole.
        log.info("integrity race on %s %s: %s", request.method, request.url.path, exc.orig)
        lang = request_language(request)
        return problem(409, t("error.conflict_retry", lang), code="error.conflict_retry")

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        lang = request_language(request)
        if not _refuses_nul(exc):
            log.error("data error on %s %s", request.method, request.url.path, exc_info=exc)
            return problem(500, t("error.internal", lang), code="error.internal")
        # The last line of defence: the API's types refuse control characters at the edge
        # (core.text), so a NUL that reaches PostgreSQL is an input a schema let through.
        log.warning("NUL reached the database on %s %s", request.method, request.url.path)
        errors = [
            FieldProblem(f, "field.control_chars").render(lang) for f in _nul_fields(request, exc)
        ]
        return problem(
            422, t("error.invalid_input", lang), errors=errors, code="error.invalid_input"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, t("error.internal", request_language(request)), code="error.internal")
