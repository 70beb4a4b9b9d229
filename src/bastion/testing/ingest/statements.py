"""The set-based statements of the scan path: staging tables and the chunk's verdicts.

A chunk costs four statements on the database after its COPY into ``scan_stage``: CLASSIFY
(every verdict, positions and the ids of new tubes), WRITE_TUBES (new tubes in, existing tubes'
counts up), the members (INSERT … SELECT) and OUTCOMES (what the senders must hear). A large
chunk on PostgreSQL (files) is judged by PG_CLASSIFY_BULK, the same verdicts in a form cheaper
in bulk, or by PG_CLASSIFY_RESOLVED once a reading connection has looked up its people
(``resolve``).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool, PoolResetState

from bastion.core.db import empty_temp_tables, is_postgres

STAGE_COLUMNS = [
    "batch_id",
    "row_no",
    "round_id",
    "site_id",
    "site_region",
    "barcode",
    "person_token",
    "id_hash",
    "scanned_at",
    "kind",
    "capacity",
    "retest",
    "has_grids",
]


#: What a reading connection adds to a large chunk's rows before the writer sees them
#: (``resolve``; NULL otherwise): the person, their home, their rank among the chunk's scans of
#: them, the barcode of the first of those, the row's place among its barcode's rows of the
#: chunk that the reader could judge acceptable (``PG_CLASSIFY_PLACED``), and whether it is
#: its barcode's first row of the chunk.
RESOLVED_COLUMNS = [
    "known_person",
    "known_home",
    "known_rank",
    "known_first",
    "known_pos",
    "known_lead",
]

_STAGE_DDL = """CREATE TEMPORARY TABLE IF NOT EXISTS scan_stage (
    batch_id BIGINT, row_no BIGINT, round_id INTEGER, site_id INTEGER,
    site_region VARCHAR(15), barcode VARCHAR(24), person_token VARCHAR(32),
    id_hash VARCHAR(64), scanned_at {ts}, kind VARCHAR(16), capacity SMALLINT,
    retest BOOLEAN, has_grids BOOLEAN, known_person BIGINT, known_home VARCHAR(15),
    known_rank BIGINT, known_first VARCHAR(24), known_pos BIGINT,
    known_lead BOOLEAN){on_commit}"""
# Column types match tube_members' where a member's value is copied from here (binary COPY
# passes the bytes through unchanged).
_VERDICT_DDL = """CREATE TEMPORARY TABLE IF NOT EXISTS scan_verdict (
    batch_id BIGINT, row_no BIGINT, round_id INTEGER, site_id INTEGER,
    site_region VARCHAR(15), barcode VARCHAR(24), kind VARCHAR(16), capacity SMALLINT,
    retest BOOLEAN, scanned_at {ts}, person_id BIGINT, home VARCHAR(15), tube_id BIGINT,
    fresh_id BIGINT, position SMALLINT, off_grid BOOLEAN, verdict VARCHAR(24)){on_commit}"""
#: Both tables at once (one round trip; PostgreSQL empties them itself at each commit).
PG_TEMP_TABLES = ";\n".join(
    ddl.format(ts="TIMESTAMP WITH TIME ZONE", on_commit=" ON COMMIT DELETE ROWS")
    for ddl in (_STAGE_DDL, _VERDICT_DDL)
)


def _driver(db_session: Session) -> Any:
    raw = db_session.connection().connection.driver_connection
    assert raw is not None
    return raw


#: Set in a connection's ``info`` once its staging tables exist.
_MADE = "scan_temp_tables"


@event.listens_for(Engine, "rollback")
@event.listens_for(Engine, "rollback_savepoint")
def _forget_on_rollback(conn: Connection, *args: Any) -> None:
    # Tables created in a transaction (or savepoint) that rolls back are gone with it.
    conn.info.pop(_MADE, None)


@event.listens_for(Pool, "reset")
def _forget_on_reset(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
    # The pool rolls back every connection returned to it. After a commit that loses nothing
    # (the tables were committed with the transaction that made them); only a transaction
    # still open on the driver's connection, which that rollback ends, takes its new tables
    # with it. (``transaction_was_reset`` cannot tell these apart: it is false after a commit
    # too, and forgetting there made every live group create the tables again.)
    status = getattr(getattr(dbapi_connection, "info", None), "transaction_status", None)
    if status is None or int(status) != 0:  # not psycopg, or not idle (pq.TransactionStatus)
        record.info.pop(_MADE, None)


def create_temp_tables(db_session: Session) -> None:
    """Create the staging tables once per database connection on PostgreSQL (which keeps them,
    emptied at each commit, for the connection's life: creating them again for every live group
    cost a round trip and two notices); a rollback makes the next call create them again."""
    if is_postgres(db_session):
        info = db_session.connection().info
        if not info.get(_MADE):
            _driver(db_session).execute(PG_TEMP_TABLES)  # several statements: simple protocol
            info[_MADE] = True
        return
    for ddl in (_STAGE_DDL, _VERDICT_DDL):
        db_session.execute(text(ddl.format(ts="DATETIME", on_commit="")))


def clear_temp_tables(db_session: Session) -> None:
    empty_temp_tables(db_session, "scan_stage", "scan_verdict")


#: The session settings of a PostgreSQL ingest. Chunks sort and hash tens of thousands of
#: rows: memory instead of disk; JIT compilation costs more than it saves here.
_PG_SETTINGS = "set_config('work_mem', '128MB', true), set_config('jit', 'off', true)"
#: Joins through indexes only (what ``core.db.index_lookups`` sets), as a SELECT's items.
_PG_INDEX_LOOKUPS = ", ".join(
    f"set_config('{name}', '{{0}}', true)"
    for name in ("enable_seqscan", "enable_mergejoin", "enable_hashjoin")
)


def pg_index_lookups(on: bool) -> str:
    """One statement forcing joins through indexes (``on``) or freeing the planner again."""
    return "SELECT " + _PG_INDEX_LOOKUPS.format("off" if on else "on")


#: Settings, index lookups forced, ``n`` batch ids and which of the keys exist: one round trip.
PG_OPEN = f"""
SELECT {_PG_SETTINGS}, {_PG_INDEX_LOOKUPS.format("off")},
       (SELECT array_agg(nextval(pg_get_serial_sequence('scan_batches', 'id')))
        FROM generate_series(1, %(n)s)),
       (SELECT array_agg(key) FROM scan_batches WHERE key = ANY(%(keys)s))
