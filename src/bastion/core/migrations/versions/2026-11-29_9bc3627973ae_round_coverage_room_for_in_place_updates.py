"""round coverage: room for in-place updates

Every ingest chunk adds to the counters of the grids it touches; a city-wide file ordered by
time touches every grid of the round in every chunk. With half of each page left free,
PostgreSQL rewrites those rows in place (HOT updates: no new index entries, dead versions pruned
on the page), so neither the ingest nor the coverage view pays for bloat. SQLite has no such
setting.

Revision ID: 9bc3627973ae
Revises: e12a151940de
Create Date: 2026-11-29 23:03:36.881380
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9bc3627973ae"
down_revision: str | None = "e12a151940de"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("round_coverage", "round_screening_hours")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
