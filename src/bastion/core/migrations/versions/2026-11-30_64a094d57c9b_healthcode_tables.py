"""healthcode tables

Revision ID: 64a094d57c9b
Revises: 8f5530232254
Create Date: 2026-11-30 01:24:22.131581
"""

from collections.abc import Sequence

revision: str = "64a094d57c9b"
down_revision: str | None = "8f5530232254"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
