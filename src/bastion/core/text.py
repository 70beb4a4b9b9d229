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
- ``Name``: a person's name: one line, as ``Line``, except for the zero-width joiner and
  non-joiner (U+200D, U+200C), which Persian, Arabic-script and Indic names are written with.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

#: The pydantic error type of a refused value; the API renders it as ``field.control_chars``.
CONTROL_CHARS = "control_chars"

_LINE_BREAKS = frozenset("\t\n\r")
#: Format characters that belong in names: ZWNJ and ZWJ.
_JOINERS = frozenset("\u200c\u200d")


def has_control(text: str, *, multiline: bool = False, name: bool = False) -> bool:
    """Whether ``text`` holds a control character: any Cc or Cf one; with ``multiline`` any Cc
    one but a tab or a line break; with ``name`` any Cc or Cf one but the two joiners."""
    if text.isprintable():
        # C-speed answer for nearly every value (no Cc, Cf or other unprintable character):
        # the live scan path checks every person code of every save.
        return False
    if multiline:
        return any(unicodedata.category(c) == "Cc" and c not in _LINE_BREAKS for c in text)
    if name:
        return any(unicodedata.category(c) in ("Cc", "Cf") and c not in _JOINERS for c in text)
    return any(unicodedata.category(c) in ("Cc", "Cf") for c in text)


def _refuse(value: str, *, multiline: bool = False, name: bool = False) -> str:
    if has_control(value, multiline=multiline, name=name):
        raise PydanticCustomError(CONTROL_CHARS, "contains invisible control characters")
    return value


def _line(value: str) -> str:
    return _refuse(value, multiline=False)


def _text(value: str) -> str:
    return _refuse(value, multiline=True)


def _name(value: str) -> str:
    return _refuse(value, name=True)


Line = Annotated[str, AfterValidator(_line)]
Text = Annotated[str, AfterValidator(_text)]
Name = Annotated[str, AfterValidator(_name)]
