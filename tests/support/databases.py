"""Create and drop throwaway databases for the suite (SQLite files, PostgreSQL databases)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg

PG_ADMIN_URL = os.environ.get("BASTION_TEST_PG_ADMIN", "postgresql://root@127.0.0.1:5432/postgres")


def pg_reachable() -> str | None:
    """None when the server answers; otherwise why not."""
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as err:
        return str(err).strip()


def create_pg_database(prefix: str = "bastion_test") -> tuple[str, str]:
    """A fresh empty database; returns (its name, its SQLAlchemy URL)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return name, f"{base}/{name}"


def drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(directory: Path, name: str = "bastion") -> str:
    return f"sqlite:///{directory / f'{name}-{uuid.uuid4().hex[:8]}.db'}"
