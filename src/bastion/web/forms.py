"""Posted forms: what every page's forms share.

A form posts to one service call. The page checks the form's CSRF token, runs the call in a
savepoint (:func:`in_savepoint`), and then either sends the browser on (303) to a page saying
what was done, or — when the service refuses — shows the page again with the refusal above the
form: its message, one line per refused field, what was typed (``form``), and the refusal's
status. :class:`FormPage` is that pattern for one page; :func:`refused` is its second half, for
the forms that answer with a page of their own (an upload's row report).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from bastion.api.errors import request_language
from bastion.core.auth import Principal
from bastion.core.errors import BastionError, FieldProblem, InvalidInput
from bastion.core.text import CONTROL_CHARS
from bastion.web.common import check_csrf, problems_of, render

T = TypeVar("T")

#: The CSRF token every form carries (see :func:`bastion.web.common.check_csrf`).
Csrf = Annotated[str, Form(max_length=500)]

#: The page as a GET shows it, from the request, its session and the caller.
PageView = Callable[[Request, Session, Principal], dict[str, Any]]


def in_savepoint(session: Session, work: Callable[[], T]) -> T:
    """Run one service call so that a refusal undoes only its own writes: the page can then show
    the form again (the request's transaction still commits what came before)."""
    with session.begin_nested():
        return work()


def see_other(url: str) -> RedirectResponse:
    """After a form that worked: the browser GETs ``url`` (a reload does not post again)."""
    return RedirectResponse(url, status_code=303)


def refused(
    request: Request,
    template: str,
    context: dict[str, Any],
    err: BastionError,
    *,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The page (``context``, as a GET shows it) again after a refusal: the refusal's message,
    one line per refused field and, when given, what was typed; with the refusal's status."""
    lang = request_language(request)
    context.update(error=err.message(lang), problems=problems_of(err, lang))
    if form is not None:
        context["form"] = form
    return render(request, template, context, status=err.status)


@dataclass(frozen=True)
class FormPage:
    """A page whose forms each post to one service call: ``template`` rendered from ``view``."""

    template: str
    view: PageView

    def again(
        self,
        request: Request,
        session: Session,
        principal: Principal,
        err: BastionError,
        *,
        form: dict[str, Any] | None = None,
    ) -> HTMLResponse:
        """The page again, showing ``err`` (see :func:`refused`)."""
        context = self.view(request, session, principal)
        return refused(request, self.template, context, err, form=form)

    def submit(
        self,
        request: Request,
        session: Session,
        principal: Principal,
        csrf: str,
        work: Callable[[], T],
        *,
        done: str | Callable[[T], str],
        form: dict[str, Any] | None = None,
    ) -> Response:
        """Check the form's token, run ``work`` in a savepoint, and send the browser to ``done``
        (a URL, or one made from what ``work`` returned); on a refusal, the page again."""
        check_csrf(request, csrf)
        try:
            result = in_savepoint(session, work)
        except ValidationError as err:
            # A service schema built from the form's fields refused one (a control character,
            # a length): the page again, naming the field, as for any other refusal.
            return self.again(request, session, principal, refusal_of(err), form=form)
        except BastionError as err:
            return self.again(request, session, principal, err, form=form)
        return see_other(done if isinstance(done, str) else done(result))


def refusal_of(err: ValidationError) -> InvalidInput:
    """A schema's validation error as the refusal the pages show: each field named, with
    ``field.control_chars`` for a control character, else ``error.invalid_input``."""
    problems = []
    for item in err.errors():
        loc = item.get("loc") or ("form",)
        reason = (
            "field.control_chars" if item.get("type") == CONTROL_CHARS else "error.invalid_input"
        )
        problems.append(FieldProblem(str(loc[0]), reason))
    return InvalidInput(problems=problems)


# Fields ------------------------------------------------------------------------------------


def form_int(field_name: str, value: str | None, *, low: int = 0, high: int = 10**6) -> int | None:
    """An optional whole number typed into a form; a bad one names its field."""
    text = (value or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise InvalidInput.one(field_name, "field.out_of_range", min=low, max=high)
    return int(text)


def form_codes(field_name: str, value: str | None, *, most: int) -> list[str] | None:
    """Barcodes scanned into a text area (one a line, or separated by spaces or commas)."""
    codes = [c for c in (value or "").replace(",", " ").split() if c]
    if len(codes) > most:
        raise InvalidInput.one(field_name, "field.out_of_range", min=0, max=most)
    return codes or None
