"""healthcode_signing tables

Revision ID: 7fdacffd7e1d
Revises: 64a094d57c9b
Create Date: 2026-11-30 01:24:23.900082
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bastion.core.db

revision: str = "7fdacffd7e1d"
down_revision: str | None = "64a094d57c9b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "code_signing_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kid", sa.String(length=8), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("private_cipher", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("activated_at", bastion.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("superseded_at", bastion.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("retired_at", bastion.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_signing_keys")),
        sa.UniqueConstraint("kid", name=op.f("uq_code_signing_keys_kid")),
    )


def downgrade() -> None:
    op.drop_table("code_signing_keys")
