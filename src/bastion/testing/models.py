"""Rounds, sites, labs, tubes and their members, boxes, results, holds and retests.

Hot tables (tube members, tubes) use big integer keys and carry their region code, so coverage
and jurisdiction are range scans; a person appears once per round except in retests (a partial
unique index says so in the database itself).
"""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base, BigId, RegionCode, UtcDateTime


class Lab(Base):
    __tablename__ = "labs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"), index=True)
    #: Tubes a day the lab can run.
    daily_capacity: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (CheckConstraint("daily_capacity > 0", name="capacity_positive"),)


class Site(Base):
    """A sampling site (采样点): where it is, the grids it serves, its teams and hours."""

    __tablename__ = "sampling_sites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"), index=True)
    address: Mapped[str] = mapped_column(String(200), default="")
    teams: Mapped[int] = mapped_column(SmallInteger, default=1)
    opens_at: Mapped[time] = mapped_column(Time)
    closes_at: Mapped[time] = mapped_column(Time)
    #: People an hour the site can sample (all teams together).
    capacity_per_hour: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (
        CheckConstraint("capacity_per_hour > 0", name="capacity_positive"),
        CheckConstraint("teams > 0", name="teams_positive"),
    )


class SiteGrid(Base):
    """A grid a site serves: its residents are expected there (elsewhere is flagged)."""

    __tablename__ = "sampling_site_grids"

    site_id: Mapped[int] = mapped_column(ForeignKey("sampling_sites.id"), primary_key=True)
    region_code: Mapped[str] = mapped_column(
        RegionCode, ForeignKey("regions.code"), primary_key=True, index=True
    )


class SiteRecorder(Base):
    """A user bound to a sampling site they work at (recorder, 录入员; sampler): a user bound to
    one or more sites may send scans for those sites only; a user bound to none is held to their
    region alone (``bastion.testing.recorders``)."""

    __tablename__ = "sampling_site_recorders"

    site_id: Mapped[int] = mapped_column(ForeignKey("sampling_sites.id"), primary_key=True)
    #: Indexed on its own: the scan checks ask "is this user bound anywhere?".
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True, index=True)
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    assigned_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Round(Base):
    """A testing round (轮次) over a region subtree, from ``starts_at`` to ``deadline_at``."""

    __tablename__ = "test_rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deadline_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="open")
    #: JSON of :class:`bastion.testing.pooling.PoolPolicy`.
    pool_policy: Mapped[str] = mapped_column(Text)
    #: JSON list of exemption rules (e.g. {"kind": "age_under", "years": 3}).
    exemptions: Mapped[str] = mapped_column(Text, default="[]")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: When the people excused from the round were written down (``RoundExcused``, at close);
    #: None for an open round, and for a round closed before that was done (read as of now).
    excused_frozen_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("status IN ('planned','open','closed')", name="status"),
        CheckConstraint("deadline_at > starts_at", name="deadline_after_start"),
    )


class Box(Base):
    """A transport box (转运箱) of tubes: packed at a site, carried, received by a lab."""

    __tablename__ = "tube_boxes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("test_rounds.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sampling_sites.id"), index=True)
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("labs.id"), index=True)
    region_code: Mapped[str] = mapped_column(RegionCode)
    state: Mapped[str] = mapped_column(String(16), default="packed")
    #: Tubes the packer counted into the box.
    declared_tubes: Mapped[int] = mapped_column(Integer)
    packed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    picked_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (CheckConstraint("state IN ('packed','in_transit','received')", name="state"),)


class BoxEvent(Base):
    """One hand-over scan of a box: packed, picked up by a courier, received by a lab."""

    __tablename__ = "tube_box_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    box_id: Mapped[int] = mapped_column(ForeignKey("tube_boxes.id"), index=True)
    event: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    tubes_counted: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(200), default="")


class BoxScan(Base):
    """A tube barcode scanned at a hand-over (pick-up or lab receipt), kept so reconciliation can
    list the tubes missing from, and the tubes extra to, what the system put in the box."""

    __tablename__ = "tube_box_scans"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("tube_box_events.id"), index=True)
    barcode: Mapped[str] = mapped_column(String(24))

    __table_args__ = (UniqueConstraint("event_id", "barcode"),)


