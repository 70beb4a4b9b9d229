"""Engine, sessions, the declarative base and the one bulk-insert path.

Transactions belong to the edge (API dependency, web route, CLI command): services add and
flush, never commit. SQLite runs in WAL mode with foreign keys on and a busy timeout; its
driver's own transaction handling is replaced by explicit BEGIN so savepoints work (tests run
each case inside a rolled-back outer transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    any_,
    bindparam,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Dialect, Engine, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from bastion.core.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Big integer keys on PostgreSQL; plain INTEGER on SQLite, where only that is an autoincrementing
#: rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: Region codes: 6 digits (province, city, district), 9 (street), 12 (community), 15 (grid).
RegionCode = String(15)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin, so that
        # SAVEPOINT and nested transactions behave (the documented pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """A new engine for ``url`` (default: the settings' database)."""
    url = url or get_settings().database_url
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            from pathlib import Path

            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _sqlite_setup(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


_ENGINES: dict[str, Engine] = {}
_FACTORIES: dict[str, sessionmaker[Session]] = {}


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default: the settings' database), made once."""
    url = url or get_settings().database_url
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


def _factory(url: str) -> sessionmaker[Session]:
    if url not in _FACTORIES:
        _FACTORIES[url] = sessionmaker(bind=get_engine(url), expire_on_commit=False)
    return _FACTORIES[url]


def dispose_engines() -> None:
    """Close every pooled connection of the process-wide engines (tests, forked workers)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()
    _FACTORIES.clear()


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return _factory(url or get_settings().database_url)


@contextmanager
def transaction(url: str | None = None) -> Iterator[Session]:
    """One unit of work for a CLI command or a script: commit on success, roll back on error."""
    with session_factory(url)() as session, session.begin():
        yield session


_INDEX_LOOKUPS = ("enable_seqscan", "enable_mergejoin", "enable_hashjoin", "jit")


@contextmanager
def index_lookups(session: Session) -> Iterator[None]:
    """Inside the block, PostgreSQL answers joins and lookups through indexes, never by scanning
    a whole table. For bulk paths whose every lookup is by an indexed key: their tables grow by
    millions of rows inside one transaction, faster than statistics follow, and a planner that
    believes a table empty scans it once per looked-up row. A no-op on SQLite."""
    if not is_postgres(session):
        yield
        return
    # Merge and hash joins would read the whole of the big side (sorted or hashed) just as a
    # scan does; only nested loops over the indexes touch what the chunk names. Such plans look
    # dear to a planner that counts the tables' rows, and it compiled them with JIT (60 ms to
    # over a second a statement) for work of a few milliseconds.
    for setting in _INDEX_LOOKUPS:
        session.execute(text(f"SET LOCAL {setting} = off"))
    try:
        yield
    finally:
        for setting in _INDEX_LOOKUPS:
            session.execute(text(f"SET LOCAL {setting} = on"))


#: Temporary tables filled with more rows than this get statistics of their own (PostgreSQL).
ANALYZE_FROM = 1_000


def analyze_if_many(session: Session, name: str, rows: int) -> None:
    """Give the temporary table ``name`` (a fixed name, never input), just filled with ``rows``
    rows, statistics of its own when they are many: a fresh temporary table has none, and the
    planner takes it for a few rows and picks plans for a few (ADR 0010). Below
    :data:`ANALYZE_FROM` rows the ANALYZE would cost more than it saves; a no-op on SQLite."""
    if rows > ANALYZE_FROM and is_postgres(session):
        session.execute(text(f"ANALYZE {name}"))


def empty_temp_tables(session: Session, *names: str) -> None:
    """Empty the session's own temporary tables ``names`` (fixed names, never input). On
    PostgreSQL with TRUNCATE, which swaps in empty files at once: a DELETE leaves the rows as
    dead tuples that every later chunk of a bulk path scans again (ADR 0010)."""
    verb = "TRUNCATE" if is_postgres(session) else "DELETE FROM"
    for name in names:
        session.execute(text(f"{verb} {name}"))


@contextmanager
def sort_memory(session: Session, megabytes: int) -> Iterator[None]:
    """Inside the block, PostgreSQL may sort and hash in ``megabytes`` of memory a statement
    (``work_mem``) before it spills to disk. For the bulk paths that sort a known, bounded
    number of rows (a chunk); a no-op on SQLite."""
    if not is_postgres(session):
        yield
        return
    session.execute(text(f"SET LOCAL work_mem = '{int(megabytes)}MB'"))
    try:
        yield
    finally:
        session.execute(text("SET LOCAL work_mem TO DEFAULT"))


#: Ids per statement where each is a placeholder (SQLite allows 32,766), and per array on
#: PostgreSQL (one parameter however many).
_IDS_SQLITE = 5_000
_IDS_POSTGRES = 100_000


def among(db_session: Session, column: Any, values: list[int]) -> Any:
    """``column IN values``; on PostgreSQL as ``= ANY(array)`` with one parameter, so a big
    batch does not become a statement of thousands of placeholders (each compiled and bound in
    Python)."""
    if is_postgres(db_session):
        return column == any_(bindparam(None, values, type_=ARRAY(BigInteger)))
    return column.in_(values)


def id_chunks(db_session: Session, values: list[int]) -> list[list[int]]:
    """``values`` in pieces small enough for one statement of :func:`among`."""
    size = _IDS_POSTGRES if is_postgres(db_session) else _IDS_SQLITE
    return [values[i : i + size] for i in range(0, len(values), size)]


def is_postgres(session_or_conn: Session | Connection) -> bool:
    bind = session_or_conn.get_bind() if isinstance(session_or_conn, Session) else session_or_conn
    return bind.dialect.name == "postgresql"


_PG_TYPES: dict[tuple[str, tuple[str, ...]], list[int]] = {}


def pg_column_types(raw: Any, table_name: str, columns: Sequence[str]) -> list[int]:
    """The type OIDs of ``columns`` of ``table_name`` (temporary tables included), cached."""
    key = (table_name, tuple(columns))
    if key not in _PG_TYPES:
        with raw.cursor() as cur:
            cur.execute(
                "SELECT attname, atttypid FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (f'"{table_name}"',),
            )
            oids = dict(cur.fetchall())
        _PG_TYPES[key] = [oids[c] for c in columns]
    return _PG_TYPES[key]


def bulk_insert(
    session: Session,
    target: type[Base] | str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    chunk: int = 50_000,
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order) into ``target`` (a model or a table name),
    in the session's transaction.

    The single bulk path of the project: binary ``COPY … FROM STDIN`` on PostgreSQL (psycopg
    adapts each value in C), ``executemany`` on SQLite. Rows must already be valid; callers
    validate and report bad rows before this. Datetimes must be timezone-aware. Returns the
    number of rows written.
    """
    session.flush()
    table_name = target if isinstance(target, str) else target.__tablename__
    conn = session.connection()
    count = 0
    raw = conn.connection.driver_connection
    assert raw is not None
    cols = ", ".join(f'"{c}"' for c in columns)
    if conn.dialect.name == "postgresql":
        types = pg_column_types(raw, table_name, columns)
        with (
            raw.cursor() as cur,
            cur.copy(f'COPY "{table_name}" ({cols}) FROM STDIN (FORMAT BINARY)') as copy,
        ):
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    placeholders = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{table_name}" ({cols}) VALUES ({placeholders})'  # noqa: S608 - names are ours
    cursor = raw.cursor()
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append([_sqlite_value(v) if isinstance(v, date) else v for v in row])
        if len(batch) >= chunk:
            cursor.executemany(sql, batch)
            count += len(batch)
            batch = []
    if batch:
        cursor.executemany(sql, batch)
        count += len(batch)
    cursor.close()
    return count


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        # The same text SQLAlchemy's SQLite DATETIME writes, so range comparisons agree.
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


__all__ = [
    "Base",
    "BigId",
    "RegionCode",
    "UtcDateTime",
    "among",
    "bulk_insert",
    "get_engine",
    "id_chunks",
    "index_lookups",
    "is_postgres",
    "make_engine",
    "session_factory",
    "transaction",
]
