"""Published bulletins: every revision of a day's figures and texts, frozen."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base, BigId, RegionCode, UtcDateTime


class BulletinRevision(Base):
    """One published revision of a region's bulletin for a day. Revision 1 is the publication;
    each correction adds the next revision with its reason and the figures that changed. Rows
    are never updated: a published day changes only by a new revision."""

    __tablename__ = "bulletin_revisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"))
    revision: Mapped[int] = mapped_column(Integer)
    #: Canonical JSON of the figures (bastion.bulletin.schemas.Figures).
    figures: Mapped[str] = mapped_column(Text)
    #: JSON: language → the Markdown text as published.
    texts: Mapped[str] = mapped_column(Text)
    #: Why a correction was made ('' for the first publication).
    reason: Mapped[str] = mapped_column(Text, default="")
    #: JSON list of the figures that differ from the previous revision.
    changes: Mapped[str] = mapped_column(Text, default="[]")
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("region_code", "day", "revision"),)
