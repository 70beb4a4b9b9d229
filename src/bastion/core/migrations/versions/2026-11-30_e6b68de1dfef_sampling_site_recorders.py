"""sampling site recorders: users bound to the sampling sites they work at (a bound user may
send scans for those sites only; see bastion.testing.recorders).

Revision ID: e6b68de1dfef
Revises: 45c9b8f6a731
Create Date: 2026-11-30 07:23:51.737020
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bastion.core.db

revision: str = "e6b68de1dfef"
down_revision: str | None = "45c9b8f6a731"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sampling_site_recorders",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("assigned_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("assigned_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assigned_by"], ["users.id"], name=op.f("fk_sampling_site_recorders_assigned_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sampling_sites.id"],
            name=op.f("fk_sampling_site_recorders_site_id_sampling_sites"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sampling_site_recorders_user_id_users")
        ),
        sa.PrimaryKeyConstraint("site_id", "user_id", name=op.f("pk_sampling_site_recorders")),
    )
    with op.batch_alter_table("sampling_site_recorders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sampling_site_recorders_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sampling_site_recorders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sampling_site_recorders_user_id"))

    op.drop_table("sampling_site_recorders")
