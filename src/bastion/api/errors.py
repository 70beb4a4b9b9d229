"""The one place domain errors become HTTP problem responses (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from bastion.core.errors import BastionError, FieldProblem
from bastion.core.i18n import Language, normalise, t

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
        lang = request_language(request)
        errors = []
        for err in exc.errors():
            # A body that is not JSON at all is located at a character offset: name the body.
            loc = ("body",) if err.get("type") == "json_invalid" else tuple(err.get("loc", ()))
            fp = FieldProblem(_validation_field(loc), "error.invalid_input")
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

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, t("error.internal", request_language(request)), code="error.internal")