"""  # noqa: S608 - fixed text

#: The rounds the live API keeps (``SiteCache``), as they stand in this transaction: their
#: status for the row checks and what keys their coverage statements; sent with PG_OPEN.
PG_ROUNDS_KEPT = """
SELECT id, status, closed_at, region_code, exemptions, starts_at, deadline_at
FROM test_rounds WHERE id = ANY(%(ids)s)
"""


#: Ids for the chunk's new tubes, one per distinct barcode of the chunk (ids of barcodes that end
#: up refused or already exist are simply never used). PostgreSQL takes them from the tubes'
#: sequence in one call, safe against concurrent writers; SQLite has one writer at a time.
_FRESH_IDS = {
    "postgresql": """(SELECT array_agg(nextval('tubes_id_seq')) AS a
                      FROM generate_series(1, (SELECT COUNT(DISTINCT barcode) FROM scan_stage)))""",
    "sqlite": "(SELECT COALESCE(MAX(id), 0) AS a FROM tubes)",
}
_FRESH_ID = {
    "postgresql": "(SELECT a FROM ids)[barcode_rank]",
    "sqlite": "(SELECT a FROM ids) + barcode_rank",
}

#: A row's verdict before the pool size is applied (CLASSIFY and PG_CLASSIFY_BULK share it: the
#: same refusals, in the same order, whichever statement judges the chunk).
_VERDICT0 = """CASE
               WHEN person_id IS NULL THEN 'unknown_person'
               WHEN tube_id IS NOT NULL AND tube_round <> round_id THEN 'tube_other_round'
               WHEN tube_id IS NOT NULL AND tube_site <> site_id THEN 'tube_other_site'
               WHEN prior_tube IS NOT NULL AND prior_tube = tube_id THEN 'unchanged'
               WHEN prior_tube IS NOT NULL THEN 'already_sampled'
               WHEN NOT retest AND person_rank > 1 AND first_barcode = barcode THEN 'duplicate'
               WHEN NOT retest AND person_rank > 1 THEN 'person_twice'
               WHEN tube_id IS NOT NULL AND tube_state <> 'open' THEN 'tube_closed'
               ELSE 'ok'
           END AS verdict0"""

_CLASSIFY = """
WITH ids AS MATERIALIZED {fresh_ids},
resolved AS (
    SELECT s.*,
           COALESCE(pt.id, ph.id) AS person_id,
           COALESCE(pt.region_code, ph.region_code) AS home
    FROM scan_stage s
    LEFT JOIN persons pt ON s.person_token IS NOT NULL AND pt.token = s.person_token
    LEFT JOIN persons ph ON s.id_hash IS NOT NULL AND ph.id_hash = s.id_hash
),
tubed AS (
    SELECT r.*,
           t.id AS tube_id, t.round_id AS tube_round, t.site_id AS tube_site,
           t.state AS tube_state,
           COALESCE(t.capacity, r.capacity) AS cap,
           COALESCE(t.member_count, 0) AS filled,
           m.tube_id AS prior_tube,
           ROW_NUMBER() OVER person_order AS person_rank,
           FIRST_VALUE(r.barcode) OVER person_order AS first_barcode
    FROM resolved r
    LEFT JOIN tubes t ON t.barcode = r.barcode
    LEFT JOIN tube_members m
           ON NOT r.retest AND m.round_id = r.round_id AND m.person_id = r.person_id
          AND NOT m.retest
    WINDOW person_order AS (
        PARTITION BY r.round_id, r.person_id, r.retest ORDER BY r.scanned_at, r.batch_id, r.row_no
    )
),
judged AS (
    SELECT tubed.*,
{verdict0}
    FROM tubed
),
placed AS (
    -- One sort serves both windows: positions within a barcode's accepted rows, and the
    -- barcode's rank among the chunk's barcodes (its new tube id, if it needs one).
    SELECT judged.*,
           filled + ROW_NUMBER() OVER (
               PARTITION BY barcode, verdict0 ORDER BY scanned_at, batch_id, row_no
           ) AS pos,
           DENSE_RANK() OVER (ORDER BY barcode) AS barcode_rank
    FROM judged
)
INSERT INTO scan_verdict (batch_id, row_no, round_id, site_id, site_region, barcode, kind, capacity,
                          retest, scanned_at, person_id, home, tube_id, fresh_id, position,
                          off_grid, verdict)
