"""The region tree and the zones designated on it."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base, BigId, RegionCode, UtcDateTime


class Region(Base):
    """One administrative or statistical unit: province → city → district → street →
    community → grid. Codes follow GB/T 2260 (6 digits) and the statistical codes below them
    (9 digits street, 12 community); grids add 3 digits to their community's code."""

    __tablename__ = "regions"

    code: Mapped[str] = mapped_column(RegionCode, primary_key=True)
    parent_code: Mapped[str | None] = mapped_column(
        RegionCode, ForeignKey("regions.code"), index=True
    )
    level: Mapped[str] = mapped_column(String(16))
    name_zh: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str] = mapped_column(String(100))
    #: Census population where known (province, cities); None where it is only derived.
    population: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint(
            "level IN ('province','city','district','street','community','grid')", name="level"
        ),
        Index("ix_regions_level_code", "level", "code"),
    )


class Zone(Base):
    """A lockdown / control / precaution (or high / medium / low risk) designation on a region,
    from ``starts_on`` until ``ends_on`` (open while None). Lifting sets ``ends_on``; rows are
    never deleted, so the history of designations stays."""

    __tablename__ = "zones"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(Text, default="")
    designated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    lifted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint(
            "kind IN ('lockdown','control','precaution','high','medium','low')", name="kind"
        ),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="dates_ordered"),
    )
