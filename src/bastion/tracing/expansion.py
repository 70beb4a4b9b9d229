"""Contact expansion: from a batch of cases to their close and secondary contacts, stored.

Set-based throughout: a batch of 2,500 cases costs the same handful of statements as one case.
Nothing here walks people one by one.

The graph
    ``exposure_edges(person_id, exposed_on, other_id, setting)`` holds one row per direction of
    every exposure (recorded by investigators, or fed in bulk from household rosters, sampling
    queues and transport records). Its primary key, in that column order, is the only index:
    each hop is "the rows of these people since day D", a range scan on (person_id, exposed_on)
    that yields other_id from the index itself (an index-only scan on PostgreSQL once the table
    is vacuumed), so the work grows with the edges touched, never with the table. No foreign
    keys: edges arrive by the million through COPY, and a person's edges are only ever read
    through their own id.

The statements (temporary tables, in the caller's transaction, under the expansion lock)
    0. :func:`lock`: a transaction-scoped advisory lock shared by every writer of contacts
       (PostgreSQL), so expansions queue instead of racing; and, for this transaction, no JIT
       (the scans disabled by ``index_lookups`` inflate plan costs past JIT's thresholds: it
       compiled for 0.5 s to run a 0.2 s statement) and a work_mem that sorts a batch in memory.
    1. ``exp_cases``: the cases (person, lookback start), staged from one SELECT.
    2. ``exp_close``: first hop, (contact person, case, last exposure) grouped, leaving out
       people with an open case (they are cases, not contacts): the partial unique index on
       open cases answers that per row.
    3. ``contacts``: one plain INSERT … SELECT of the new close contacts (one row per person
       however many cases reached them) behind one anti-join on the partial unique index of
       active contacts (no speculative ON CONFLICT: the lock rules out a concurrent insert); an
       active secondary contact reached as close is raised to close (UPDATE);
       ``contact_links`` gets one row per (contact, case); ``exp_close.contact_id`` is filled
       once per close contact.
    4. When the profile in force traces secondary contacts: ``exp_secondary``, the second hop
       driven from this batch's close contacts (never from every active close contact) over
       the edges since their own exposure to the case, grouped, then leaving out cases, this
       batch's close contacts and active close contacts; then the same INSERT of contacts and
       of links that name the close contact they came through.

Plans: every probe of ``contacts`` is a correlated scalar subquery on the partial unique index
of active contacts. The table grows by tens of thousands of rows inside the transaction, faster
than its statistics; written as NOT EXISTS or a join, PostgreSQL took it for a few rows and
looped over all of it per candidate (a 270 s second hop at bench scale).

Keys and locks: ``contact_links`` has three indexes and no foreign keys, and
``contacts.person_id`` and ``contacts.case_id`` none either (written only by these statements,
joined to the rows they name; see the models). A foreign-key check is a trigger call per row and
locks the referenced row: per contact, that dirtied a page of the million-row ``persons`` table
and was the largest single cost of storing an expansion.

Lookback: a case's exposures count from ``lookback_days`` (profile) before onset, or before
sampling when asymptomatic (:func:`bastion.tracing.classify.lookback_start`); nothing after the
expansion day counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, String, bindparam, column, select, text
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.db import UtcDateTime, bulk_insert, index_lookups, is_postgres
from bastion.protocols import service as protocol_service
from bastion.protocols.profiles import Profile
from bastion.tracing import classify, counters
from bastion.tracing.models import Case, Contact, ContactLink

_TEMP = {
    "exp_cases": "case_id BIGINT PRIMARY KEY, person_id BIGINT NOT NULL, since DATE NOT NULL",
    "exp_close": "person_id BIGINT NOT NULL, case_id BIGINT NOT NULL, last_on DATE NOT NULL, "
    "contact_id BIGINT, PRIMARY KEY (person_id, case_id)",
    "exp_secondary": "person_id BIGINT NOT NULL, via_contact_id BIGINT NOT NULL, "
    "case_id BIGINT NOT NULL, last_on DATE NOT NULL, "
    "PRIMARY KEY (person_id, via_contact_id, case_id)",
}

FIRST_HOP = """
INSERT INTO exp_close (person_id, case_id, last_on)
SELECT e.other_id, c.case_id, MAX(e.exposed_on)
FROM exp_cases c
JOIN exposure_edges e ON e.person_id = c.person_id AND e.exposed_on >= c.since
WHERE e.exposed_on <= :day
  AND NOT EXISTS (SELECT 1 FROM cases k WHERE k.person_id = e.other_id AND k.status = 'open')
