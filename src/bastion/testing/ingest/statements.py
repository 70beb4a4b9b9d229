"""The set-based statements of the scan path: staging tables and the chunk's verdicts."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

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


def create_temp_tables(db_session: Session) -> None:
    ts = "TIMESTAMP WITH TIME ZONE" if is_postgres(db_session) else "DATETIME"
    boolean = "BOOLEAN"
    for ddl in (
        f"""CREATE TEMPORARY TABLE IF NOT EXISTS scan_stage (
            batch_id BIGINT, row_no BIGINT, round_id INTEGER, site_id INTEGER,
            site_region VARCHAR(15), barcode VARCHAR(24), person_token VARCHAR(32),
            id_hash VARCHAR(64), scanned_at {ts}, kind VARCHAR(16), capacity SMALLINT,
            retest {boolean}, has_grids {boolean})""",
        f"""CREATE TEMPORARY TABLE IF NOT EXISTS scan_verdict (
            batch_id BIGINT, row_no BIGINT, round_id INTEGER, site_id INTEGER,
            site_region VARCHAR(15), barcode VARCHAR(24), kind VARCHAR(16), capacity SMALLINT,
            retest {boolean}, scanned_at {ts}, person_id BIGINT, home VARCHAR(15), tube_id BIGINT,
            position INTEGER, off_grid {boolean}, verdict VARCHAR(24))""",
    ):
        db_session.execute(text(ddl))


def clear_temp_tables(db_session: Session) -> None:
    for table in ("scan_stage", "scan_verdict"):
        db_session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names


CLASSIFY = """
WITH resolved AS (
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
           ROW_NUMBER() OVER (
               PARTITION BY r.round_id, r.person_id, r.retest
               ORDER BY r.scanned_at, r.batch_id, r.row_no
           ) AS person_rank,
           FIRST_VALUE(r.barcode) OVER (
               PARTITION BY r.round_id, r.person_id, r.retest
               ORDER BY r.scanned_at, r.batch_id, r.row_no
           ) AS first_barcode
    FROM resolved r
    LEFT JOIN tubes t ON t.barcode = r.barcode
    LEFT JOIN tube_members m
           ON NOT r.retest AND m.round_id = r.round_id AND m.person_id = r.person_id
          AND NOT m.retest
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
    SELECT judged.*,
           filled + ROW_NUMBER() OVER (
               PARTITION BY barcode, verdict0 ORDER BY scanned_at, batch_id, row_no
           ) AS pos
    FROM judged
)
INSERT INTO scan_verdict (batch_id, row_no, round_id, site_id, site_region, barcode, kind, capacity,
                          retest, scanned_at, person_id, home, tube_id, position, off_grid,
                          verdict)
SELECT p.batch_id, p.row_no, p.round_id, p.site_id, p.site_region, p.barcode, p.kind, p.cap,
       p.retest, p.scanned_at, p.person_id, p.home, p.tube_id, p.pos,
       p.has_grids AND NOT EXISTS (
           SELECT 1 FROM sampling_site_grids g
           WHERE g.site_id = p.site_id AND g.region_code = p.home
       ),
       CASE WHEN p.verdict0 = 'ok' AND p.pos > p.cap THEN 'tube_full' ELSE p.verdict0 END
FROM placed p
"""

LOCK_TUBES = """
SELECT t.id FROM tubes t
WHERE t.barcode IN (SELECT DISTINCT barcode FROM scan_stage)
ORDER BY t.id
FOR UPDATE
"""

CREATE_TUBES = """
INSERT INTO tubes (barcode, round_id, site_id, region_code, kind, capacity, member_count, state,
                   first_scan_at)
SELECT barcode, MIN(round_id), MIN(site_id), MIN(site_region), MIN(kind), MIN(capacity),
       COUNT(*), 'open', MIN(scanned_at)
FROM scan_verdict
WHERE verdict = 'ok' AND tube_id IS NULL
GROUP BY barcode
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
SELECT v.round_id, t.id, v.person_id, v.position, v.scanned_at, v.home, v.off_grid, v.retest,
       v.batch_id
FROM scan_verdict v
JOIN tubes t ON t.barcode = v.barcode
WHERE v.verdict = 'ok'
"""
INSERT_MEMBERS = f"INSERT INTO tube_members ({', '.join(MEMBER_COLUMNS)}) {NEW_MEMBERS}"

COUNT_MEMBERS = """
UPDATE tubes SET member_count = tubes.member_count + c.n
FROM (SELECT tube_id, COUNT(*) AS n FROM scan_verdict
      WHERE verdict = 'ok' AND tube_id IS NOT NULL GROUP BY tube_id) AS c
WHERE tubes.id = c.tube_id
"""

OUTCOMES = """
SELECT batch_id, row_no, verdict, off_grid, capacity
FROM scan_verdict
WHERE verdict <> 'ok' OR off_grid
ORDER BY batch_id, row_no
"""

ACCEPTED = """
SELECT batch_id, COUNT(*) FROM scan_verdict WHERE verdict = 'ok' GROUP BY batch_id
"""
