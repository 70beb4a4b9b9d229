"""Pure rules for region codes: levels, subtree prefixes and scopes.

Every placed record carries the code of the finest region it belongs to, and a child's code
always begins with its parent's prefix, so "is this record in my subtree" is a prefix test,
written as a range (``code >= prefix AND code < prefix⁺``) so an ordinary index serves it. The
bound ``prefix⁺`` is itself a string of digits (2209 → 221), because only digits compare the same
under every collation: under an ICU or glibc locale (the PostgreSQL default on many systems)
punctuation such as ``:`` is ignored, and ``'22091' < '220:'`` is false.

The prefix of a 6-digit code drops trailing ``00`` pairs (220000 → ``22``, 220100 → ``2201``,
220102 → ``220102``); longer codes are their own prefix. A county-level city run by the
province (梅河口 220581) sits under the province in the tree but under 通化 (2205) by prefix, so
a scope also carries the prefixes it must exclude.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, not_, true

CODE_RE = re.compile(r"^\d{6}(\d{3}(\d{3}(\d{3})?)?)?$")


def is_valid_code(code: str) -> bool:
    return bool(CODE_RE.match(code))


def prefix(code: str) -> str:
    """The prefix every code in ``code``'s subtree starts with."""
    if len(code) != 6:
        return code
    if code.endswith("0000"):
        return code[:2]
    if code.endswith("00"):
        return code[:4]
    return code


def upper_bound(pfx: str) -> str | None:
    """The smallest digit string greater than every digit string starting with ``pfx`` (a
    non-empty digit string): the prefix counted up by one at its last digit that is not 9
    (2201 → 2202, 2299 → 23). None when ``pfx`` is all nines: nothing lies above it."""
    stripped = pfx.rstrip("9")
    if not stripped:
        return None
    return stripped[:-1] + str(int(stripped[-1]) + 1)


def _range(column: Any, pfx: str) -> ColumnElement[bool]:
    bound = upper_bound(pfx)
    at_least: ColumnElement[bool] = column >= pfx
    if bound is None:
        return at_least
    return and_(at_least, column < bound)


@dataclass(frozen=True)
class Scope:
    """A subtree as a prefix plus the prefixes inside it that belong elsewhere in the tree."""

    prefix: str
    excluded: tuple[str, ...] = field(default=())

    @classmethod
    def everything(cls) -> Scope:
        return cls(prefix="")

    def contains(self, code: str | None) -> bool:
        if code is None:
            return False
        if not code.startswith(self.prefix):
            return False
        return not any(code.startswith(e) for e in self.excluded)

    def clause(self, column: Any) -> ColumnElement[bool]:
        """A SQL condition selecting ``column`` values inside the scope."""
        conditions: list[ColumnElement[bool]] = []
        if self.prefix:
            conditions.append(_range(column, self.prefix))
        for ex in self.excluded:
            conditions.append(not_(_range(column, ex)))
        return and_(*conditions) if conditions else true()