GROUP BY e.other_id, c.case_id
"""

#: Driven from this batch's close contacts (never from every active close contact), grouped
#: first, then filtered (``OFFSET 0`` keeps PostgreSQL's filters above the grouping): a close
#: contact's edges repeat the same people across days, and each probe below runs once per
#: distinct person instead of once per edge. The close contact's row is looked up once
#: per close contact (``exp_close.contact_id``, set by :data:`CLOSE_CONTACT_IDS`).
SECOND_HOP = """
INSERT INTO exp_secondary (person_id, via_contact_id, case_id, last_on)
SELECT f.other_id, f.via_contact_id, f.case_id, f.last_on
FROM (
    SELECT g.other_id, g.via_contact_id, g.case_id, g.last_on
    FROM (
        SELECT e.other_id, x.contact_id AS via_contact_id, x.case_id, MAX(e.exposed_on) AS last_on
        FROM exp_close x
        JOIN exposure_edges e ON e.person_id = x.person_id AND e.exposed_on >= x.last_on
        WHERE e.exposed_on <= :day AND x.contact_id IS NOT NULL
        GROUP BY e.other_id, x.contact_id, x.case_id
        {fence}
    ) g
    WHERE NOT EXISTS (SELECT 1 FROM exp_close y WHERE y.person_id = g.other_id)
      AND NOT EXISTS (SELECT 1 FROM cases k WHERE k.person_id = g.other_id AND k.status = 'open')
    {fence}
) f
WHERE COALESCE((SELECT o.level FROM contacts o WHERE o.person_id = f.other_id
                AND o.status = 'active'), '') <> 'close'
"""

#: New contacts of one level from a staged table; RETURNING the new rows only. A plain insert
#: behind one anti-join (no speculative ON CONFLICT per row): writers of contacts hold the
#: expansion lock (:func:`lock`), so nothing inserts between the check and the insert.
NEW_CONTACTS = """
INSERT INTO contacts (person_id, region_code, level, case_id, identified_on, last_exposure_on,
                      status, created_at)
SELECT s.person_id, p.region_code, '{level}', s.case_id, :day, s.last_on, 'active', :now
FROM (SELECT person_id, MIN(case_id) AS case_id, MAX(last_on) AS last_on
      FROM {staged} GROUP BY person_id {fence}) s
JOIN persons p ON p.id = s.person_id
WHERE (SELECT t.id FROM contacts t WHERE t.person_id = s.person_id AND t.status = 'active') IS NULL
RETURNING id, region_code
"""

RAISE_TO_CLOSE = """
UPDATE contacts SET level = 'close'
WHERE status = 'active' AND level = 'secondary'
  AND person_id IN (SELECT person_id FROM exp_close)
RETURNING id, identified_on, region_code
"""

LATER_EXPOSURE = """
UPDATE contacts SET last_exposure_on = x.last_on
FROM (SELECT person_id, MAX(last_on) AS last_on FROM {staged} GROUP BY person_id) x
WHERE contacts.person_id = x.person_id AND contacts.status = 'active'
  AND (contacts.last_exposure_on IS NULL OR contacts.last_exposure_on < x.last_on)
"""

#: Each staged close person's active close contact, looked up once for the second hop.
CLOSE_CONTACT_IDS = """
UPDATE exp_close SET contact_id = (
    SELECT t.id FROM contacts t WHERE t.person_id = exp_close.person_id AND t.status = 'active'
    AND t.level = 'close')
"""

#: Links from a staged table to the active contact of each staged person at ``level``: driven
#: from the staged rows (the contact looked up per row through the partial unique index, never
#: a walk over every active contact), new paths only (an anti-join, under the expansion lock).
LINKS = """
INSERT INTO contact_links (contact_id, case_id, via_contact_id, level, last_exposure_on,
                           created_at)
SELECT x.contact_id, x.case_id, x.via_contact_id, '{level}', x.last_on, :now
FROM (
    SELECT (SELECT t.id FROM contacts t WHERE t.person_id = s.person_id AND t.status = 'active'
            AND t.level = '{level}') AS contact_id,
           s.case_id, {via} AS via_contact_id, s.last_on
    FROM {staged} s
    {fence}
) x
WHERE x.contact_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM contact_links l WHERE l.contact_id = x.contact_id
                  AND l.case_id = x.case_id AND {same_via})