SELECT p.batch_id, p.row_no, p.round_id, p.site_id, p.site_region, p.barcode, p.kind, p.cap,
       p.retest, p.scanned_at, p.person_id, p.home, p.tube_id,
       CASE WHEN p.tube_id IS NULL AND p.verdict0 = 'ok' THEN {fresh_id} END,
       CASE WHEN p.verdict0 = 'ok' AND p.pos <= p.cap THEN p.pos END,
       p.has_grids AND NOT EXISTS (
           SELECT 1 FROM sampling_site_grids g
           WHERE g.site_id = p.site_id AND g.region_code = p.home
       ),
       CASE WHEN p.verdict0 = 'ok' AND p.pos > p.cap THEN 'tube_full' ELSE p.verdict0 END
FROM placed p
"""


#: PostgreSQL, a large chunk (files): the same verdicts as CLASSIFY (row for row, positions and
#: flags included), about 40 ms cheaper per 50,000 rows. Every lookup in a table of the record
#: is a LATERAL subquery (LIMIT 1: each is by a unique index), which the planner can only run as
#: an index probe per row whatever its statistics say; that leaves it free to hash-join what is
#: the chunk's own (run after ``PG_BULK_SETTINGS``, which allows hash joins):
#:
#: - the tubes are looked up once per distinct barcode, not once per row (a file has about a
#:   tenth as many tubes as rows), and a barcode without a tube takes its new id there, from the
#:   tubes' sequence: no DENSE_RANK over the chunk (a window holding every row of the chunk);
#: - positions are a running count of the accepted rows within the barcode, so the second sort
#:   is by barcode and scan order only (not by the verdict too);
#: - rows carry only the columns the verdicts need through the two sorts (not token, ID hash).
#: Every chunk barcode's tube, if it has one (a lookup by a unique index per distinct barcode),
#: locked, and a new id from the tubes' sequence if not. The barcodes are visited in order, so
#: two writers lock their common tubes in the same order and never wait on each other in a
#: cycle (as LOCK_TUBES does for the live path).
_BARCODES_OF = """barcodes AS MATERIALIZED (
    SELECT d.barcode, t.id AS tube_id, t.round_id AS tube_round, t.site_id AS tube_site,
           t.state AS tube_state, t.capacity AS tube_cap, t.member_count AS filled,
           CASE WHEN t.id IS NULL THEN nextval('tubes_id_seq') END AS fresh_id
    FROM ({distinct} ORDER BY barcode) d
    LEFT JOIN LATERAL (
        SELECT id, round_id, site_id, state, capacity, member_count
        FROM tubes WHERE tubes.barcode = d.barcode LIMIT 1
        FOR UPDATE
    ) t ON true
)"""
_BARCODES = _BARCODES_OF.format(distinct="SELECT DISTINCT barcode FROM scan_stage")
#: The same for a resolved chunk, whose barcodes the reader found (``known_lead``): a sort of
#: the tubes, not of every row.
_RESOLVED_BARCODES = _BARCODES_OF.format(distinct="SELECT barcode FROM scan_stage WHERE known_lead")

#: The person of a staged row by token or ID hash (``{when}``: a condition on the row that
#: must hold for the lookups to run at all).
_PERSON_LOOKUPS = """LEFT JOIN LATERAL (
        SELECT id, region_code FROM persons
        WHERE {when}s.person_token IS NOT NULL AND persons.token = s.person_token LIMIT 1
    ) pt ON true
    LEFT JOIN LATERAL (
        SELECT id, region_code FROM persons
        WHERE {when}s.id_hash IS NOT NULL AND persons.id_hash = s.id_hash LIMIT 1
    ) ph ON true"""

#: Positions (a running count of the accepted rows within the barcode, so one sort by barcode
#: and scan order serves); ``judged`` has every column the verdict rows name.
_PLACE_BY_WINDOW = """placed AS (
    SELECT judged.*,
           filled + COUNT(*) FILTER (WHERE verdict0 = 'ok') OVER (
               PARTITION BY barcode ORDER BY scanned_at, batch_id, row_no
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
           ) AS pos
    FROM judged
)"""
#: The same positions as the reader counted them (``PG_CLASSIFY_PLACED``): no sort here.
_PLACE_AS_KNOWN = """placed AS (
    SELECT judged.*, filled + known_pos AS pos FROM judged
)"""
#: The verdict rows of ``placed``.
_WRITE_VERDICTS = """
INSERT INTO scan_verdict (batch_id, row_no, round_id, site_id, site_region, barcode, kind, capacity,
                          retest, scanned_at, person_id, home, tube_id, fresh_id, position,
                          off_grid, verdict)
