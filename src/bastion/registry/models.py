"""Persons, households and buildings."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base, BigId, RegionCode, UtcDateTime


class Building(Base):
    """A residential building (楼栋) or a village's cluster of houses, within a grid."""

    __tablename__ = "buildings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (UniqueConstraint("region_code", "name"),)


class Household(Base):
    """A household (户), identified by its household number within its region."""

    __tablename__ = "households"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"))
    household_no: Mapped[str] = mapped_column(String(40))
    building_id: Mapped[int | None] = mapped_column(ForeignKey("buildings.id"), index=True)
    address: Mapped[str] = mapped_column(String(200), default="")

    __table_args__ = (UniqueConstraint("region_code", "household_no"),)


class Person(Base):
    """A resident. The ID number is stored encrypted (``id_cipher``), found by its keyed hash
    (``id_hash``) and shown masked (``id_masked``) unless the viewer may unmask it."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: Opaque personal token (the personal code's subject): never the ID number.
    token: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    id_type: Mapped[str] = mapped_column(String(24))
    id_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    id_hash: Mapped[str] = mapped_column(String(64), unique=True)
    id_masked: Mapped[str] = mapped_column(String(40))
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[date] = mapped_column(Date)
    phone: Mapped[str | None] = mapped_column(String(20))
    #: The finest region the person lives in (a grid where known).
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"))
    household_id: Mapped[int | None] = mapped_column(ForeignKey("households.id"), index=True)
    address: Mapped[str] = mapped_column(String(200), default="")
    special_groups: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        CheckConstraint("sex IN ('M','F')", name="sex"),
        CheckConstraint("special_groups >= 0 AND special_groups < 32", name="special_groups"),
        # Jurisdiction filters are prefix ranges on region_code; name search is within a region.
        Index("ix_persons_region_code_name", "region_code", "name"),
        Index("ix_persons_region_code_special", "region_code", "special_groups"),
    )


class ImportBatch(Base):
    """One import of a registry file: who sent it, what it held and what became of its rows."""

    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(64))
    rows_total: Mapped[int] = mapped_column(Integer)
    rows_created: Mapped[int] = mapped_column(Integer)
    rows_unchanged: Mapped[int] = mapped_column(Integer)
    rows_refused: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
