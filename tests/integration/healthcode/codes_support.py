"""Helpers for the signed-code and lookup tests: a resident linked to a person, status rows as
the status store writes them (docs/dev/shared-records.md), an app with its own lookup settings."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.core import clock
from bastion.healthcode import keys
from bastion.healthcode.lookup import CodeLookup
from bastion.healthcode.models import CodeBatch, CodeStatus
from bastion.registry.models import Person
from tests.support import factories
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID

NOW = datetime(2022, 3, 25, 8, 0, tzinfo=UTC)


def resident(db: Session, role: str = "resident", *, region: str = NANGUAN_GRID) -> Person:
    """A person, linked to the ``<role>_in`` account as its own."""
    person = factories.person(db, region_code=region, name="王芳")
    user = db.execute(select(User).where(User.username == f"{role}_in")).scalar_one()
    user.person_id = person.id
    db.flush()
    return person


def outsider(db: Session) -> Person:
    return factories.person(db, region_code=CHANGYI_GRID, name="李雷")


def set_status(
    db: Session,
    person: Person,
    colour: str,
    *,
    reason_key: str = "healthcode.reason.default",
    popup: str | None = None,
) -> CodeStatus:
    """Write or change the person's status row as the store does (version + 1, changed_at, a
    new write batch)."""
    row = db.get(CodeStatus, person.id)
    if row is None:
        row = CodeStatus(person_id=person.id, version=0)
        db.add(row)
    row.colour = colour
    row.rule = "test:manual"
    row.reason_key = reason_key
    row.evidence_type = "test"
    row.evidence_id = "1"
    row.popup = popup
    row.version = (row.version or 0) + 1
    row.changed_at = clock.now()
    batch = CodeBatch(batch_id="test", at=clock.now(), changed=1)
    db.add(batch)
    db.flush()
    row.seq = batch.seq
    db.flush()
    return row


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fresh_lookup(app: object, **settings: object) -> tuple[CodeLookup, FakeClock]:
    """Give the app a lookup cache with these settings and a hand-driven clock."""
    ticks = FakeClock()
    state = app.state  # type: ignore[attr-defined]
    settings.setdefault("poll_in_background", False)  # a change shows at a known request
    lookup = CodeLookup(
        state.session_factory, settings=keys.CodeSettings(**settings), monotonic=ticks
    )
    state.codes = lookup
    return lookup, ticks


Headers = Callable[..., dict[str, str]]
