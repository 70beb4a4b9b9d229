"""retest task source tube and open-task index

Revision ID: e12a151940de
Revises: 5ad551f4584b
Create Date: 2026-11-29 22:40:34.431522
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e12a151940de"
down_revision: str | None = "5ad551f4584b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("retest_tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source_tube_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch_op.create_index("ix_retest_tasks_state_due_at", ["state", "due_at"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_retest_tasks_source_tube_id_tubes"), "tubes", ["source_tube_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("retest_tasks", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_retest_tasks_source_tube_id_tubes"), type_="foreignkey"
        )
        batch_op.drop_index("ix_retest_tasks_state_due_at")
        batch_op.drop_column("source_tube_id")