"""

CLOSE_LINKS = LINKS.format(
    level="close",
    staged="exp_close",
    via="CAST(NULL AS BIGINT)",
    same_via="l.via_contact_id IS NULL",
    fence="{fence}",
)
SECONDARY_LINKS = LINKS.format(
    level="secondary",
    staged="exp_secondary",
    via="s.via_contact_id",
    same_via="l.via_contact_id = x.via_contact_id",
    fence="{fence}",
)

#: The plain two-hop join the benchmark compares with: the same edges, nothing stored.
TWO_HOP_COUNT = """
SELECT COUNT(*) FROM exp_cases c
JOIN exposure_edges e1 ON e1.person_id = c.person_id AND e1.exposed_on >= c.since
JOIN exposure_edges e2 ON e2.person_id = e1.other_id AND e2.exposed_on >= e1.exposed_on
WHERE e1.exposed_on <= :day AND e2.exposed_on <= :day
"""


@dataclass
class ExpansionResult:
    cases: int = 0
    #: Edges read on the first and second hop (before grouping).
    close_candidates: int = 0
    secondary_candidates: int = 0
    #: New contact rows (and secondary contacts raised to close), by level.
    close_ids: list[int] = field(default_factory=list)
    secondary_ids: list[int] = field(default_factory=list)
    links_created: int = 0
    profile: str = ""
    secondary_traced: bool = True


def _stmt(sql: str, params: dict[str, Any]) -> Any:
    stmt = text(sql)
    typed: list[Any] = []
    for key, value in params.items():
        if isinstance(value, datetime):
            typed.append(bindparam(key, type_=UtcDateTime()))
        elif isinstance(value, date):
            typed.append(bindparam(key, type_=Date()))
    return stmt.bindparams(*typed) if typed else stmt


def run(db_session: Session, sql: str, **params: Any) -> Any:
    return db_session.execute(_stmt(sql, params), params)


#: The typed columns of the RETURNING clauses above.
_RETURNED: dict[str, Any] = {
    "id": BigInteger(),
    "region_code": String(),
    "identified_on": Date(),
}


def returning(db_session: Session, sql: str, *names: str, **params: Any) -> list[Any]:
    stmt = _stmt(sql, params).columns(*(column(n, _RETURNED[n]) for n in names))
    return list(db_session.execute(stmt, params))


def _new_contacts(
    db_session: Session, *, level: str, staged: str, day: date, now: datetime
) -> list[int]:
    """Insert the new contacts of ``level`` from ``staged`` and count them in the daily
    counters; their ids."""
    sql = NEW_CONTACTS.format(level=level, staged=staged, fence=_fence(db_session))
    rows = returning(db_session, sql, "id", "region_code", day=day, now=now)
    counters.add(db_session, counters.deltas(identified=[(day, r[1], level) for r in rows]))
    return [int(r[0]) for r in rows]


def _raise_to_close(db_session: Session) -> list[int]:
    rows = returning(db_session, RAISE_TO_CLOSE, "id", "identified_on", "region_code")
    counters.add(
        db_session,
        counters.deltas(
            identified=[(r[1], r[2], "close") for r in rows],
            unidentified=[(r[1], r[2], "secondary") for r in rows],
        ),
    )
    return [int(r[0]) for r in rows]


def temp_tables(db_session: Session, *names: str) -> None:
    """Create (once per connection) and empty the named temporary tables."""
    for name in names:
        db_session.execute(text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({_TEMP[name]})"))
        db_session.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - a fixed name


def stage_cases(db_session: Session, case_ids: Sequence[int], profile: Profile) -> int:
    """Load the open cases among ``case_ids`` into ``exp_cases`` with their lookback start."""
    rows = db_session.execute(
        select(Case.id, Case.person_id, Case.onset_on, Case.sampled_on, Case.reported_on).where(
            Case.id.in_(sorted(set(case_ids))), Case.status == "open"
        )
    ).all()
    staged = [
        (
            r.id,
            r.person_id,
            classify.lookback_start(
                onset_on=r.onset_on,
                sampled_on=r.sampled_on,
                reported_on=r.reported_on,
                lookback_days=profile.lookback_days,
            ),
        )
        for r in rows
    ]
    return bulk_insert(db_session, "exp_cases", ["case_id", "person_id", "since"], staged)


def _analyze(db_session: Session, *names: str) -> None:
    # Fresh temporary tables have no statistics: without them PostgreSQL takes them for a few
    # rows and may pick a plan that scans the edge table.
    if is_postgres(db_session):
        for name in names:
            db_session.execute(text(f"ANALYZE {name}"))


def _ids(result: Any) -> list[int]:
    return [int(r[0]) for r in result]


#: The key of the transaction-scoped advisory lock every writer of contacts takes (PostgreSQL;
#: SQLite serialises writers anyway): expansions queue one behind the other instead of racing
#: on the unique index row by row.
EXPANSION_LOCK = 0x7472_6163_6500  # "trace"


def lock(db_session: Session) -> None:
    """Take the expansion lock and this transaction's planner settings for the statements
    here: no JIT (the disabled scans of :func:`index_lookups` inflate costs past its thresholds,
    and compiling cost more than running) and room to sort a batch's groups in memory."""
    if is_postgres(db_session):
        db_session.execute(text(f"SELECT pg_advisory_xact_lock({EXPANSION_LOCK})"))
        db_session.execute(text("SET LOCAL jit = off"))
        db_session.execute(text("SET LOCAL work_mem = '64MB'"))