class Tube(Base):
    """A sampling tube (采样管), its planned pool size and, once tested, its result."""

    __tablename__ = "tubes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    barcode: Mapped[str] = mapped_column(String(24), unique=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("test_rounds.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sampling_sites.id"))
    #: The site's region (members carry their own).
    region_code: Mapped[str] = mapped_column(RegionCode)
    kind: Mapped[str] = mapped_column(String(16))
    #: How many people the tube may hold (1–20).
    capacity: Mapped[int] = mapped_column(SmallInteger)
    member_count: Mapped[int] = mapped_column(SmallInteger, default=0)
    state: Mapped[str] = mapped_column(String(16), default="open")
    first_scan_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    box_id: Mapped[int | None] = mapped_column(ForeignKey("tube_boxes.id"), index=True)
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("labs.id"))
    received_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    tested_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    uploaded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    result: Mapped[str | None] = mapped_column(String(16))
    ct_orf1ab: Mapped[float | None] = mapped_column(Float)
    ct_n: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        CheckConstraint("capacity BETWEEN 1 AND 20", name="capacity_range"),
        CheckConstraint("member_count BETWEEN 0 AND capacity", name="member_count_range"),
        CheckConstraint("kind IN ('pooled','single','household','retest')", name="kind"),
        CheckConstraint(
            "result IS NULL OR result IN ('negative','positive','invalid')", name="result"
        ),
        Index("ix_tubes_round_id_result", "round_id", "result"),
        Index("ix_tubes_round_id_region_code", "round_id", "region_code"),
        # Lab figures read a lab's tubes received on a day.
        Index("ix_tubes_lab_id_received_at", "lab_id", "received_at"),
    )


class ScanBatch(Base):
    """One batch of scans under a client-made idempotency key: a re-sent batch finds its row and
    gets the same answer back, changing nothing."""

    __tablename__ = "scan_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("test_rounds.id"))
    source: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accepted: Mapped[int] = mapped_column(Integer)
    refused: Mapped[int] = mapped_column(Integer)
    flagged: Mapped[int] = mapped_column(Integer, default=0)
    #: JSON of the report returned (problems capped), replayed for a re-sent batch.
    report: Mapped[str] = mapped_column(Text)


class TubeMember(Base):
    """A person bound to a tube, in scan order.

    The hottest table of the system (a city round writes millions of rows in minutes) carries no
    foreign keys: per-row FK checks cost COPY 2.6× its speed here, and the one bulk path that
    writes it (testing.ingest) inserts only rows joined to existing tubes, persons and rounds
    (ADR 0005). Deleting a tube, person or round that has members is refused by the services.
    """

    __tablename__ = "tube_members"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    round_id: Mapped[int] = mapped_column(Integer)
    tube_id: Mapped[int] = mapped_column(BigId)
    person_id: Mapped[int] = mapped_column(BigId, index=True)
    position: Mapped[int] = mapped_column(SmallInteger)
    scanned_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: The person's own region (grid), for coverage per grid.
    region_code: Mapped[str] = mapped_column(RegionCode)
    #: Sampled at a site that does not serve the person's grid (accepted, flagged).
    off_grid: Mapped[bool] = mapped_column(Boolean, default=False)
    retest: Mapped[bool] = mapped_column(Boolean, default=False)
    batch_id: Mapped[int | None] = mapped_column(BigId)

    __table_args__ = (
        UniqueConstraint("tube_id", "position"),
        Index(
            "uq_tube_members_round_person",
            "round_id",
            "person_id",
            unique=True,
            postgresql_where=text("NOT retest"),
            sqlite_where=text("NOT retest"),
        ),
        Index("ix_tube_members_round_id_region_code", "round_id", "region_code"),
        # The retest members of a tube: a result's pool work reads them for every tube of an
        # upload, and they are a tiny share of all members (this index costs the bulk of
        # pooled scans no more than checking its condition).
        Index(
            "ix_tube_members_retest_tube_id",
            "tube_id",
            postgresql_where=text("retest"),
            sqlite_where=text("retest"),
        ),
    )


class ResultConflict(Base):
    """A second result for a tube that contradicts the first: kept for a person to resolve,
    never applied over the first."""

    __tablename__ = "result_conflicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tube_id: Mapped[int] = mapped_column(ForeignKey("tubes.id"), index=True)
    lab_id: Mapped[int] = mapped_column(ForeignKey("labs.id"))
    first_result: Mapped[str] = mapped_column(String(16))
    second_result: Mapped[str] = mapped_column(String(16))
    second_ct_orf1ab: Mapped[float | None] = mapped_column(Float)
    second_ct_n: Mapped[float | None] = mapped_column(Float)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(String(200), default="")


