"""healthcode tables

Revision ID: 64a094d57c9b
Revises: 8f5530232254
Create Date: 2026-11-30 01:24:22.131581
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bastion.core.db

revision: str = "64a094d57c9b"
down_revision: str | None = "8f5530232254"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "code_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("old_colour", sa.String(length=6), nullable=True),
        sa.Column("new_colour", sa.String(length=6), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("reason_key", sa.String(length=64), nullable=False),
        sa.Column("evidence_type", sa.String(length=24), nullable=True),
        sa.Column("evidence_id", sa.String(length=40), nullable=True),
        sa.Column("popup", sa.String(length=32), nullable=True),
        sa.Column("valid_until", bastion.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_history")),
    )
    with op.batch_alter_table("code_history", schema=None) as batch_op:
        batch_op.create_index("ix_code_history_person_at", ["person_id", "at"], unique=False)

    op.create_table(
        "code_status",
        sa.Column(
            "person_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("colour", sa.String(length=6), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("reason_key", sa.String(length=64), nullable=False),
        sa.Column("evidence_type", sa.String(length=24), nullable=True),
        sa.Column("evidence_id", sa.String(length=40), nullable=True),
        sa.Column("popup", sa.String(length=32), nullable=True),
        sa.Column("valid_until", bastion.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "colour IN ('green','yellow','red')", name=op.f("ck_code_status_colour")
        ),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_code_status")),
    )
    with op.batch_alter_table("code_status", schema=None) as batch_op:
        batch_op.create_index("ix_code_status_changed_at", ["changed_at"], unique=False)

    op.create_table(
        "code_manual_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("colour", sa.String(length=6), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence_type", sa.String(length=24), nullable=False),
        sa.Column("evidence_id", sa.String(length=40), nullable=False),
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column("people", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        sa.Column("requested_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", bastion.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=False),
        sa.Column("expires_at", bastion.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "colour IN ('green','yellow','red')", name=op.f("ck_code_manual_requests_colour")
        ),
        sa.CheckConstraint(
            "status IN ('pending','approved','refused','withdrawn')",
            name=op.f("ck_code_manual_requests_status"),
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_code_manual_requests_decided_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_code_manual_requests_requested_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_manual_requests")),
    )
    with op.batch_alter_table("code_manual_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_code_manual_requests_region_code"), ["region_code"], unique=False
        )

    op.create_table(
        "code_proxy_bindings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "holder_person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("proxy_user_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=24), nullable=False),
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("requested_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", bastion.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("consent_via", sa.String(length=12), nullable=True),
        sa.Column("consent_document", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "status IN ('requested','accepted','refused','revoked')",
            name=op.f("ck_code_proxy_bindings_status"),
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_code_proxy_bindings_decided_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["holder_person_id"],
            ["persons.id"],
            name=op.f("fk_code_proxy_bindings_holder_person_id_persons"),
        ),
        sa.ForeignKeyConstraint(
            ["proxy_user_id"], ["users.id"], name=op.f("fk_code_proxy_bindings_proxy_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_proxy_bindings")),
    )
    with op.batch_alter_table("code_proxy_bindings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_code_proxy_bindings_holder_person_id"),
            ["holder_person_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_code_proxy_bindings_proxy_user_id"), ["proxy_user_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_code_proxy_bindings_region_code"), ["region_code"], unique=False
        )
        batch_op.create_index(
            "uq_code_proxy_bindings_live",
            ["holder_person_id", "proxy_user_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('requested','accepted')"),
            postgresql_where=sa.text("status IN ('requested','accepted')"),
        )

    op.create_table(
        "code_review_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column("colour", sa.String(length=6), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("evidence_type", sa.String(length=24), nullable=True),
        sa.Column("evidence_id", sa.String(length=40), nullable=True),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('open','closed')", name=op.f("ck_code_review_requests_status")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_code_review_requests_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_code_review_requests_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_review_requests")),
    )
    with op.batch_alter_table("code_review_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_code_review_requests_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_code_review_requests_region_code"), ["region_code"], unique=False
        )

    op.create_table(
        "code_alarms",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("province_code", sa.String(length=15), nullable=False),
        sa.Column("region_code", sa.String(length=15), nullable=False),
        sa.Column(
            "request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("message_key", sa.String(length=64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("raised_by", sa.Integer(), nullable=True),
        sa.Column("raised_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("acknowledged_at", bastion.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"], ["users.id"], name=op.f("fk_code_alarms_acknowledged_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["raised_by"], ["users.id"], name=op.f("fk_code_alarms_raised_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["code_manual_requests.id"],
            name=op.f("fk_code_alarms_request_id_code_manual_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_code_alarms")),
    )
    with op.batch_alter_table("code_alarms", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_code_alarms_province_code"), ["province_code"], unique=False
        )

    op.create_table(
        "code_manual_request_people",
        sa.Column(
            "request_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_code_manual_request_people_person_id_persons"),
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["code_manual_requests.id"],
            name=op.f("fk_code_manual_request_people_request_id_code_manual_requests"),
        ),
        sa.PrimaryKeyConstraint(
            "request_id", "person_id", name=op.f("pk_code_manual_request_people")
        ),
    )
    with op.batch_alter_table("code_manual_request_people", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_code_manual_request_people_person_id"), ["person_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("code_manual_request_people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_code_manual_request_people_person_id"))

    op.drop_table("code_manual_request_people")
    with op.batch_alter_table("code_alarms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_code_alarms_province_code"))

    op.drop_table("code_alarms")
    with op.batch_alter_table("code_review_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_code_review_requests_region_code"))
        batch_op.drop_index(batch_op.f("ix_code_review_requests_person_id"))

    op.drop_table("code_review_requests")
    with op.batch_alter_table("code_proxy_bindings", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_code_proxy_bindings_live",
            sqlite_where=sa.text("status IN ('requested','accepted')"),
            postgresql_where=sa.text("status IN ('requested','accepted')"),
        )
        batch_op.drop_index(batch_op.f("ix_code_proxy_bindings_region_code"))
        batch_op.drop_index(batch_op.f("ix_code_proxy_bindings_proxy_user_id"))
        batch_op.drop_index(batch_op.f("ix_code_proxy_bindings_holder_person_id"))

    op.drop_table("code_proxy_bindings")
    with op.batch_alter_table("code_manual_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_code_manual_requests_region_code"))

    op.drop_table("code_manual_requests")
    with op.batch_alter_table("code_status", schema=None) as batch_op:
        batch_op.drop_index("ix_code_status_changed_at")

    op.drop_table("code_status")
    with op.batch_alter_table("code_history", schema=None) as batch_op:
        batch_op.drop_index("ix_code_history_person_at")

    op.drop_table("code_history")
