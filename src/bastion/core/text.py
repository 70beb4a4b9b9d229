"""Strings that arrive from outside: no control character reaches a service or the database.

PostgreSQL refuses a NUL (``\\x00``) in text outright (SQLite stores it), and the other control
characters are never meant in a code, a name, a filter or a note. The API schemas and the
query and path parameters use these types, so such a value is refused at the edge with a 422
naming the field and the reason ``field.control_chars`` (``api/errors.py`` maps the pydantic
error type ``CONTROL_CHARS`` to that key), whatever the database underneath.

- ``Line``: one line of text (a code, a name, a status, a filter): no control character
  (Unicode category Cc) and no invisible format character (Cf: zero-width, direction marks).
- ``Text``: free text that may run over lines (a note, a reason): tabs and line breaks are
  kept, every other control character (NUL first) is refused.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

#: The pydantic error type of a refused value; the API renders it as ``field.control_chars``.
CONTROL_CHARS = "control_chars"

_LINE_BREAKS = frozenset("\t\n\r")


def has_control(text: str, *, multiline: bool = False) -> bool:
    """Whether ``text`` holds a control character: any Cc or Cf one, or with ``multiline``
    any Cc one but a tab or a line break."""
    if text.isprintable():
        # C-speed answer for nearly every value (no Cc, Cf or other unprintable character):
        # the live scan path checks every person code of every save.
        return False
    if multiline:
        return any(unicodedata.category(c) == "Cc" and c not in _LINE_BREAKS for c in text)
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def _refuse(value: str, *, multiline: bool) -> str:
    if has_control(value, multiline=multiline):
        raise PydanticCustomError(CONTROL_CHARS, "contains invisible control characters")
    return value


def _line(value: str) -> str:
    return _refuse(value, multiline=False)


def _text(value: str) -> str:
    return _refuse(value, multiline=True)


Line = Annotated[str, AfterValidator(_line)]
Text = Annotated[str, AfterValidator(_text)]
