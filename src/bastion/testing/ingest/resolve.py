"""A second connection that looks up a large chunk's people while the writer lands the previous one.

A file's chunk used to cost the writing transaction an index probe per row for the person (by
token or ID hash) before anything was written. Nothing the writer does changes persons; so those
probes can run on a connection of their own, against what is committed, in the thread that
checks the rows (``feed.threaded``), while the writer lands the chunk before. The reader also
ranks each person's scans within the chunk, and sends the rows back as binary COPY data with
``statements.RESOLVED_COLUMNS`` filled in, which the writer copies into its staging table
without a row ever becoming a Python object again.

What the reader cannot see, the writer still catches: a person only this transaction knows is
looked up by the writer (``PG_RESOLVE_REST``); a person already in the round (committed, or an
earlier chunk of the same file) meets the unique index on (round, person) as the members are
written, and the chunk is then judged again whole (``ingest._land_chunk``). The reader only ever
saves work: if it cannot be had, or fails, the writer judges alone. See ADR 0006, second
revision of 30 November.
"""

from __future__ import annotations

import contextlib
import logging
import operator
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bastion.core.db import is_postgres, pg_column_types
from bastion.testing.ingest.statements import (
    PG_TEMP_TABLES,
    STAGE_COLUMNS,
    pg_index_lookups,
    pg_resolve_out,
)

log = logging.getLogger(__name__)

#: The reader's settings for a chunk (transaction-local, as the writer's): sorts in memory, no
#: JIT, lookups through indexes (its temporary table has no statistics worth trusting).
_SETTINGS = (
    "SELECT set_config('work_mem', '128MB', true), set_config('jit', 'off', true), "
    + pg_index_lookups(True).removeprefix("SELECT ")
)


class Resolver:
    """The reading connection of one ingest (PostgreSQL only); used from one thread at a time."""

    def __init__(self, pooled: Any) -> None:
        self._pooled = pooled  # the pool's proxy: closing it returns the connection
        self._raw: Any = pooled.driver_connection
        self.broken = False
        try:
            self._raw.execute(PG_TEMP_TABLES)
            self._raw.commit()
        except BaseException:
            self.close()
            raise

    def resolve(self, rows: Sequence[Sequence[Any]]) -> bytes | None:
        """The chunk's staged ``rows`` (in STAGE_COLUMNS order) as binary COPY data in
        STAGE_COLUMNS + RESOLVED_COLUMNS order, for the writer's ``scan_stage``; None once the
        reader has failed (the writer then judges alone: the reader only ever saves work)."""
        if self.broken:
            return None
        try:
            return self._resolve(rows)
        except (psycopg.Error, OSError):
            log.warning("scan reader failed; the writer judges the rest alone", exc_info=True)
            self.broken = True
            return None

    def _resolve(self, rows: Sequence[Sequence[Any]]) -> bytes:
        raw = self._raw
        types = pg_column_types(raw, "scan_stage", STAGE_COLUMNS)
        data = bytearray()
        try:
            raw.execute(_SETTINGS)
            with raw.cursor() as cur:
                with cur.copy(_COPY_IN) as copy:
                    copy.set_types(types)
                    for row in rows:
                        copy.write_row(row)
                out_statement = pg_resolve_out(
                    ranked=names_someone_twice(rows), placed=not tubes_mixed(rows)
                )
                with cur.copy(out_statement) as out:
                    for block in out:
                        data += block
        except BaseException:
            raw.rollback()
            raise
        # Nothing to keep, but committed, not rolled back: the commit empties the staging table
        # (ON COMMIT DELETE ROWS, a truncation), where a rollback leaves the rows behind as dead
        # tuples that every later chunk's scan of the table reads again (a 9M-row file's reader
        # ended up reading millions of them a chunk).
        raw.commit()
        return bytes(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection is the pool's to discard
            self._pooled.close()


_TOKEN = operator.itemgetter(STAGE_COLUMNS.index("person_token"))
_ID_HASH = operator.itemgetter(STAGE_COLUMNS.index("id_hash"))


def names_someone_twice(rows: Sequence[Sequence[Any]]) -> bool:
    """Whether staged ``rows`` name a person twice by the same token or the same ID number
    (each row names its person one way, the other left None). Rows that name one person two
    ways are not seen here: the writer's unique index on (round, person) stops those."""
    tokens = set(map(_TOKEN, rows))
    hashes = set(map(_ID_HASH, rows))
    named = len(tokens) - (None in tokens) + len(hashes) - (None in hashes)
    return named < len(rows)


_TUBE = operator.itemgetter(STAGE_COLUMNS.index("barcode"))
_TUBE_ROUND_SITE = operator.itemgetter(
    *(STAGE_COLUMNS.index(c) for c in ("barcode", "round_id", "site_id"))
)


def tubes_mixed(rows: Sequence[Sequence[Any]]) -> bool:
    """Whether some barcode of staged ``rows`` comes with more than one round or site (its
    rows' places in the tube then depend on the writer's verdicts)."""
    return len(set(map(_TUBE, rows))) < len(set(map(_TUBE_ROUND_SITE, rows)))


_COPY_IN = f"COPY scan_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN (FORMAT BINARY)"


def open_resolver(db_session: Session) -> Resolver | None:
    """A reader for the session's database, or None where there is none to have (SQLite, or a
    session bound to something that cannot lend a second connection)."""
    if not is_postgres(db_session):
        return None
    bind = db_session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    if not isinstance(engine, Engine):
        return None
    try:
        return Resolver(engine.raw_connection())
    except (SQLAlchemyError, psycopg.Error, OSError):
        # No second connection to be had (the pool or the server is full): judge alone.
        log.warning("no connection for the scan reader; the writer judges alone", exc_info=True)
        return None
