"""A second connection that looks up a large chunk's people while the writer lands the previous one.

A file's chunk costs the writing transaction two index probes per row before anything is
written: the person by token or ID hash, and an earlier member of the round. Nothing the writer
does changes persons, and what it writes to the round is its own; so those probes can run on a
connection of their own, against what is committed, in the thread that checks the rows
(``feed.threaded``), while the writer lands the chunk before. The reader sends each chunk back
as binary COPY data, the rows with ``statements.RESOLVED_COLUMNS`` filled in, which the writer
copies into its staging table without a row ever becoming a Python object again.

What the reader cannot see, the writer still catches: a person only this transaction knows is
looked up by the writer (``PG_CLASSIFY_RESOLVED``); a person this transaction has already put
in the round (an earlier chunk of the same file) meets the unique index on (round, person) as
the members are written, and the chunk is then judged again whole (``ingest._land_chunk``). See
ADR 0006's third revision.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bastion.core.db import is_postgres
from bastion.testing.ingest.statements import (
    PG_RESOLVE_OUT,
    PG_TEMP_TABLES,
    STAGE_COLUMNS,
    pg_index_lookups,
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
        self._types: list[int] | None = None
        self.broken = False
        self._raw.execute(PG_TEMP_TABLES)
        self._raw.commit()

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
        if self._types is None:
            self._types = [
                oid
                for (oid,) in raw.execute(
                    "SELECT atttypid FROM pg_attribute, unnest(%s::text[]) WITH ORDINALITY "
                    "AS c(name, n) WHERE attrelid = 'scan_stage'::regclass AND attname = c.name "
                    "ORDER BY c.n",
                    (STAGE_COLUMNS,),
                ).fetchall()
            ]
        data = bytearray()
        try:
            raw.execute(_SETTINGS)
            with raw.cursor() as cur:
                with cur.copy(_COPY_IN) as copy:
                    copy.set_types(self._types)
                    for row in rows:
                        copy.write_row(row)
                with cur.copy(PG_RESOLVE_OUT) as out:
                    for block in out:
                        data += block
        finally:
            raw.rollback()  # nothing to keep: the staged rows go with the transaction
        return bytes(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a broken connection is the pool's to discard
            self._pooled.close()


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
