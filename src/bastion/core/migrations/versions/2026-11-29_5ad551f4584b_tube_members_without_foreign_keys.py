"""tube members without foreign keys (ADR 0005: per-row FK checks cost COPY 2.6x)

Revision ID: 5ad551f4584b
Revises: 4368b20f4b57
Create Date: 2026-11-29 22:40:23.239060
"""

from collections.abc import Sequence

from alembic import op

revision: str = "5ad551f4584b"
down_revision: str | None = "4368b20f4b57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOREIGN_KEYS = (
    ("fk_tube_members_batch_id_scan_batches", "scan_batches", "batch_id"),
    ("fk_tube_members_person_id_persons", "persons", "person_id"),
    ("fk_tube_members_round_id_test_rounds", "test_rounds", "round_id"),
    ("fk_tube_members_tube_id_tubes", "tubes", "tube_id"),
)


def upgrade() -> None:
    with op.batch_alter_table("tube_members", schema=None) as batch_op:
        for name, _, _ in FOREIGN_KEYS:
            batch_op.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("tube_members", schema=None) as batch_op:
        for name, table, column in FOREIGN_KEYS:
            batch_op.create_foreign_key(name, table, [column], ["id"])
