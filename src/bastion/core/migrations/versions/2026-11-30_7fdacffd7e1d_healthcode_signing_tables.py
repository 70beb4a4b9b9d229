"""healthcode_signing tables

Revision ID: 7fdacffd7e1d
Revises: 64a094d57c9b
Create Date: 2026-11-30 01:24:23.900082
"""

from collections.abc import Sequence

revision: str = "7fdacffd7e1d"
down_revision: str | None = "64a094d57c9b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