SELECT p.batch_id, p.row_no, p.round_id, p.site_id, p.site_region, p.barcode, p.kind, p.cap,
       p.retest, p.scanned_at, p.person_id, p.home, p.tube_id,
       CASE WHEN p.tube_id IS NULL AND p.verdict0 = 'ok' THEN p.fresh_id END,
       CASE WHEN p.verdict0 = 'ok' AND p.pos <= p.cap THEN p.pos END,
       p.has_grids AND NOT EXISTS (
           SELECT 1 FROM sampling_site_grids g
           WHERE g.site_id = p.site_id AND g.region_code = p.home
       ),
       CASE WHEN p.verdict0 = 'ok' AND p.pos > p.cap THEN 'tube_full' ELSE p.verdict0 END
FROM placed p"""
_PLACE_AND_WRITE = f"{_PLACE_BY_WINDOW}\n{_WRITE_VERDICTS}"

PG_CLASSIFY_BULK = f"""
WITH {_BARCODES},
tubed AS (
    SELECT s.batch_id, s.row_no, s.round_id, s.site_id, s.site_region, s.barcode, s.kind,
           s.retest, s.scanned_at, s.has_grids,
           COALESCE(s.known_person, pt.id, ph.id) AS person_id,
           COALESCE(s.known_home, pt.region_code, ph.region_code) AS home,
           b.tube_id, b.tube_round, b.tube_site, b.tube_state, b.fresh_id,
           COALESCE(b.tube_cap, s.capacity) AS cap,
           COALESCE(b.filled, 0) AS filled,
           m.tube_id AS prior_tube
    FROM scan_stage s
    LEFT JOIN barcodes b ON b.barcode = s.barcode
    {_PERSON_LOOKUPS.format(when="s.known_person IS NULL AND ")}
    LEFT JOIN LATERAL (
        SELECT m.tube_id FROM tube_members m
        WHERE NOT s.retest AND m.round_id = s.round_id
          AND m.person_id = COALESCE(s.known_person, pt.id, ph.id) AND NOT m.retest
        LIMIT 1
    ) m ON true
),
ranked AS (
    SELECT tubed.*,
           ROW_NUMBER() OVER person_order AS person_rank,
           FIRST_VALUE(barcode) OVER person_order AS first_barcode
    FROM tubed
    WINDOW person_order AS (
        PARTITION BY round_id, person_id, retest ORDER BY scanned_at, batch_id, row_no
    )
),
judged AS (
    SELECT ranked.*,
{_VERDICT0}
    FROM ranked
),
{_PLACE_AND_WRITE}
"""  # noqa: S608 - fixed fragments, no input

#: The reading connection's half of a large chunk (``resolve``): its rows, in its own
#: ``scan_stage``, come back as binary COPY data with RESOLVED_COLUMNS filled from what is
#: committed. A person the reader cannot see is a partition of their own: the writer looks
#: them up and, if they are in the chunk twice, the unique index on (round, person) stops the
#: chunk, which is then judged again whole (``PG_CLASSIFY_BULK``).
#: The staged columns the reader sends back: a person's token and ID hash only when it could
#: not find them (the writer then looks them up), so the writer copies less.
_RESOLVED_STAGE = [
    f"CASE WHEN r.person_id IS NULL THEN s.{c} END AS {c}"
    if c in ("person_token", "id_hash")
    else f"s.{c}"
    for c in STAGE_COLUMNS
]
#: ``known_pos``: the running count, in scan order, of the barcode's rows the reader finds
#: acceptable (a person found, and the first of their scans unless a retest). Every other
#: refusal of the verdicts is the tube's (its round, site or state), the same for all of a
#: barcode's rows of one round and site, which take no place then; so this count is each
#: accepted row's place among the chunk's accepted rows of its tube, unless the barcode comes
#: with several rounds or sites (the reader then sends none) or the writer finds a person the
#: reader could not. ``known_lead``: the barcode's first row (the writer's tubes, one a barcode).
_RESOLVE_OUT = f"""COPY (
    SELECT q.*, {{place}} AS known_pos, ROW_NUMBER() OVER tube_order = 1 AS known_lead
    FROM (
        SELECT {", ".join(_RESOLVED_STAGE)},
               r.person_id AS known_person, r.home AS known_home,
               {{ranks}}
        FROM scan_stage s
        {_PERSON_LOOKUPS.format(when="")}
        CROSS JOIN LATERAL (
            SELECT COALESCE(pt.id, ph.id) AS person_id,
                   COALESCE(pt.region_code, ph.region_code) AS home
        ) r
        {{person_order}}
    ) q
    WINDOW tube_order AS (
        PARTITION BY q.barcode ORDER BY q.scanned_at, q.batch_id, q.row_no
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    )
) TO STDOUT (FORMAT BINARY)"""  # noqa: S608 - fixed fragments, no input
_PLACES = """COUNT(*) FILTER (
        WHERE q.known_person IS NOT NULL AND (q.retest OR q.known_rank = 1)
    ) OVER tube_order"""
_RANKS = """ROW_NUMBER() OVER person_order AS known_rank,
               CASE WHEN ROW_NUMBER() OVER person_order > 1
                    THEN FIRST_VALUE(s.barcode) OVER person_order END AS known_first"""
_PERSON_ORDER = """WINDOW person_order AS (
            PARTITION BY s.round_id, r.person_id, s.retest,
                         CASE WHEN r.person_id IS NULL THEN s.batch_id END,
                         CASE WHEN r.person_id IS NULL THEN s.row_no END
            ORDER BY s.scanned_at, s.batch_id, s.row_no
        )"""


@functools.cache
def pg_resolve_out(*, ranked: bool, placed: bool) -> str:
    """The reader's statement for a chunk (``resolve``): with each person's scans ranked
    (``ranked``; otherwise every scan is its person's first, for a chunk that names nobody
    twice: no sort by person; a person named once by token and once by ID number then gets two
    first scans, and the unique index on (round, person) stops the chunk), and with places
    (``placed``; not for a chunk where a barcode comes with several rounds or sites)."""
    return _RESOLVE_OUT.format(
        place=_PLACES if placed else "NULL::BIGINT",
        ranks=_RANKS if ranked else "1::BIGINT AS known_rank, NULL::VARCHAR(24) AS known_first",
        person_order=_PERSON_ORDER if ranked else "",
    )


#: The writer's half of a resolved chunk, before its verdicts: people the reader could not see
#: (registered in this transaction) are looked up here, a few rows at most. Answers whether the
#: reader's places hold (``known_pos``): the reader sent them, and none of those people was
#: found (one pass over the chunk for both).
PG_RESOLVE_REST = f"""
WITH unsure AS MATERIALIZED (
    SELECT ctid AS row_id, person_token, id_hash, known_pos IS NULL AS unplaced
    FROM scan_stage WHERE known_person IS NULL OR known_pos IS NULL
),
found AS (
    UPDATE scan_stage SET known_person = f.person_id, known_home = f.home
    FROM (SELECT s.row_id, COALESCE(pt.id, ph.id) AS person_id,
                 COALESCE(pt.region_code, ph.region_code) AS home
          FROM unsure s
          {_PERSON_LOOKUPS.format(when="")}) f
    WHERE f.person_id IS NOT NULL AND scan_stage.ctid = f.row_id
    RETURNING 1
)
SELECT NOT EXISTS (SELECT 1 FROM found) AND NOT EXISTS (SELECT 1 FROM unsure WHERE unplaced)
"""  # noqa: S608 - fixed fragments, no input

#: The writer's verdicts of a resolved chunk: PG_CLASSIFY_BULK's, with the reader's persons and
#: ranks taken as staged; no earlier member is looked up (the unique index on (round, person)
#: stops a chunk that names one, see ``resolve``).
_CLASSIFY_RESOLVED = f"""
WITH {_RESOLVED_BARCODES},
tubed AS (
    SELECT s.batch_id, s.row_no, s.round_id, s.site_id, s.site_region, s.barcode, s.kind,
           s.retest, s.scanned_at, s.has_grids,
           s.known_person AS person_id, s.known_home AS home,
           b.tube_id, b.tube_round, b.tube_site, b.tube_state, b.fresh_id,
           COALESCE(b.tube_cap, s.capacity) AS cap,
           COALESCE(b.filled, 0) AS filled,
           NULL::BIGINT AS prior_tube, s.known_rank AS person_rank,
           s.known_first AS first_barcode, s.known_pos
    FROM scan_stage s
    LEFT JOIN barcodes b ON b.barcode = s.barcode
),
judged AS (
    SELECT tubed.*,
{_VERDICT0}
    FROM tubed
),
{{place}}
{_WRITE_VERDICTS}
"""  # noqa: S608 - fixed fragments, no input
PG_CLASSIFY_RESOLVED = _CLASSIFY_RESOLVED.format(place=_PLACE_BY_WINDOW)
#: The same when the reader's places hold (``PG_RESOLVE_REST`` says so): positions without a
#: sort of the chunk's rows (about 45 ms of the writer's time per 50,000 rows).
PG_CLASSIFY_PLACED = _CLASSIFY_RESOLVED.format(place=_PLACE_AS_KNOWN)


def classify(db_session: Session) -> str:
    """The chunk's judging statement for the session's database."""
    dialect = "postgresql" if is_postgres(db_session) else "sqlite"
    return _CLASSIFY.format(
        fresh_ids=_FRESH_IDS[dialect], fresh_id=_FRESH_ID[dialect], verdict0=_VERDICT0
    )


#: One scan of the tubes' barcode index for the chunk's barcodes, which also yields the rows in
#: barcode order: every writer locks in that order, so two never wait on each other in a cycle.
#: (Ordering by id instead lets a planner with stale statistics walk the whole primary key.)
LOCK_TUBES = """
SELECT t.id FROM tubes t
WHERE t.barcode = ANY (ARRAY(SELECT DISTINCT barcode FROM scan_stage))
ORDER BY t.barcode
FOR UPDATE
"""

#: New tubes are created already counted, with the ids CLASSIFY gave them.
CREATE_TUBES = """
INSERT INTO tubes (id, barcode, round_id, site_id, region_code, kind, capacity, member_count,
                   state, first_scan_at)
