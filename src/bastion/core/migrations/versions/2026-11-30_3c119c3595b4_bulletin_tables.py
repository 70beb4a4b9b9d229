"""bulletin tables

Revision ID: 3c119c3595b4
Revises: 7fdacffd7e1d
Create Date: 2026-11-30 01:24:25.707212
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bastion.core.db

revision: str = "3c119c3595b4"
down_revision: str | None = "7fdacffd7e1d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bulletin_revisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.Column("texts", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("published_by_id", sa.Integer(), nullable=True),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.Column("published_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["published_by_id"],
            ["users.id"],
            name=op.f("fk_bulletin_revisions_published_by_id_users"),
        ),
        sa.ForeignKeyConstraint(
            ["region_code"],
            ["regions.code"],
            name=op.f("fk_bulletin_revisions_region_code_regions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bulletin_revisions")),
        sa.UniqueConstraint(
            "region_code",
            "day",
            "revision",
            name=op.f("uq_bulletin_revisions_region_code_day_revision"),
        ),
    )


def downgrade() -> None:
    op.drop_table("bulletin_revisions")
