"""bulletin tables

Revision ID: 3c119c3595b4
Revises: 7fdacffd7e1d
Create Date: 2026-11-30 01:24:25.707212
"""

from collections.abc import Sequence

revision: str = "3c119c3595b4"
down_revision: str | None = "7fdacffd7e1d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