SELECT fresh_id, MIN(barcode), MIN(round_id), MIN(site_id), MIN(site_region), MIN(kind),
       MIN(capacity), COUNT(*), 'open', MIN(scanned_at)
FROM scan_verdict
WHERE verdict = 'ok' AND fresh_id IS NOT NULL
GROUP BY fresh_id
"""

COUNT_MEMBERS = """
UPDATE tubes SET member_count = tubes.member_count + c.n
FROM (SELECT tube_id, COUNT(*) AS n FROM scan_verdict
      WHERE verdict = 'ok' AND tube_id IS NOT NULL GROUP BY tube_id) AS c
WHERE tubes.id = c.tube_id
"""

#: PostgreSQL: counts and new tubes in one statement.
PG_WRITE_TUBES = f"""
WITH counted AS ({COUNT_MEMBERS})
{CREATE_TUBES}
"""

#: A large chunk (files): index lookups forced as above but hash joins allowed, for
#: PG_CLASSIFY_BULK and PG_CLASSIFY_RESOLVED (whose every lookup in the record is an index probe
#: by construction, and which lock the chunk's tubes themselves, see ``_BARCODES``).
PG_BULK_SETTINGS = (
    "SELECT set_config('enable_seqscan', 'off', true), "
    "set_config('enable_mergejoin', 'off', true), set_config('enable_hashjoin', 'on', true)"
)
#: A large chunk: hash joins forbidden again (COUNT_MEMBERS joins tubes), then PG_WRITE_TUBES
#: with sorting discouraged: the new tubes are a few thousand groups of the chunk's rows, which
#: a hash finds without sorting every row (the temporary table's missing statistics mislead the
#: planner into sorting); sorting is allowed again afterwards.
PG_BULK_WRITE_TUBES = (
    pg_index_lookups(True).replace("SELECT ", "SELECT set_config('enable_sort', 'off', true), ")
    + ";\n"
    + PG_WRITE_TUBES
    + ";\nSELECT set_config('enable_sort', 'on', true)"
)

MEMBER_COLUMNS = [
    "round_id",
    "tube_id",
    "person_id",
    "position",
    "scanned_at",
    "region_code",
    "off_grid",
    "retest",
    "batch_id",
]
NEW_MEMBERS = """
SELECT round_id, COALESCE(tube_id, fresh_id), person_id, position, scanned_at, home, off_grid,
       retest, batch_id
