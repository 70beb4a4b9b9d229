"""The keys health codes are signed with (Ed25519).

One row per key: its id (``kid``, carried in every code), the raw public key, the private key
encrypted at rest (``bastion.core.crypto``), and when it was created, activated, superseded by
the next key and retired (after which codes signed with it no longer verify).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base, UtcDateTime


class SigningKey(Base):
    """An Ed25519 key pair for health codes. The newest activated, unsuperseded key signs."""

    __tablename__ = "code_signing_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: 8 hex digits (4 bytes in the payload).
    kid: Mapped[str] = mapped_column(String(8), unique=True)
    #: Raw 32-byte Ed25519 public key.
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: The raw private key, base64, encrypted with ``core.crypto.encrypt``.
    private_cipher: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: When the next key took over signing (this key still verifies until ``retired_at``).
    superseded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: From this time on, codes signed with this key are refused.
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
