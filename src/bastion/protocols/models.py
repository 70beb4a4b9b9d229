"""The deployment's dated choices of protocol profile."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base, BigId, UtcDateTime


class ProtocolChoice(Base):
    """From ``effective_from`` on, ``profile`` is in force (until a later choice). Rows are never
    changed or deleted: the history of which rules applied when stays readable."""

    __tablename__ = "protocol_choices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    profile: Mapped[str] = mapped_column(String(32))
    effective_from: Mapped[date] = mapped_column(Date, unique=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    chosen_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
