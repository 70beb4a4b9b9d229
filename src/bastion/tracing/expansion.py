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
    0. :func:`_expansion`: one round trip takes a transaction-scoped advisory lock shared by
       every writer of contacts (PostgreSQL), so expansions queue instead of racing, and sets
       this transaction's planner: lookups by index only (as ``core.db.index_lookups``), no
       memoized inner scans, no JIT (the disabled scans inflate plan costs past JIT's
       thresholds: it compiled for 0.5 s to run a 0.2 s statement), a work_mem that sorts and
       hashes a batch in memory. The scan and join settings are restored on the way out.
    1. ``exp_cases``: the cases (person, lookback start), staged from one SELECT.
    2. ``exp_close``: first hop, (contact person, case, last exposure) grouped, leaving out
       people with an open case (they are cases, not contacts): the partial unique index on
       open cases answers that per row.
    3. ``exp_close_people``: one row per close person with the contact it has or will have:
       its active contact (one probe of the partial unique index per person) or a new id drawn
       from the contacts sequence ahead of the insert (SQLite: past the largest id in use or
       staged), and the level of the existing one. Ids known before anything is written are
       what lets every later statement join staged tables instead of looking contacts up.
    4. When the profile in force traces secondary contacts: ``exp_secondary``, the second hop
       driven from this batch's close paths (never from every active close contact) with their
       staged contact ids, over each close person's edges since their own exposure to the case;
       each edge row is filtered by two hash anti-joins (this batch's close people, open cases)
       before the grouping, and each grouped candidate by one probe for an active close
       contact. Then ``exp_secondary_people`` as in 3.
    5. Writes: the staged close people whose active contact is secondary are raised to close
       (an UPDATE by id, usually of nothing), later exposures of existing close contacts; then
       ONE ``INSERT … SELECT`` of every new contact of both levels with its pre-assigned id,
       joined to ``persons`` for the residence in person order (one pass over the registry, not
       one per level), counted by level and district in the same statement (a data-modifying
       CTE: a few rows come back, not one per contact; SQLite: ``RETURNING``) for the daily
       counters; then ONE ``INSERT`` of every link of both levels, the staged paths hash-joined
       to the staged people. A new contact cannot have links yet, so only existing contacts'
       paths are checked against ``contact_links``.

Plans: every probe of a permanent table whose statistics may be stale (``contacts``,
``contact_links``, ``persons``) is a correlated scalar subquery, an EXISTS fenced by ``OFFSET
0`` under an OR, or (the UPDATEs of existing contacts) a key condition on the staged ids,
``id = ANY(ARRAY(…))``: the planner can turn none of them into a join. The table grows by tens of
thousands of rows inside the transaction, faster than its statistics; written as NOT EXISTS or a
join, PostgreSQL took it for a few rows and looped over all of it per candidate (a 270 s second
hop at bench scale), and a bare EXISTS under an OR became a hash of the whole table. Joins
between staged tables are hash joins (:func:`_hash_joins`, per statement): a hash of 16,000 or
43,000 staged rows instead of a probe of a temporary index per row of the other side. The
staged tables are never analysed (an ANALYZE per table cost 5–30 ms): never-analysed temporary
tables are estimated from their size, and the plans above do not depend on more. On PostgreSQL
they are ``ON COMMIT DELETE ROWS``: emptied at commit rather than by a DELETE after the work.

Keys and locks: ``contact_links`` has three indexes and no foreign keys, and
``contacts.person_id`` and ``contacts.case_id`` none either (written only by these statements,
joined to the rows they name; see the models). A foreign-key check is a trigger call per row and
locks the referenced row: per contact, that dirtied a page of the million-row ``persons`` table
and was the largest single cost of storing an expansion. A person without a persons row (an
edge feed naming nobody) gets no contact and no link: a close one is left out at staging by an
index-only probe of the registry's key (its id enters the second hop); a secondary one, on
PostgreSQL, by the insert's join to ``persons``, its staged row then deleted when the number
inserted falls short of the number staged (no probe per new secondary contact).

Where the time goes (bench/contacts.py, bench/README.md): the second hop's reads of the edge
index, and the writing of ~59,000 contacts (four indexes, plus the random read of ``persons``
for each new contact's residence) and ~63,000 links (three indexes).

Lookback: a case's exposures count from ``lookback_days`` (profile) before onset, or before
sampling when asymptomatic (:func:`bastion.tracing.classify.lookback_start`); nothing after the
expansion day counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, String, bindparam, column, select, text
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.db import UtcDateTime, bulk_insert, is_postgres
from bastion.protocols import service as protocol_service
from bastion.protocols.profiles import Profile
from bastion.tracing import classify, counters
from bastion.tracing.models import Case, Contact, ContactLink

#: Per person staged for one level: the contact it has or will have (an existing active one,
#: or a new id drawn ahead of the insert), the level of the existing one (NULL: a new contact),
#: and for a new one the first case and the last exposure.
_PEOPLE = (
    "person_id BIGINT PRIMARY KEY, contact_id BIGINT NOT NULL, old_level VARCHAR(16), "
    "case_id BIGINT NOT NULL, last_on DATE NOT NULL"
)

_TEMP = {
    "exp_cases": "case_id BIGINT PRIMARY KEY, person_id BIGINT NOT NULL, since DATE NOT NULL",
    "exp_close": "person_id BIGINT NOT NULL, case_id BIGINT NOT NULL, last_on DATE NOT NULL, "
    "PRIMARY KEY (person_id, case_id)",
    # No key: one row per (person, via, case) by construction (GROUP BY; the recorded path
    # stages a dict), and an index maintained per row cost more than the statements gain.
    "exp_secondary": "person_id BIGINT NOT NULL, via_contact_id BIGINT NOT NULL, "
    "case_id BIGINT NOT NULL, last_on DATE NOT NULL",
    "exp_close_people": _PEOPLE,
    "exp_secondary_people": _PEOPLE,
}

#: Each level's staged tables: (paths: one row per person, case and via; people: one per person).
_STAGED = {
    "close": ("exp_close", "exp_close_people"),
    "secondary": ("exp_secondary", "exp_secondary_people"),
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

#: The case's household, from the registry: everyone living with a case is a close contact
#: exposed up to the expansion day, whether or not anyone recorded it as an exposure (a case
#: found by a screening round has its household traced at once). An edge already staged for the
#: same person and case only has its last exposure moved to the day.
HOUSEHOLD_HOP = """
INSERT INTO exp_close (person_id, case_id, last_on)
SELECT h.id, c.case_id, :day
FROM exp_cases c
JOIN persons p ON p.id = c.person_id
JOIN persons h ON h.household_id = p.household_id
WHERE p.household_id IS NOT NULL AND h.id <> p.id
  AND NOT EXISTS (SELECT 1 FROM cases k WHERE k.person_id = h.id AND k.status = 'open')
ON CONFLICT (person_id, case_id) DO UPDATE SET last_on = excluded.last_on
"""

#: One row per staged person of a level: the active contact it has (one probe of the partial
#: unique index per person, as a correlated subquery: see "Plans"), else a new id (the contacts
#: sequence; SQLite: past the largest id in use or staged). People without a persons row get no
#: contact: ``{known}`` leaves them out here (see :func:`_stage_people`), or the insert does.
STAGE_PEOPLE = """
INSERT INTO {people} (person_id, case_id, last_on, old_level, contact_id)
SELECT s.person_id, s.case_id, s.last_on,
       CASE WHEN s.old_id IS NOT NULL THEN (SELECT t.level FROM contacts t WHERE t.id = s.old_id)
       END,
       COALESCE(s.old_id, {new_id})
FROM (
    SELECT g.person_id, g.case_id, g.last_on,
           (SELECT t.id FROM contacts t WHERE t.person_id = g.person_id AND t.status = 'active')
               AS old_id
    FROM (SELECT person_id, MIN(case_id) AS case_id, MAX(last_on) AS last_on
          FROM {staged} GROUP BY person_id {fence}) g
    {fence}
) s
{known}
"""

#: The registry check of :data:`STAGE_PEOPLE` (an index-only probe of its key per new person).
_KNOWN = (
    "WHERE s.old_id IS NOT NULL"
    " OR EXISTS (SELECT 1 FROM persons p WHERE p.id = s.person_id {fence})"
)

_NEW_ID = {
    "postgresql": "nextval('contacts_id_seq')",
    # Past every id in use or staged (both levels are staged before either is written).
    "sqlite": "(SELECT COALESCE(MAX(i), 0) FROM (SELECT MAX(id) AS i FROM contacts"
    " UNION ALL SELECT MAX(contact_id) FROM exp_close_people"
    " UNION ALL SELECT MAX(contact_id) FROM exp_secondary_people))"
    " + ROW_NUMBER() OVER (ORDER BY s.person_id)",
}

#: Driven from this batch's close paths (never from every active close contact) with their
#: staged contact ids (joined inside a fence, so that the edge scan keeps each path's exposure
#: day in its index range). Each edge row is filtered before the grouping by two hash
#: anti-joins (this batch's close people, open cases: cheaper per row than a probe per grouped
#: candidate, and the grouping shrinks by half); each grouped candidate by one probe for an
#: active close contact (above the fence).
SECOND_HOP = """
INSERT INTO exp_secondary (person_id, via_contact_id, case_id, last_on)
SELECT g.other_id, g.via_contact_id, g.case_id, g.last_on
FROM (
    SELECT e.other_id, x.via_contact_id, x.case_id, MAX(e.exposed_on) AS last_on
    FROM (SELECT c.person_id, c.case_id, c.last_on, p.contact_id AS via_contact_id
          FROM exp_close c JOIN exp_close_people p ON p.person_id = c.person_id {fence}) x
    JOIN exposure_edges e ON e.person_id = x.person_id AND e.exposed_on >= x.last_on
    WHERE e.exposed_on <= :day
      AND NOT EXISTS (SELECT 1 FROM exp_close_people y WHERE y.person_id = e.other_id)
      AND NOT EXISTS (SELECT 1 FROM cases k WHERE k.person_id = e.other_id AND k.status = 'open')
    GROUP BY e.other_id, x.via_contact_id, x.case_id
    {fence}
) g
WHERE COALESCE((SELECT o.level FROM contacts o WHERE o.person_id = g.other_id
                AND o.status = 'active'), '') <> 'close'
"""

#: The new contacts of the staged levels, in one statement: one ordered pass over ``persons``
#: for their residence (both levels together), ``RETURNING`` what the daily counters need.
NEW_CONTACTS = """
INSERT INTO contacts (id, person_id, region_code, level, case_id, identified_on,
                      last_exposure_on, status, created_at)
SELECT n.contact_id, n.person_id, p.region_code, n.level, n.case_id, :day, n.last_on, 'active',
       :now
FROM (SELECT u.* FROM ({people}) u ORDER BY u.person_id {fence}) n
JOIN persons p ON p.id = n.person_id
RETURNING id, level, region_code
"""

_NEW_PEOPLE = """
SELECT contact_id, person_id, case_id, last_on, '{level}' AS level FROM {people}
WHERE old_level IS NULL
"""

#: PostgreSQL: the same, counted by level and district in the database (a few rows back instead
#: of one per contact).
NEW_CONTACTS_COUNTED = """
WITH new AS ({insert})
SELECT level, SUBSTR(region_code, 1, 6), COUNT(*), array_agg(id) FROM new GROUP BY 1, 2
UNION ALL
SELECT level, NULL, COUNT(*), NULL FROM ({people}) u GROUP BY level
"""

#: Staged new people the insert left out (no persons row): no links for them.
UNKNOWN_PEOPLE = """
DELETE FROM {people}
WHERE old_level IS NULL AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = {people}.contact_id)
"""

#: The updates of existing contacts reached again go by the staged ids (``= ANY(ARRAY(…))``,
#: an index condition on the key, never a join: as a semi-join or ``UPDATE … FROM``, stale
#: statistics made PostgreSQL walk every contact per staged row, 100 s for a second batch in one
#: transaction); SQLite: ``IN (…)``.
RAISE_TO_CLOSE = """
UPDATE contacts SET level = 'close'
WHERE id {among} (SELECT contact_id FROM exp_close_people WHERE old_level = 'secondary'){close}
  AND status = 'active' AND level = 'secondary'
RETURNING id, identified_on, region_code
"""

LATER_EXPOSURE = """
UPDATE contacts
SET last_exposure_on = (SELECT p.last_on FROM exp_close_people p
                        WHERE p.person_id = contacts.person_id)
WHERE id {among} (SELECT contact_id FROM exp_close_people WHERE old_level IS NOT NULL){close}
  AND (last_exposure_on IS NULL OR last_exposure_on < (
      SELECT p.last_on FROM exp_close_people p WHERE p.person_id = contacts.person_id))
"""

_AMONG = {"postgresql": ("= ANY(ARRAY", ")"), "sqlite": ("IN", "")}

#: Links from a level's staged paths to the staged people's contacts: a new contact has no
#: links yet, so only the paths of existing contacts are checked against ``contact_links``
#: (NOT EXISTS on the path index, under the expansion lock). A secondary path to a person whose
#: active contact is close is no link (the close contact is linked to its cases).
LINKS = """
SELECT p.contact_id, x.case_id, {via}, '{level}', x.last_on, :now
FROM {staged} x JOIN {people} p ON p.person_id = x.person_id
WHERE p.old_level IS NULL
   OR ({existing} AND NOT EXISTS (
       SELECT 1 FROM contact_links l WHERE l.contact_id = p.contact_id AND {same_via} {fence}))
"""

INSERT_LINKS = """
INSERT INTO contact_links (contact_id, case_id, via_contact_id, level, last_exposure_on,
                           created_at)
"""

_LINK_PARTS = {
    # Every staged close person's contact is close by now (a secondary one was just raised).
    "close": {
        "via": "CAST(NULL AS BIGINT)",
        "existing": "p.old_level IN ('close', 'secondary')",
        # ``+ 0``: probe by contact on the path index; with the statistics of a young table
        # the planner may otherwise take every link of the case from the case_id index.
        "same_via": "l.case_id + 0 = x.case_id AND l.via_contact_id IS NULL",
    },
    "secondary": {
        "via": "x.via_contact_id",
        "existing": "p.old_level = 'secondary'",
        "same_via": "l.case_id = x.case_id AND l.via_contact_id = x.via_contact_id",
    },
}

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
    "level": String(),
    "region_code": String(),
    "identified_on": Date(),
}


def returning(db_session: Session, sql: str, *names: str, **params: Any) -> list[Any]:
    stmt = _stmt(sql, params).columns(*(column(n, _RETURNED[n]) for n in names))
    return list(db_session.execute(stmt, params))


def temp_tables(db_session: Session, *names: str) -> None:
    """Create (once per connection) and empty the named temporary tables. On PostgreSQL they
    also empty themselves at commit (``ON COMMIT DELETE ROWS``: no DELETE after the work)."""
    _create(db_session, *names)
    for name in names:
        db_session.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - a fixed name


def _create(db_session: Session, *names: str) -> None:
    suffix = " ON COMMIT DELETE ROWS" if is_postgres(db_session) else ""
    for name in names:
        db_session.execute(
            text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({_TEMP[name]}){suffix}")
        )


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


#: The key of the transaction-scoped advisory lock every writer of contacts takes (PostgreSQL;
#: SQLite serialises writers anyway): expansions queue one behind the other instead of racing
#: on the unique index row by row.
EXPANSION_LOCK = 0x7472_6163_6500  # "trace"

#: The planner settings of the expansion's statements, as :func:`bastion.core.db.index_lookups`
#: (lookups through indexes, never a scan of a table that grows inside the transaction faster
#: than its statistics) plus no memoized inner scans (a cache keyed by person drops the
#: exposure-day bound from the edge index's range). Restored on the way out.
_PLANS = {
    "enable_seqscan": "off",
    "enable_mergejoin": "off",
    "enable_hashjoin": "off",
    "enable_memoize": "off",
}


def lock(db_session: Session) -> None:
    """Take the expansion lock, for the rest of the transaction, with its settings: no JIT (the
    scans disabled by :data:`_PLANS` inflate costs past its thresholds, and compiling cost more
    than running) and room to sort and hash a batch in memory. One round trip."""
    if is_postgres(db_session):
        db_session.execute(
            text(
                f"SELECT pg_advisory_xact_lock({EXPANSION_LOCK}),"
                " set_config('jit', 'off', true), set_config('work_mem', '64MB', true)"
            )
        )


@contextmanager
def _expansion(db_session: Session) -> Iterator[None]:
    """The lock and :data:`_PLANS` for the statements inside (two round trips in all)."""
    if not is_postgres(db_session):
        yield
        return
    plans = "".join(f", set_config('{k}', '{v}', true)" for k, v in _PLANS.items())
    db_session.execute(
        text(
            f"SELECT pg_advisory_xact_lock({EXPANSION_LOCK}),"
            f" set_config('jit', 'off', true), set_config('work_mem', '64MB', true){plans}"
        )
    )
    # Restored on the way out only: after an error the transaction (or savepoint) is rolled
    # back, which undoes these settings, and a statement here would hide the error.
    yield
    back = ", ".join(f"set_config('{k}', 'on', true)" for k in _PLANS)
    db_session.execute(text(f"SELECT {back}"))


@contextmanager
def _hash_joins(db_session: Session) -> Iterator[None]:
    """Hash joins for one statement joining staged tables (one side hashed instead of a probe
    of its index per row of the other). In those statements every probe of ``contacts`` and
    ``contact_links`` is written so that the planner cannot turn it into a join (a correlated
    scalar subquery, or a fenced NOT EXISTS under an OR); the open cases may be hashed (read
    once from their partial index), and the edge table is only worth a hash to a planner that
    would scan all of it, which its size rules out."""
    if not is_postgres(db_session):
        yield
        return
    db_session.execute(text("SELECT set_config('enable_hashjoin', 'on', true)"))
    yield
    db_session.execute(text("SELECT set_config('enable_hashjoin', 'off', true)"))


def _fence(db_session: Session) -> str:
    return "OFFSET 0" if is_postgres(db_session) else ""


def _stage_people(db_session: Session, level: str) -> int:
    """Stage the people of ``level``. New people are checked against the registry here for the
    close level (a close contact's id goes into the second hop before anything is written),
    and on SQLite; secondary ones on PostgreSQL by the insert itself (:func:`_write`), which
    saves a probe per new secondary contact."""
    staged, people = _STAGED[level]
    fence = _fence(db_session)
    postgres = is_postgres(db_session)
    known = "" if postgres and level == "secondary" else _KNOWN.format(fence=fence)
    sql = STAGE_PEOPLE.format(
        people=people,
        staged=staged,
        new_id=_NEW_ID["postgresql" if postgres else "sqlite"],
        fence=fence,
        known=known,
    )
    return run(db_session, sql).rowcount or 0


def _second_hop(db_session: Session, day: date) -> int:
    with _hash_joins(db_session):
        return run(db_session, SECOND_HOP.format(fence=_fence(db_session)), day=day).rowcount or 0


def _write(
    db_session: Session, levels: Sequence[str], *, day: date, now: datetime
) -> tuple[dict[str, list[int]], int]:
    """Write the people staged for ``levels`` (:func:`_stage_people`): secondary contacts raised
    to close, later exposures, new contacts, links, the daily counters. The ids of the new
    contacts (and of the raised ones, as close) by level, and the number of links written."""
    ids: dict[str, list[int]] = {level: [] for level in levels}
    changes: counters.Deltas = {}
    if "close" in levels:
        among, close = _AMONG["postgresql" if is_postgres(db_session) else "sqlite"]
        raise_sql = RAISE_TO_CLOSE.format(among=among, close=close)
        raised = returning(db_session, raise_sql, "id", "identified_on", "region_code")
        changes = counters.deltas(
            identified=[(r[1], r[2], "close") for r in raised],
            unidentified=[(r[1], r[2], "secondary") for r in raised],
        )
        ids["close"] = [int(r[0]) for r in raised]
        run(db_session, LATER_EXPOSURE.format(among=among, close=close))
    fence = _fence(db_session)
    people = " UNION ALL ".join(
        _NEW_PEOPLE.format(level=level, people=_STAGED[level][1]) for level in levels
    )
    insert = NEW_CONTACTS.format(people=people, fence=fence)
    new: dict[str, list[int]] = {level: [] for level in levels}
    staged_new: dict[str, int] = {}
    if is_postgres(db_session):
        for level, district, n, made in run(
            db_session, NEW_CONTACTS_COUNTED.format(insert=insert, people=people), day=day, now=now
        ):
            if district is None:  # the staged count (a contact always has a residence)
                staged_new[level] = int(n)
                continue
            _merge(changes, {(day, district, level): (int(n), 0)})
            new[level] += made
        for level, n in staged_new.items():
            if n != len(new[level]):
                run(db_session, UNKNOWN_PEOPLE.format(people=_STAGED[level][1]))
    else:
        rows = returning(db_session, insert, "id", "level", "region_code", day=day, now=now)
        for level, made in new.items():
            made += [int(r[0]) for r in rows if r[1] == level]
        _merge(changes, counters.deltas(identified=[(day, r[2], r[1]) for r in rows]))
    counters.add(db_session, changes)
    links_sql = INSERT_LINKS + " UNION ALL ".join(
        LINKS.format(
            level=level,
            staged=_STAGED[level][0],
            people=_STAGED[level][1],
            fence=fence,
            **_LINK_PARTS[level],
        )
        for level in levels
    )
    with _hash_joins(db_session):
        links = run(db_session, links_sql, now=now).rowcount or 0
    return {level: sorted(new[level]) + ids[level] for level in levels}, links


def _merge(into: counters.Deltas, more: counters.Deltas) -> None:
    for key, (identified, released) in more.items():
        was = into.get(key, (0, 0))
        into[key] = (was[0] + identified, was[1] + released)


def _store_contacts(
    db_session: Session, *, day: date, now: datetime, secondary: bool
) -> ExpansionResult:
    out = ExpansionResult()
    temp_tables(db_session, "exp_close_people", "exp_secondary_people")
    _stage_people(db_session, "close")
    levels = ["close"]
    if secondary:
        out.secondary_candidates = _second_hop(db_session, day)
        _stage_people(db_session, "secondary")
        levels.append("secondary")
    ids, out.links_created = _write(db_session, levels, day=day, now=now)
    out.close_ids = ids["close"]
    out.secondary_ids = ids.get("secondary", [])
    return out


def store_contacts(
    db_session: Session, *, day: date, now: datetime, secondary: bool
) -> ExpansionResult:
    """Turn the staged ``exp_close`` rows into contacts and links and, when ``secondary``, walk
    the second hop into ``exp_secondary`` and store those too."""
    with _expansion(db_session):
        return _store_contacts(db_session, day=day, now=now, secondary=secondary)


def store_secondary(db_session: Session, *, day: date, now: datetime) -> tuple[list[int], int]:
    """Turn the staged ``exp_secondary`` rows into secondary contacts and their links; the new
    contacts' ids and the number of links written."""
    with _expansion(db_session):
        _create(db_session, "exp_close_people")
        temp_tables(db_session, "exp_secondary_people")
        _stage_people(db_session, "secondary")
        ids, links = _write(db_session, ["secondary"], day=day, now=now)
    return ids["secondary"], links


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
        with _expansion(db_session):
            return _expand_staged(db_session, case_ids, profile, day, now)
    finally:
        if not is_postgres(db_session):
            temp_tables(db_session, *_TEMP)
        _expire_loaded(db_session)


def _expand_staged(
    db_session: Session, case_ids: Sequence[int], profile: Profile, day: date, now: datetime
) -> ExpansionResult:
    cases = stage_cases(db_session, case_ids, profile)
    if cases == 0:
        return ExpansionResult(profile=profile.key)
    close_candidates = run(db_session, FIRST_HOP, day=day).rowcount or 0
    close_candidates += run(db_session, HOUSEHOLD_HOP, day=day).rowcount or 0
    traced = classify.contact_level(source="close", profile=profile) is not None
    result = _store_contacts(db_session, day=day, now=now, secondary=traced)
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
    if is_postgres(db_session):
        db_session.execute(text("ANALYZE exp_cases"))
    count = int(run(db_session, TWO_HOP_COUNT, day=day).scalar_one())
    temp_tables(db_session, "exp_cases")
    return count


def _expire_loaded(db_session: Session) -> None:
    for obj in list(db_session.identity_map.values()):
        if isinstance(obj, Contact | ContactLink):
            db_session.expire(obj)
