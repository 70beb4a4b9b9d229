"""healthcode change sequence: code_batches, code_status.seq (lookups poll by batch)

Revision ID: 45c9b8f6a731
Revises: fa85c3b59713
Create Date: 2026-11-30 02:57:06.609258
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bastion.core.db

revision: str = "45c9b8f6a731"
down_revision: str | None = "fa85c3b59713"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "code_batches",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_code_batches")),
    )
    with op.batch_alter_table("code_status", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("seq", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.drop_index(batch_op.f("ix_code_status_changed_at"))
        batch_op.create_index("ix_code_status_seq", ["seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("code_status", schema=None) as batch_op:
        batch_op.drop_index("ix_code_status_seq")
        batch_op.create_index(batch_op.f("ix_code_status_changed_at"), ["changed_at"], unique=False)
        batch_op.drop_column("seq")

    op.drop_table("code_batches")