FROM scan_verdict
WHERE verdict = 'ok'
"""
INSERT_MEMBERS = f"INSERT INTO tube_members ({', '.join(MEMBER_COLUMNS)}) {NEW_MEMBERS}"
#: A resolved chunk into the writer's staging table (``resolve``).
COPY_RESOLVED_IN = (
    f"COPY scan_stage ({', '.join(STAGE_COLUMNS + RESOLVED_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
)

#: PostgreSQL, a small chunk: counts, new tubes and members in one statement.
PG_WRITE_ALL = f"""
WITH counted AS ({COUNT_MEMBERS}),
created AS ({CREATE_TUBES})
{INSERT_MEMBERS}
"""

OUTCOMES = """
SELECT batch_id, row_no, verdict, off_grid, capacity
FROM scan_verdict
WHERE verdict <> 'ok' OR off_grid
ORDER BY batch_id, row_no
"""

#: PostgreSQL, a small chunk: what the senders must hear, clearing both tables on the way
#: (DELETE leaves dead rows; the commit's truncation removes them).
PG_OUTCOMES_CLEARED = """
WITH staged AS (DELETE FROM scan_stage),
judged AS (DELETE FROM scan_verdict RETURNING batch_id, row_no, verdict, off_grid, capacity)
SELECT batch_id, row_no, verdict, off_grid, capacity
FROM judged
WHERE verdict <> 'ok' OR off_grid
ORDER BY batch_id, row_no
"""

#: One household to a household tube (issue #3: lockdown zones test "one tube per household").
#: A row of a household tube whose person lives in another household than the tube's first
#: member (position 1: already in the tube, or the first accepted here) is refused, as is one
#: whose household, or the first member's, is unknown; the accepted rows after it move up, so
#: positions stay 1, 2, 3, … in scan order. Run after the verdicts, before anything is written,
#: for chunks holding household rows only; every join here is a hash join (PostgreSQL: see
#: ``household_check``).
HOUSEHOLD_MIXED = [
    """
