"""round excused frozen at close: who was excused from a round (under isolation control or
with an open case, not sampled) is written down when it closes, so its figures stand still
(ADR 0009, revision).

Revision ID: d6c8e0de5f72
Revises: e6b68de1dfef
Create Date: 2026-11-30 13:55:07.521947
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bastion.core.db

revision: str = "d6c8e0de5f72"
down_revision: str | None = "e6b68de1dfef"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "round_excused",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column(
            "person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_round_excused_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["test_rounds.id"], name=op.f("fk_round_excused_round_id_test_rounds")
        ),
        sa.PrimaryKeyConstraint("round_id", "person_id", name=op.f("pk_round_excused")),
    )
    with op.batch_alter_table("round_excused", schema=None) as batch_op:
        batch_op.create_index(
            "ix_round_excused_round_id_region_code", ["round_id", "region_code"], unique=False
        )

    with op.batch_alter_table("test_rounds", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "excused_frozen_at", bastion.core.db.UtcDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("test_rounds", schema=None) as batch_op:
        batch_op.drop_column("excused_frozen_at")

    with op.batch_alter_table("round_excused", schema=None) as batch_op:
        batch_op.drop_index("ix_round_excused_round_id_region_code")

    op.drop_table("round_excused")
