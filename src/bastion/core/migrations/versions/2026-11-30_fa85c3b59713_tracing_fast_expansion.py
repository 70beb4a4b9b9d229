"""Faster contact expansion (contacts.case_id without a foreign key) and the daily contact
counters the bulletin sums (contact_day_counts, see bastion.tracing.counters).

Contacts are written only by the set-based statements of bastion.tracing.expansion, which join
the case row they name; cases are never deleted. The per-row key check was a trigger call per
stored contact (bench/contacts.py).

Revision ID: fa85c3b59713
Revises: 3c119c3595b4
Create Date: 2026-11-30 02:55:43.477835
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "fa85c3b59713"
down_revision: str | None = "3c119c3595b4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_contacts_case_id_cases"), type_="foreignkey")
    op.create_table(
        "contact_day_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("district", sa.String(length=6), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("identified", sa.BigInteger(), nullable=False),
        sa.Column("released", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("day", "district", "level", name=op.f("pk_contact_day_counts")),
    )
    # Counters for the contacts already recorded.
    op.execute(
        "INSERT INTO contact_day_counts (day, district, level, identified, released) "
        "SELECT day, district, level, SUM(i), SUM(r) FROM ("
        " SELECT identified_on AS day, substr(region_code, 1, 6) AS district, level,"
        " COUNT(*) AS i, 0 AS r FROM contacts GROUP BY 1, 2, 3"
        " UNION ALL"
        " SELECT released_on, substr(region_code, 1, 6), level, 0, COUNT(*) FROM contacts"
        " WHERE status = 'released' AND released_on IS NOT NULL GROUP BY 1, 2, 3"
        ") x GROUP BY day, district, level"
    )


def downgrade() -> None:
    op.drop_table("contact_day_counts")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_contacts_case_id_cases"), "cases", ["case_id"], ["id"]
        )
