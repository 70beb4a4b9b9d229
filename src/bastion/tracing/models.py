"""Tracing tables: cases, exposures, the exposure-edge graph, contacts and their links.

The columns in docs/dev/shared-records.md are read by the isolation, health-code and bulletin
work: add columns freely, never rename or drop those.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base, BigId, RegionCode, UtcDateTime
from bastion.tracing.enums import (
    CASE_STATUSES,
    CLASSIFICATIONS,
    CLINICAL_TYPES,
    CONTACT_LEVELS,
    CONTACT_STATUSES,
    FOUND_BY,
    ORIGINS,
    SETTINGS,
    check_in,
)


class Case(Base):
    """One episode of infection of one person, from report to discharge, release or death."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    #: Residence (the person's grid when reported).
    region_code: Mapped[str] = mapped_column(RegionCode, index=True)
    reporting_city: Mapped[str] = mapped_column(String(6))
    classification: Mapped[str] = mapped_column(String(16))
    clinical_type: Mapped[str | None] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(16), default="local")
    found_by: Mapped[str] = mapped_column(String(24))
    onset_on: Mapped[date | None] = mapped_column(Date)
    #: Day of the positive sample (the lookback anchor of an asymptomatic case).
    sampled_on: Mapped[date | None] = mapped_column(Date)
    reported_on: Mapped[date] = mapped_column(Date)
    reclassified_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="open")
    closed_on: Mapped[date | None] = mapped_column(Date)
    #: The escalated retest task it was made from (the flow from testing); makes that flow
    #: idempotent.
    source_task_id: Mapped[int | None] = mapped_column(ForeignKey("retest_tasks.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(check_in("classification", CLASSIFICATIONS), name="classification"),
        CheckConstraint(
            f"clinical_type IS NULL OR {check_in('clinical_type', CLINICAL_TYPES)}",
            name="clinical_type",
        ),
        CheckConstraint(
            "(classification = 'confirmed') = (clinical_type IS NOT NULL)", name="type_matches"
        ),
        CheckConstraint(check_in("origin", ORIGINS), name="origin"),
        CheckConstraint(check_in("found_by", FOUND_BY), name="found_by"),
        CheckConstraint(check_in("status", CASE_STATUSES), name="status"),
        CheckConstraint("(status = 'open') = (closed_on IS NULL)", name="closed_matches"),
        # One open episode per person. The service checks first (for a clear error); two
        # reports of the same person committed at once would both pass that check, and this
        # index makes the second fail instead of opening a second episode.
        Index(
            "uq_cases_open_person",
            "person_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("uq_cases_source_task_id", "source_task_id", unique=True),
        Index("ix_cases_reported_on", "reported_on"),
        Index("ix_cases_reclassified_on", "reclassified_on"),
        Index("ix_cases_closed_on", "closed_on"),
    )

    @property
    def code(self) -> str:
        return case_code(self.id)


def case_code(case_id: int) -> str:
    """The code a case is called by (C + id, zero-padded)."""
    return f"C{case_id:08d}"


class Contact(Base):
    """One person under management as a contact (one row per episode, however many cases
    they are linked to: the links are in :class:`ContactLink`)."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Deliberately no foreign key (the rows are written only by INSERT … SELECT joined to
    # persons): checking one makes PostgreSQL lock each referenced persons row, which dirties a
    # page of the million-row registry per contact (and logs it whole after a checkpoint) —
    # the largest cost of storing an expansion's ~60,000 contacts (bench/contacts.py).
    person_id: Mapped[int] = mapped_column(BigId, index=True)
    region_code: Mapped[str] = mapped_column(RegionCode, index=True)
    level: Mapped[str] = mapped_column(String(16))
    #: The first case it was traced from (secondary: the close contact's case). No foreign key
    #: either: the expansion joins the case row it names, cases are never deleted, and the
    #: per-row check was a trigger call per contact (1.3 s of 60,000 contacts, bench/contacts.py).
    case_id: Mapped[int] = mapped_column(BigId)
    identified_on: Mapped[date] = mapped_column(Date)
    last_exposure_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="active")
    released_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(check_in("level", CONTACT_LEVELS), name="level"),
        CheckConstraint(check_in("status", CONTACT_STATUSES), name="status"),
        # One active contact row per person: the expansion statements check it by an
        # anti-join under their advisory lock (bastion.tracing.expansion.lock); the index is the
        # guarantee behind that.
        Index(
            "uq_contacts_active_person",
            "person_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )


class ContactLink(Base):
    """Where a contact came from: a case (close) or a close contact (secondary). Walked up to
    the cases behind a person and down from a case to everyone traced from it."""

    __tablename__ = "contact_links"

    # No foreign keys here: links are written only by the set-based statements of
    # bastion.tracing.expansion, which join the very contact and case rows they name, and
    # neither contacts nor cases are ever deleted. Per-row key checks were half the cost of
    # storing an expansion's links (bench/contacts.py).
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_id: Mapped[int] = mapped_column(BigId)
    #: The case at the root of this link (secondary: the close contact's case).
    case_id: Mapped[int] = mapped_column(BigId, index=True)
    #: Secondary links: the close contact it came through.
    via_contact_id: Mapped[int | None] = mapped_column(BigId)
    level: Mapped[str] = mapped_column(String(16))
    last_exposure_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(check_in("level", CONTACT_LEVELS), name="level"),
        CheckConstraint("(level = 'secondary') = (via_contact_id IS NOT NULL)", name="via"),
        # Three indexes in all (key, this, case_id): every link an expansion stores pays for
        # each. This one serves lookups by contact and keeps a secondary path unique; the
        # statements that write links skip existing paths by NOT EXISTS on it (direct links,
        # via NULL, which a unique index does not compare, rely on that alone).
        Index("uq_contact_links_path", "contact_id", "case_id", "via_contact_id", unique=True),
    )


class ContactDayCount(Base):
    """Contacts identified and released per day, district and level, kept by the writers of
    contacts (:mod:`bastion.tracing.counters`); the bulletin sums them."""

    __tablename__ = "contact_day_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    district: Mapped[str] = mapped_column(String(6), primary_key=True)
    level: Mapped[str] = mapped_column(String(16), primary_key=True)
    identified: Mapped[int] = mapped_column(BigInteger, default=0)
    released: Mapped[int] = mapped_column(BigInteger, default=0)


class Exposure(Base):
    """An exposure an investigator recorded: a case (or close contact) and a person met, where,
    when and in what setting."""

    __tablename__ = "exposures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    #: The case's or contact's person.
    source_person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    #: Where it happened: a region, and the place in words.
    region_code: Mapped[str | None] = mapped_column(RegionCode)
    place: Mapped[str] = mapped_column(Text, default="")
    exposed_on: Mapped[date] = mapped_column(Date)
    setting: Mapped[str] = mapped_column(String(16))
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(check_in("setting", SETTINGS), name="setting"),
        CheckConstraint("(case_id IS NULL) <> (contact_id IS NULL)", name="one_source"),
        CheckConstraint("person_id <> source_person_id", name="not_self"),
    )


class ExposureEdge(Base):
    """The who-met-whom graph that expansion walks: one row per direction, person, other
    person, setting and day. Fed by recorded exposures and by bulk feeds (household rosters,
    sampling queues, transport). Deliberately narrow and without foreign keys (millions of rows
    arrive by COPY); the primary key is the one index expansion needs (see
    :mod:`bastion.tracing.expansion`)."""

    __tablename__ = "exposure_edges"

    person_id: Mapped[int] = mapped_column(BigInteger)
    other_id: Mapped[int] = mapped_column(BigInteger)
    exposed_on: Mapped[date] = mapped_column(Date)
    setting: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        PrimaryKeyConstraint("person_id", "exposed_on", "other_id", "setting"),
        CheckConstraint(check_in("setting", SETTINGS), name="setting"),
    )