class PoolHold(Base):
    """A positive pooled tube: all its members held at once (the event health codes and tracing
    consume), closed when every member's own retest is back."""

    __tablename__ = "pool_holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tube_id: Mapped[int] = mapped_column(ForeignKey("tubes.id"), unique=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("test_rounds.id"), index=True)
    lab_id: Mapped[int | None] = mapped_column(ForeignKey("labs.id"))
    region_code: Mapped[str] = mapped_column(RegionCode)
    members: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: confirmed (some member positive) or reversed (all negative: a false positive pool).
    outcome: Mapped[str | None] = mapped_column(String(16))


class AntigenReport(Base):
    """An antigen self-test reported by a resident or a grid worker."""

    __tablename__ = "antigen_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    region_code: Mapped[str] = mapped_column(RegionCode, index=True)
    result: Mapped[str] = mapped_column(String(16))
    tested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reported_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (
        CheckConstraint("result IN ('negative','positive','invalid')", name="result"),
    )


class RetestTask(Base):
    """A single-tube test one person owes: after a positive pool, a positive antigen or an
    invalid result; assigned to their grid with a deadline, closed by their own result."""

    __tablename__ = "retest_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    region_code: Mapped[str] = mapped_column(RegionCode, index=True)
    reason: Mapped[str] = mapped_column(String(24))
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("pool_holds.id"), index=True)
    antigen_id: Mapped[int | None] = mapped_column(ForeignKey("antigen_reports.id"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("test_rounds.id"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: The single tube that answers the task: set when the person is sampled for it, kept when
    #: its result closes the task.
    tube_id: Mapped[int | None] = mapped_column(ForeignKey("tubes.id"))
    #: The tube whose result made the test owed: the positive pool, an invalid tube, or the
    #: invalid retest that reopened the task (none for antigen tasks). Makes processing a
    #: result twice change nothing (``bastion.testing.pools``).
    source_tube_id: Mapped[int | None] = mapped_column(ForeignKey("tubes.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("state IN ('pending','sampled','negative','positive')", name="state"),
        UniqueConstraint("hold_id", "person_id"),
        # Open tasks are a small share of all: the sweep of pending tasks and the overdue lists
        # read them through this index.
        Index("ix_retest_tasks_state_due_at", "state", "due_at"),
    )


class RoundExcused(Base):
    """One person excused from a round when it closed: required by its rules, under isolation
    control or with an open case, and not sampled (ADR 0009). A closed round's figures and its
    list of people not tested read these, so they stand still however people are placed or
    released afterwards. A few thousand rows a round at most (the people under control)."""

    __tablename__ = "round_excused"

    round_id: Mapped[int] = mapped_column(ForeignKey("test_rounds.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(BigId, ForeignKey("persons.id"), primary_key=True)
    #: Their home as the placement or case recorded it (as the live count reads it).
    region_code: Mapped[str] = mapped_column(RegionCode)

    __table_args__ = (Index("ix_round_excused_round_id_region_code", "round_id", "region_code"),)


class RoundCoverage(Base):
    """Running coverage figures of one round for one home region (a grid, where people are
    registered at grid level), kept up to date as scans and results land so a city's view reads
    a few thousand rows instead of millions (``bastion.testing.coverage``).

    ``required`` is snapshot when the round opens; the other figures count persons sampled in
    the round (retests excepted) by their home region at the time of the scan. ``rebuild``
    recomputes every figure from the record. On PostgreSQL the table keeps half of each page
    free (fillfactor 50, set by its migration) so the counters are updated in place."""

    __tablename__ = "round_coverage"

    round_id: Mapped[int] = mapped_column(ForeignKey("test_rounds.id"), primary_key=True)
    region_code: Mapped[str] = mapped_column(RegionCode, primary_key=True)
    #: People who must be tested: living here, not exempted by the round's rules.
    required: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Distinct persons sampled (whether required or not).
    sampled: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Of ``sampled``, those who are required.
    sampled_required: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Of ``sampled_required``, those sampled no later than the round's deadline.
    on_time: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Sampled persons whose tube has a result (any result, invalid included).
    resulted: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Sampled persons whose tube is positive (the people a positive pool holds).
    positive_people: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    #: Positive tubes, each counted once, in the home region of its first member.
    positive_tubes: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class RoundScreeningHour(Base):
    """Person-scans of a round (retests excepted) per UTC hour and per home district (the first
    six digits of the home code): the bulletin's "screened that day" and cumulative person-times
    for a city or province, without counting millions of tube members."""

    __tablename__ = "round_screening_hours"

    round_id: Mapped[int] = mapped_column(ForeignKey("test_rounds.id"), primary_key=True)
    district_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    scans: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

    __table_args__ = (Index("ix_round_screening_hours_hour", "hour"),)
