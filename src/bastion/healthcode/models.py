"""The health-code status store and what feeds it.

``code_status`` holds the current status of every person who is not green by default (a person
without a row is green). ``code_history`` keeps every change: old and new colour, the rule, the
reason, the evidence record, the pop-up flag, when, why (recompute / manual / …) and the batch
it was written in. Each batch's rows are sealed by one audit entry (count + digest), so an edited,
inserted or deleted history row is caught by ``bastion audit verify`` (see
:mod:`bastion.healthcode.history`).

Manual changes (four eyes), alarms, review requests (contests) and proxy bindings live here too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base, BigId, RegionCode, UtcDateTime

COLOURS = ("green", "yellow", "red")


class CodeStatus(Base):
    """The current, precomputed status of one person (no row: green)."""

    __tablename__ = "code_status"

    #: A person's id (persons.id). No foreign key, like tube_members (ADR 0005): per-row FK
    #: checks cost a round's recompute several seconds, and the one writer (the store) takes
    #: ids only from joins on persons.
    person_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    colour: Mapped[str] = mapped_column(String(6))
    #: ``<rules version>:<rule key>`` of the rule that decided.
    rule: Mapped[str] = mapped_column(String(64))
    #: Message key of the reason shown to the person.
    reason_key: Mapped[str] = mapped_column(String(64))
    evidence_type: Mapped[str | None] = mapped_column(String(24))
    evidence_id: Mapped[str | None] = mapped_column(String(40))
    #: Pop-up flag key (its own reason and clearing rule: bastion.healthcode.rules.POPUPS).
    popup: Mapped[str | None] = mapped_column(String(32))
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: Increases with every change (lookups and caches key on it).
    version: Mapped[int] = mapped_column(Integer, default=1)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: The write batch (code_batches.seq) that last changed the row. Batches get their number
    #: under the store's write lock, so numbers follow commit order: a lookup server that has
    #: seen batch N reads ``seq > N`` and misses nothing, however long a batch took to commit.
    seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))

    __table_args__ = (
        CheckConstraint("colour IN ('green','yellow','red')", name="colour"),
        # The lookup servers poll for rows of batches after the last one they saw, every second.
        Index("ix_code_status_seq", "seq"),
    )


class CodeBatch(Base):
    """One committed write to ``code_status`` (a recompute, targeted or bulk). ``seq`` is
    taken under the store's write lock (PostgreSQL advisory lock; SQLite's database lock), so
    a later number is always committed after an earlier one."""

    __tablename__ = "code_batches"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: The history batch (code_history.batch_id) written with it.
    batch_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    changed: Mapped[int] = mapped_column(Integer)


class CodeHistory(Base):
    """One change of one person's status. Never updated or deleted; sealed per batch."""

    __tablename__ = "code_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigId)
    #: NULL: the person had no row (green by default).
    old_colour: Mapped[str | None] = mapped_column(String(6))
    new_colour: Mapped[str] = mapped_column(String(6))
    rule: Mapped[str] = mapped_column(String(64))
    reason_key: Mapped[str] = mapped_column(String(64))
    evidence_type: Mapped[str | None] = mapped_column(String(24))
    evidence_id: Mapped[str | None] = mapped_column(String(40))
    popup: Mapped[str | None] = mapped_column(String(32))
    valid_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: ``recompute`` / ``manual`` / ``expiry`` / …
    cause: Mapped[str] = mapped_column(String(16))
    #: The batch (one recompute or one approval) the row was written in.
    batch_id: Mapped[str] = mapped_column(String(32))

    # No index on batch_id: every history row costs the recompute its index entries, and a batch
    # is read back only by the audit check, which reads the whole history in order.
    __table_args__ = (Index("ix_code_history_person_at", "person_id", "at"),)


class ManualRequest(Base):
    """A request to set people's colour by hand: one user asks, a second, different user with
    ``healthcode_approve`` approves or refuses."""

    __tablename__ = "code_manual_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    colour: Mapped[str] = mapped_column(String(6))
    reason: Mapped[str] = mapped_column(Text)
    evidence_type: Mapped[str] = mapped_column(String(24))
    evidence_id: Mapped[str] = mapped_column(String(40))
    #: The requester's region (the request's scope).
    region_code: Mapped[str] = mapped_column(RegionCode, index=True)
    people: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decision_note: Mapped[str] = mapped_column(Text, default="")
    #: The manual colour lapses at this time (NULL: until withdrawn).
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("colour IN ('green','yellow','red')", name="colour"),
        CheckConstraint("status IN ('pending','approved','refused','withdrawn')", name="status"),
    )


class ManualRequestPerson(Base):
    """One person named by a manual request."""

    __tablename__ = "code_manual_request_people"

    request_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("code_manual_requests.id"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("persons.id"), primary_key=True, index=True
    )


class CodeAlarm(Base):
    """An alarm for province-level administrators (e.g. a manual request naming many people)."""

    __tablename__ = "code_alarms"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    #: The province the alarm goes to.
    province_code: Mapped[str] = mapped_column(RegionCode, index=True)
    region_code: Mapped[str] = mapped_column(RegionCode)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("code_manual_requests.id"))
    message_key: Mapped[str] = mapped_column(String(64))
    #: JSON of the message's parameters.
    params: Mapped[str] = mapped_column(Text, default="{}")
    raised_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    raised_at: Mapped[datetime] = mapped_column(UtcDateTime)
    acknowledged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReviewRequest(Base):
    """A person contests their status (kept until the appeals work exists)."""

    __tablename__ = "code_review_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(BigId, ForeignKey("persons.id"), index=True)
    region_code: Mapped[str] = mapped_column(RegionCode, index=True)
    #: The status contested, as it was (colour, rule, evidence).
    colour: Mapped[str] = mapped_column(String(6))
    rule: Mapped[str] = mapped_column(String(64))
    evidence_type: Mapped[str | None] = mapped_column(String(24))
    evidence_id: Mapped[str | None] = mapped_column(String(40))
    statement: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default="open")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (CheckConstraint("status IN ('open','closed')", name="status"),)


class ProxyBinding(Base):
    """A resident may look up the holder's code only through a binding the holder agreed to
    (or a grid worker recorded on the holder's documented consent)."""

    __tablename__ = "code_proxy_bindings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    holder_person_id: Mapped[int] = mapped_column(BigId, ForeignKey("persons.id"), index=True)
    proxy_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    relation: Mapped[str] = mapped_column(String(24))
    region_code: Mapped[str] = mapped_column(RegionCode, index=True)
    status: Mapped[str] = mapped_column(String(12), default="requested")
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: ``holder`` (the holder accepted) or ``grid_worker`` (on documented consent).
    consent_via: Mapped[str | None] = mapped_column(String(12))
    consent_document: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (
        CheckConstraint("status IN ('requested','accepted','refused','revoked')", name="status"),
        Index(
            "uq_code_proxy_bindings_live",
            "holder_person_id",
            "proxy_user_id",
            unique=True,
            sqlite_where=text("status IN ('requested','accepted')"),
            postgresql_where=text("status IN ('requested','accepted')"),
        ),
    )
