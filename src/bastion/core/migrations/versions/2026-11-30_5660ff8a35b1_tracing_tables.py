"""tracing tables

Revision ID: 5660ff8a35b1
Revises: 3fb8e21ad782
Create Date: 2026-11-30 01:24:17.842058
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bastion.core.db

revision: str = "5660ff8a35b1"
down_revision: str | None = "3fb8e21ad782"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "exposure_edges",
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("other_id", sa.BigInteger(), nullable=False),
        sa.Column("exposed_on", sa.Date(), nullable=False),
        sa.Column("setting", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "setting IN ('household','workplace','sampling_queue','transport','school','care_home','other')",
            name=op.f("ck_exposure_edges_setting"),
        ),
        sa.PrimaryKeyConstraint(
            "person_id", "exposed_on", "other_id", "setting", name=op.f("pk_exposure_edges")
        ),
    )
    op.create_table(
        "cases",
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
        sa.Column("reporting_city", sa.String(length=6), nullable=False),
        sa.Column("classification", sa.String(length=16), nullable=False),
        sa.Column("clinical_type", sa.String(length=16), nullable=True),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("found_by", sa.String(length=24), nullable=False),
        sa.Column("onset_on", sa.Date(), nullable=True),
        sa.Column("sampled_on", sa.Date(), nullable=True),
        sa.Column("reported_on", sa.Date(), nullable=False),
        sa.Column("reclassified_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column(
            "source_task_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(classification = 'confirmed') = (clinical_type IS NOT NULL)",
            name=op.f("ck_cases_type_matches"),
        ),
        sa.CheckConstraint(
            "(status = 'open') = (closed_on IS NULL)", name=op.f("ck_cases_closed_matches")
        ),
        sa.CheckConstraint(
            "classification IN ('confirmed','asymptomatic')", name=op.f("ck_cases_classification")
        ),
        sa.CheckConstraint(
            "clinical_type IS NULL OR clinical_type IN ('mild','ordinary','severe','critical')",
            name=op.f("ck_cases_clinical_type"),
        ),
        sa.CheckConstraint(
            "found_by IN ('community_screening','isolation','control','fever_clinic','hospital','antigen','other')",
            name=op.f("ck_cases_found_by"),
        ),
        sa.CheckConstraint("origin IN ('local','imported')", name=op.f("ck_cases_origin")),
        sa.CheckConstraint(
            "status IN ('open','discharged','released','died')", name=op.f("ck_cases_status")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_cases_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_cases_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["source_task_id"],
            ["retest_tasks.id"],
            name=op.f("fk_cases_source_task_id_retest_tasks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_closed_on", ["closed_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_person_id"), ["person_id"], unique=False)
        batch_op.create_index("ix_cases_reclassified_on", ["reclassified_on"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_region_code"), ["region_code"], unique=False)
        batch_op.create_index("ix_cases_reported_on", ["reported_on"], unique=False)
        batch_op.create_index(
            "uq_cases_open_person",
            ["person_id"],
            unique=True,
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.create_index("uq_cases_source_task_id", ["source_task_id"], unique=True)

    op.create_table(
        "contacts",
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
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("identified_on", sa.Date(), nullable=False),
        sa.Column("last_exposure_on", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("released_on", sa.Date(), nullable=True),
        sa.Column("created_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("level IN ('close','secondary')", name=op.f("ck_contacts_level")),
        sa.CheckConstraint("status IN ('active','released')", name=op.f("ck_contacts_status")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_contacts_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contacts_region_code"), ["region_code"], unique=False)
        batch_op.create_index(
            "uq_contacts_active_person",
            ["person_id"],
            unique=True,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )

    op.create_table(
        "contact_links",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "via_contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("last_exposure_on", sa.Date(), nullable=True),
        sa.Column("created_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(level = 'secondary') = (via_contact_id IS NOT NULL)",
            name=op.f("ck_contact_links_via"),
        ),
        sa.CheckConstraint("level IN ('close','secondary')", name=op.f("ck_contact_links_level")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_links")),
    )
    with op.batch_alter_table("contact_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_links_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "uq_contact_links_path", ["contact_id", "case_id", "via_contact_id"], unique=True
        )

    op.create_table(
        "exposures",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "source_person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("region_code", sa.String(length=15), nullable=True),
        sa.Column("place", sa.Text(), nullable=False),
        sa.Column("exposed_on", sa.Date(), nullable=False),
        sa.Column("setting", sa.String(length=16), nullable=False),
        sa.Column("recorded_by", sa.Integer(), nullable=True),
        sa.Column("created_at", bastion.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "setting IN ('household','workplace','sampling_queue','transport','school','care_home','other')",
            name=op.f("ck_exposures_setting"),
        ),
        sa.CheckConstraint(
            "(case_id IS NULL) <> (contact_id IS NULL)", name=op.f("ck_exposures_one_source")
        ),
        sa.CheckConstraint("person_id <> source_person_id", name=op.f("ck_exposures_not_self")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_exposures_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_exposures_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_exposures_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by"], ["users.id"], name=op.f("fk_exposures_recorded_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["source_person_id"], ["persons.id"], name=op.f("fk_exposures_source_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exposures")),
    )
    with op.batch_alter_table("exposures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_exposures_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exposures_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_exposures_person_id"), ["person_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("exposures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exposures_person_id"))
        batch_op.drop_index(batch_op.f("ix_exposures_contact_id"))
        batch_op.drop_index(batch_op.f("ix_exposures_case_id"))

    op.drop_table("exposures")
    with op.batch_alter_table("contact_links", schema=None) as batch_op:
        batch_op.drop_index("uq_contact_links_path")
        batch_op.drop_index(batch_op.f("ix_contact_links_case_id"))

    op.drop_table("contact_links")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_contacts_active_person",
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
        batch_op.drop_index(batch_op.f("ix_contacts_region_code"))
        batch_op.drop_index(batch_op.f("ix_contacts_person_id"))

    op.drop_table("contacts")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("uq_cases_source_task_id")
        batch_op.drop_index(
            "uq_cases_open_person",
            sqlite_where=sa.text("status = 'open'"),
            postgresql_where=sa.text("status = 'open'"),
        )
        batch_op.drop_index("ix_cases_reported_on")
        batch_op.drop_index(batch_op.f("ix_cases_region_code"))
        batch_op.drop_index("ix_cases_reclassified_on")
        batch_op.drop_index(batch_op.f("ix_cases_person_id"))
        batch_op.drop_index("ix_cases_closed_on")

    op.drop_table("cases")
    op.drop_table("exposure_edges")
