"""tracing tables

Revision ID: 5660ff8a35b1
Revises: 3fb8e21ad782
Create Date: 2026-11-30 01:24:17.842058
"""

from collections.abc import Sequence

revision: str = "5660ff8a35b1"
down_revision: str | None = "3fb8e21ad782"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
