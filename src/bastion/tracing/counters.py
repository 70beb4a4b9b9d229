"""Daily contact counters: how many contacts were identified and released per day, district and
level, kept by the statements that write contacts and rebuilt from the record.

``contact_day_counts(day, district, level, identified, released)``: ``identified`` counts the
contacts of that level whose ``identified_on`` is ``day``; ``released`` those released (status
released) on ``day``. The bulletin's cumulative contact figures are sums over days ≤ D of this
small table instead of a pass over every contact (bench/bulletin.py).

Writers (all set-based, in the caller's transaction): :mod:`bastion.tracing.expansion` (new
contacts; a secondary contact raised to close moves from one level to the other on its
identification day) and :func:`bastion.tracing.investigation.release_contacts`. Anything else
that writes ``contacts.level``, ``status``, ``identified_on`` or ``released_on`` must call
:func:`add` too, or :func:`rebuild` afterwards (``bastion bulletin rebuild-counters``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date

from sqlalchemy import func, insert, literal, select, text
from sqlalchemy.orm import Session

from bastion.tracing.models import Contact, ContactDayCount

#: (day, district, level) → (identified, released) changes.
Deltas = dict[tuple[date, str, str], tuple[int, int]]

UPSERT = """
INSERT INTO contact_day_counts (day, district, level, identified, released)
VALUES (:day, :district, :level, :identified, :released)
ON CONFLICT (day, district, level) DO UPDATE
SET identified = contact_day_counts.identified + excluded.identified,
    released = contact_day_counts.released + excluded.released
"""


def district(region_code: str) -> str:
    return region_code[:6]


def deltas(
    *,
    identified: Iterable[tuple[date, str, str]] = (),
    unidentified: Iterable[tuple[date, str, str]] = (),
    released: Iterable[tuple[date, str, str]] = (),
) -> Deltas:
    """Fold (day, region code, level) events into counter changes."""
    out: Counter[tuple[date, str, str, int]] = Counter()
    for sign, column, rows in ((1, 0, identified), (-1, 0, unidentified), (1, 1, released)):
        for day, region_code, level in rows:
            out[(day, district(region_code), level, column)] += sign
    folded: Deltas = {}
    for (day, dist, level, column), n in out.items():
        ident, rel = folded.get((day, dist, level), (0, 0))
        folded[(day, dist, level)] = (ident + n, rel) if column == 0 else (ident, rel + n)
    return folded


def add(db_session: Session, changes: Deltas) -> None:
    """Apply counter changes (one upsert per key: a batch touches a few districts and days)."""
    rows = [
        {"day": d, "district": dist, "level": lvl, "identified": i, "released": r}
        for (d, dist, lvl), (i, r) in sorted(changes.items())
        if i or r
    ]
    if rows:
        db_session.execute(text(UPSERT), rows)


def rebuild(db_session: Session) -> int:
    """Recount every counter from ``contacts``; returns the number of counter rows."""
    db_session.execute(text("DELETE FROM contact_day_counts"))
    k = Contact.__table__.c
    dist = func.substr(k.region_code, 1, 6)
    identified = select(
        k.identified_on.label("day"),
        dist.label("district"),
        k.level,
        func.count().label("identified"),
        literal(0).label("released"),
    ).group_by(k.identified_on, dist, k.level)
    released = select(
        k.released_on.label("day"),
        dist.label("district"),
        k.level,
        literal(0).label("identified"),
        func.count().label("released"),
    ).where(k.status == "released", k.released_on.is_not(None))
    released = released.group_by(k.released_on, dist, k.level)
    both = identified.union_all(released).subquery()
    summed = select(
        both.c.day,
        both.c.district,
        both.c.level,
        func.sum(both.c.identified),
        func.sum(both.c.released),
    ).group_by(both.c.day, both.c.district, both.c.level)
    db_session.execute(
        insert(ContactDayCount).from_select(
            ["day", "district", "level", "identified", "released"], summed
        )
    )
    return int(db_session.execute(select(func.count()).select_from(ContactDayCount)).scalar_one())
