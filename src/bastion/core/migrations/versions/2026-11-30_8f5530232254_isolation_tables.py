"""isolation tables

Revision ID: 8f5530232254
Revises: 5660ff8a35b1
Create Date: 2026-11-30 01:24:20.117196
"""

from collections.abc import Sequence

revision: str = "8f5530232254"
down_revision: str | None = "5660ff8a35b1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
