"""The registry of figure sections.

A section is one part of the bulletin (new cases, recoveries, contacts, …). Each names the
modules its domain must provide; a section whose domain is not installed is *absent* from the
day's figures and from every rendering, never shown as zero. Domains still to come (appeals,
supplies) plug in by providing a module ``bastion.<domain>.bulletin_figures`` with
``figures(*, db_session, scope, day) -> dict[str, int]`` (see docs/bulletin.md); nothing here
changes when they arrive.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel
from sqlalchemy import inspect
from sqlalchemy.orm import Session

from bastion.bulletin import queries
from bastion.bulletin.place import Place
from bastion.bulletin.schemas import (
    CasesFigures,
    ContactsFigures,
    CountsFigures,
    IsolationFigures,
    RecoveriesFigures,
    RoundsFigures,
    ScreeningFigures,
)

Compute = Callable[[Session, Place, date], BaseModel]


@dataclass(frozen=True)
class Section:
    key: str
    #: Modules that must be importable for the section to exist (its domain's package).
    requires: tuple[str, ...]
    #: Tables that must exist in the database the figures are read from.
    tables: tuple[str, ...]
    model: type[BaseModel]
    compute: Compute


def _provided(domain: str) -> Compute:
    """A section computed by another domain's ``bulletin_figures`` module."""

    def compute(db_session: Session, place: Place, day: date) -> BaseModel:
        module = importlib.import_module(f"bastion.{domain}.bulletin_figures")
        counts = module.figures(db_session=db_session, scope=place.scope, day=day)
        return CountsFigures(counts={str(k): int(v) for k, v in dict(counts).items()})

    return compute


#: Every section, in the order the bulletin reads.
SECTIONS: tuple[Section, ...] = (
    Section("cases", ("bastion.tracing.models",), ("cases",), CasesFigures, queries.cases),
    Section(
        "recoveries", ("bastion.tracing.models",), ("cases",), RecoveriesFigures, queries.recoveries
    ),
    Section(
        "contacts", ("bastion.tracing.models",), ("contacts",), ContactsFigures, queries.contacts
    ),
    Section(
        "isolation",
        ("bastion.isolation.models",),
        ("placements",),
        IsolationFigures,
        queries.isolation,
    ),
    Section(
        "screening",
        ("bastion.testing.coverage",),
        ("round_screening_hours",),
        ScreeningFigures,
        queries.screening,
    ),
    Section(
        "rounds",
        ("bastion.testing.coverage",),
        ("round_coverage",),
        RoundsFigures,
        queries.rounds,
    ),
    Section(
        "appeals",
        ("bastion.appeals.bulletin_figures",),
        (),
        CountsFigures,
        _provided("appeals"),
    ),
    Section(
        "supplies",
        ("bastion.supplies.bulletin_figures",),
        (),
        CountsFigures,
        _provided("supplies"),
    ),
)

BY_KEY = {s.key: s for s in SECTIONS}


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


#: Database URL → the needed tables found there. Tables are only ever added (by migrations),
#: so a database holding them all is not asked again; one lacking some is asked each time.
_PRESENT: dict[str, frozenset[str]] = {}


def _tables(db_session: Session, needed: set[str]) -> set[str]:
    conn = db_session.connection()
    key = conn.engine.url.render_as_string(hide_password=True)
    known = _PRESENT.get(key)
    if known is not None and needed <= known:
        return set(needed)
    found = needed & set(inspect(conn).get_table_names())
    if found == needed:
        _PRESENT[key] = frozenset(found)
    return found


def available(db_session: Session, sections: tuple[Section, ...] = SECTIONS) -> list[Section]:
    """The sections whose domain is installed and whose tables the database holds."""
    needed = {t for s in sections for t in s.tables}
    present = _tables(db_session, needed) if needed else set()
    return [
        s
        for s in sections
        if all(_importable(m) for m in s.requires) and all(t in present for t in s.tables)
    ]
