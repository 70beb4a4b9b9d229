"""Users: one role each, scoped to a region subtree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.auth import ROLES
from bastion.core.db import Base, RegionCode, UtcDateTime

_ROLE_LIST = ",".join(f"'{r}'" for r in ROLES)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(RegionCode, ForeignKey("regions.code"), index=True)
    #: For residents: the registry person this account belongs to.
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Bumped on logout and password change: every token carrying an older value stops working.
    token_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (CheckConstraint(f"role IN ({_ROLE_LIST})", name="role"),)
