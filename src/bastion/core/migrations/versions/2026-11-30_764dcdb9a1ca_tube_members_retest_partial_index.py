"""tube members retest partial index: the retest members of a tube, read by the pool work of
every tube of a results upload (a tiny share of all members).

Revision ID: 764dcdb9a1ca
Revises: d6c8e0de5f72
Create Date: 2026-11-30 15:50:26.140337
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "764dcdb9a1ca"
down_revision: str | None = "d6c8e0de5f72"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tube_members", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tube_members_retest_tube_id",
            ["tube_id"],
            unique=False,
            postgresql_where=sa.text("retest"),
            sqlite_where=sa.text("retest"),
        )


def downgrade() -> None:
    with op.batch_alter_table("tube_members", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_tube_members_retest_tube_id",
            postgresql_where=sa.text("retest"),
            sqlite_where=sa.text("retest"),
        )
