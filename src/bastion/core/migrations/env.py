"""Alembic environment: one model, two engines (SQLite in batch mode, PostgreSQL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from bastion.core.config import get_settings
from bastion.core.db import make_engine
from bastion.models import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    existing = config.attributes.get("connection")
    if existing is not None:
        _run(existing)
        return
    url = config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = make_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `bastion db upgrade`")
run_migrations_online()