def _fence(db_session: Session) -> str:
    return "OFFSET 0" if is_postgres(db_session) else ""


def store_contacts(
    db_session: Session, *, day: date, now: datetime, secondary: bool
) -> ExpansionResult:
    """Turn the staged ``exp_close`` rows into contacts and links and, when ``secondary``, walk
    the second hop into ``exp_secondary`` and store those too."""
    lock(db_session)
    out = ExpansionResult()
    fence = _fence(db_session)
    _analyze(db_session, "exp_close")
    out.close_ids = _new_contacts(db_session, level="close", staged="exp_close", day=day, now=now)
    out.close_ids += _raise_to_close(db_session)
    run(db_session, LATER_EXPOSURE.format(staged="exp_close"))
    out.links_created = run(db_session, CLOSE_LINKS.format(fence=fence), now=now).rowcount or 0
    if secondary:
        run(db_session, CLOSE_CONTACT_IDS)
        out.secondary_candidates = (
            run(db_session, SECOND_HOP.format(fence=fence), day=day).rowcount or 0
        )
        out.secondary_ids, links = store_secondary(db_session, day=day, now=now)
        out.links_created += links
    return out


def store_secondary(db_session: Session, *, day: date, now: datetime) -> tuple[list[int], int]:
    """Turn the staged ``exp_secondary`` rows into secondary contacts and their links; the new
    contacts' ids and the number of links written."""
    lock(db_session)
    fence = _fence(db_session)
    _analyze(db_session, "exp_secondary")
    ids = _new_contacts(db_session, level="secondary", staged="exp_secondary", day=day, now=now)
    links = run(db_session, SECONDARY_LINKS.format(fence=fence), now=now).rowcount or 0
    return ids, links


def expand_cases(
    db_session: Session, case_ids: Sequence[int], *, day: date | None = None
) -> ExpansionResult:
    """Compute and store the contacts of the open cases among ``case_ids`` as of ``day``
    (today), under the profile in force that day. Idempotent: a second run adds nothing.
    No permission check (callers check)."""
    day = day or clock.today()
    now = clock.now()
    profile = protocol_service.profile_on(db_session, day)
    temp_tables(db_session, "exp_cases", "exp_close", "exp_secondary")
    try:
        with index_lookups(db_session):
            return _expand_staged(db_session, case_ids, profile, day, now)
    finally:
        temp_tables(db_session, "exp_cases", "exp_close", "exp_secondary")
        _expire_loaded(db_session)


def _expand_staged(
    db_session: Session, case_ids: Sequence[int], profile: Profile, day: date, now: datetime
) -> ExpansionResult:
    lock(db_session)
    cases = stage_cases(db_session, case_ids, profile)
    if cases == 0:
        return ExpansionResult(profile=profile.key)
    _analyze(db_session, "exp_cases")
    close_candidates = run(db_session, FIRST_HOP, day=day).rowcount or 0
    traced = classify.contact_level(source="close", profile=profile) is not None
    result = store_contacts(db_session, day=day, now=now, secondary=traced)
    result.cases = cases
    result.close_candidates = close_candidates
    result.profile = profile.key
    result.secondary_traced = traced
    return result


def two_hop_count(db_session: Session, case_ids: Sequence[int], *, day: date) -> int:
    """The benchmark's yardstick: the plain two-hop join over the same cases and edges."""
    profile = protocol_service.profile_on(db_session, day)
    temp_tables(db_session, "exp_cases")
    stage_cases(db_session, case_ids, profile)
    _analyze(db_session, "exp_cases")
    count = int(run(db_session, TWO_HOP_COUNT, day=day).scalar_one())
    temp_tables(db_session, "exp_cases")
    return count


def _expire_loaded(db_session: Session) -> None:
    for obj in list(db_session.identity_map.values()):
        if isinstance(obj, Contact | ContactLink):
            db_session.expire(obj)
