"""The set-based statements of the scan path: staging tables and the chunk's verdicts.

A chunk costs four statements on the database after its COPY into ``scan_stage``: CLASSIFY
(every verdict, positions and the ids of new tubes, in one pass with one sort), WRITE_TUBES
(new tubes in, existing tubes' counts up), the members (a binary COPY fed by a COPY out of the
verdicts on PostgreSQL, INSERT … SELECT on SQLite) and OUTCOMES (what the senders must hear).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool, PoolResetState

from bastion.core.db import is_postgres

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


_STAGE_DDL = """CREATE TEMPORARY TABLE IF NOT EXISTS scan_stage (
    batch_id BIGINT, row_no BIGINT, round_id INTEGER, site_id INTEGER,
    site_region VARCHAR(15), barcode VARCHAR(24), person_token VARCHAR(32),
    id_hash VARCHAR(64), scanned_at {ts}, kind VARCHAR(16), capacity SMALLINT,
    retest BOOLEAN, has_grids BOOLEAN){on_commit}"""
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
    # The pool rolls back a connection returned mid-transaction (a committed or rolled back
    # one it leaves alone: the Connection did that, and its events above have run).
    if not state.transaction_was_reset:
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
    if is_postgres(db_session):
        # TRUNCATE swaps in empty files at once (a temporary table is ours alone), leaving no
        # dead rows behind for the next chunk's scans.
        _driver(db_session).execute("TRUNCATE scan_stage; TRUNCATE scan_verdict")
        return
    for table in ("scan_stage", "scan_verdict"):
        db_session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names


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
           CASE
               WHEN person_id IS NULL THEN 'unknown_person'
               WHEN tube_id IS NOT NULL AND tube_round <> round_id THEN 'tube_other_round'
               WHEN tube_id IS NOT NULL AND tube_site <> site_id THEN 'tube_other_site'
               WHEN prior_tube IS NOT NULL AND prior_tube = tube_id THEN 'unchanged'
               WHEN prior_tube IS NOT NULL THEN 'already_sampled'
               WHEN NOT retest AND person_rank > 1 AND first_barcode = barcode THEN 'duplicate'
               WHEN NOT retest AND person_rank > 1 THEN 'person_twice'
               WHEN tube_id IS NOT NULL AND tube_state <> 'open' THEN 'tube_closed'
               ELSE 'ok'
           END AS verdict0
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


def classify(db_session: Session) -> str:
    """The chunk's judging statement for the session's database."""
    dialect = "postgresql" if is_postgres(db_session) else "sqlite"
    return _CLASSIFY.format(fresh_ids=_FRESH_IDS[dialect], fresh_id=_FRESH_ID[dialect])


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
COPY_MEMBERS_OUT = f"COPY ({NEW_MEMBERS}) TO STDOUT (FORMAT BINARY)"
COPY_MEMBERS_IN = f"COPY tube_members ({', '.join(MEMBER_COLUMNS)}) FROM STDIN (FORMAT BINARY)"

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