WITH heads AS (
    SELECT v.barcode, COALESCE(hm.person_id, hf.person_id) AS head
    FROM (SELECT DISTINCT barcode, tube_id FROM scan_verdict
          WHERE kind = 'household' AND verdict = 'ok') v
    LEFT JOIN tube_members hm ON hm.tube_id = v.tube_id AND hm.position = 1
    LEFT JOIN scan_verdict hf
           ON hf.barcode = v.barcode AND hf.tube_id IS NULL AND hf.position = 1
),
mixed AS (
    SELECT v.batch_id, v.row_no
    FROM scan_verdict v
    JOIN heads h ON h.barcode = v.barcode
    JOIN persons me ON me.id = v.person_id
    LEFT JOIN persons hp ON hp.id = h.head
    WHERE v.kind = 'household' AND v.verdict = 'ok' AND v.position > 1
      AND (me.household_id IS NULL OR hp.household_id IS NULL
           OR me.household_id <> hp.household_id)
)
UPDATE scan_verdict SET verdict = 'household_mixed'
WHERE (batch_id, row_no) IN (SELECT batch_id, row_no FROM mixed)
""",
    """
UPDATE scan_verdict SET position = scan_verdict.position - d.shift
FROM (SELECT v.batch_id, v.row_no, COUNT(*) AS shift
      FROM scan_verdict v
      JOIN scan_verdict x ON x.barcode = v.barcode AND x.verdict = 'household_mixed'
                         AND x.position < v.position
      WHERE v.verdict = 'ok' AND v.kind = 'household'
      GROUP BY v.batch_id, v.row_no) d
WHERE scan_verdict.batch_id = d.batch_id AND scan_verdict.row_no = d.row_no
""",
    "UPDATE scan_verdict SET position = NULL WHERE verdict = 'household_mixed'",
]

#: PostgreSQL: the same with hash joins allowed for its statements only: one statement a step
#: (for the live API's pipeline, which takes no scripts), or one script (the bulk path).
PG_HOUSEHOLD_STEPS = (
    "SELECT set_config('bastion.hashjoin', current_setting('enable_hashjoin'), true), "
    "set_config('enable_hashjoin', 'on', true)",
    *HOUSEHOLD_MIXED,
    "SELECT set_config('enable_hashjoin', current_setting('bastion.hashjoin'), true)",
)
PG_HOUSEHOLD_MIXED = ";\n".join(PG_HOUSEHOLD_STEPS)
