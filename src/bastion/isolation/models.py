"""Isolation sites and their basics, placements and their test days, transfer tasks and batches.

Columns other domains read are listed in docs/dev/shared-records.md (``placements``); every
placed record carries its region code so jurisdiction is a prefix range.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base, BigId, RegionCode, UtcDateTime


class IsolationSite(Base):
    """A centralised site: hotel, makeshift hospital (方舱), hospital or other, with its rooms
    and beds. Occupancy is counted from placements (pending with this site assigned, or
    active), never stored, so it cannot drift."""

    __tablename__ = "isolation_sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"), index=True)
    address: Mapped[str] = mapped_column(String(200), default="")
    rooms: Mapped[int] = mapped_column(Integer)
    #: Capacity: people the site can hold at once.
    beds: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("kind IN ('hotel','makeshift','hospital','other')", name="kind"),
        CheckConstraint("beds > 0", name="beds_positive"),
        CheckConstraint("rooms > 0", name="rooms_positive"),
    )


class SiteBasic(Base):
    """The latest state of one basic (water, power, heating, network) at a site; every change
    is also in the audit log."""

    __tablename__ = "isolation_site_basics"

    site_id: Mapped[int] = mapped_column(ForeignKey("isolation_sites.id"), primary_key=True)
    item: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        CheckConstraint("item IN ('water','power','heating','network')", name="item"),
        CheckConstraint("status IN ('ok','problem')", name="status"),
    )


class Placement(Base):
    """A person under isolation control or treatment, under the profile in force on its first
    day (kept for its whole life: a later profile change applies to new placements only)."""

    __tablename__ = "placements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    region_code: Mapped[str] = mapped_column(RegionCode)
    setting: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(24))
    source_type: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[int] = mapped_column(BigId)
    profile: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    starts_on: Mapped[date] = mapped_column(Date)
    planned_end_on: Mapped[date] = mapped_column(Date)
    released_on: Mapped[date | None] = mapped_column(Date)
    #: The centralised site assigned (NULL at home, or before a batch assigns one).
    site_id: Mapped[int | None] = mapped_column(ForeignKey("isolation_sites.id"), index=True)
    #: The placement this one follows (home monitoring after a centralised period).
    follows_id: Mapped[int | None] = mapped_column(ForeignKey("placements.id"))
    #: Set when released before the planned end or with tests missing: the authorised reason.
    override_reason: Mapped[str | None] = mapped_column(Text)
    released_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(
            "setting IN ('centralised','home','home_monitoring','hospital','makeshift')",
            name="setting",
        ),
        CheckConstraint("reason IN ('case','close_contact','secondary_contact')", name="reason"),
        CheckConstraint("source_type IN ('case','contact')", name="source_type"),
        CheckConstraint("status IN ('pending','active','released','cancelled')", name="status"),
        CheckConstraint("planned_end_on >= starts_on", name="dates_ordered"),
        # One placement per (person, source, setting): place_needs is idempotent per (person,
        # source), and the home-monitoring period after it is the one other setting.
        UniqueConstraint("person_id", "source_type", "source_id", "setting"),
        Index("ix_placements_status_region", "status", "region_code"),
        Index("ix_placements_planned_end_on", "planned_end_on"),
    )


class PlacementTest(Base):
    """A PCR test day of a placement (day 1 is the placement's first day) and its result."""

    __tablename__ = "placement_tests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    placement_id: Mapped[int] = mapped_column(ForeignKey("placements.id"))
    day_no: Mapped[int] = mapped_column(SmallInteger)
    due_on: Mapped[date] = mapped_column(Date, index=True)
    result: Mapped[str | None] = mapped_column(String(16))
    tested_on: Mapped[date | None] = mapped_column(Date)
    #: The tube the sample went in, when known (optional link to the lab's result).
    tube_barcode: Mapped[str | None] = mapped_column(String(24))
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    recorded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("placement_id", "day_no"),
        CheckConstraint(
            "result IS NULL OR result IN ('negative','positive','invalid')", name="result"
        ),
    )


class TransferBatch(Base):
    """A vehicle with its escort carrying people to one site (or home)."""

    __tablename__ = "transfer_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    #: Where the batch is organised (the region of the team that created it).
    region_code: Mapped[str] = mapped_column(RegionCode, index=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("isolation_sites.id"))
    vehicle: Mapped[str] = mapped_column(String(40))
    escort: Mapped[str] = mapped_column(String(100))
    #: People from another city than the destination's (or from several cities).
    cross_region: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("status IN ('pending','dispatched','arrived','failed')", name="status"),
    )


class TransferTask(Base):
    """A person who must move: to a site (new case, close contact) or home (released)."""

    __tablename__ = "transfer_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    placement_id: Mapped[int] = mapped_column(ForeignKey("placements.id"))
    region_code: Mapped[str] = mapped_column(RegionCode)
    kind: Mapped[str] = mapped_column(String(16))
    #: The setting the person goes to (hospital, makeshift, centralised, home).
    destination: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("isolation_sites.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("transfer_batches.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    #: 一人一策: what this person needs on the way (wheelchair, oxygen, a carer…).
    special_needs: Mapped[str] = mapped_column(Text, default="")
    failure_reason: Mapped[str | None] = mapped_column(Text)
    #: The local day the task appeared (daily closure counts from it).
    created_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    arrived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("kind IN ('to_site','to_home')", name="kind"),
        CheckConstraint(
            "status IN ('pending','dispatched','arrived','failed','cancelled')", name="status"
        ),
        UniqueConstraint("placement_id", "kind"),
        Index("ix_transfer_tasks_status_region", "status", "region_code"),
    )
