"""Signing keys: create, rotate, list, export the public half (JWKS), and the code settings.

One key signs at a time (the newest activated key not superseded). Rotation activates a new key
and supersedes the old one, which keeps verifying until ``retired_at`` = rotation + grace
(at least one code lifetime), so codes already on residents' phones stay good until they expire.
Every key created or rotated is audited; private keys are stored encrypted
(``core.crypto.encrypt``).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock, crypto
from bastion.core.auth import Perm, Principal, system_principal
from bastion.core.errors import InvalidInput
from bastion.healthcode import signing
from bastion.healthcode.signing_models import SigningKey


class CodeSettings(BaseSettings):
    """Tunables of signed codes and lookups (environment ``BASTION_CODE_*``)."""

    model_config = SettingsConfigDict(env_prefix="BASTION_CODE_", env_file=".env", extra="ignore")

    #: Lifetime of a signed code.
    ttl_seconds: int = 300
    #: How long a superseded key keeps verifying after a rotation (never less than ttl_seconds).
    key_grace_seconds: int = 900
    #: Admission limit per server process, lookups a second (0: no limit) and burst size.
    lookup_rate: float = 0.0
    lookup_burst: int = 500
    #: Most lookups that may wait on the database at once per process (cache misses).
    lookup_max_pending: int = 64
    #: How often each server process polls code_status for changed rows, and reads it whole.
    poll_seconds: float = 1.0
    full_reload_seconds: float = 300.0
    #: Poll in a background thread while requests go on (False: the request that finds the
    #: poll due waits for it, which tests use to see a change at a known moment).
    poll_in_background: bool = True
    #: How long a person's token, region and name are held before being read again.
    identity_ttl_seconds: float = 600.0
    #: Seconds the client is told to wait when shed (Retry-After).
    retry_after_seconds: int = 1


@lru_cache(maxsize=1)
def code_settings() -> CodeSettings:
    return CodeSettings()


def _new_row(db_session: Session, now: datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes_raw()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    while True:
        kid = secrets.token_hex(4)
        taken = db_session.execute(select(SigningKey.id).where(SigningKey.kid == kid)).first()
        if taken is None:
            break
    row = SigningKey(
        kid=kid,
        public_key=public,
        private_cipher=crypto.encrypt(base64.b64encode(raw_private).decode()),
        created_at=now,
        activated_at=now,
    )
    db_session.add(row)
    db_session.flush()
    return row


def active(*, db_session: Session) -> SigningKey | None:
    """The key that signs now, if any."""
    stmt = (
        select(SigningKey)
        .where(SigningKey.activated_at.is_not(None), SigningKey.superseded_at.is_(None))
        .order_by(SigningKey.activated_at.desc(), SigningKey.id.desc())
        .limit(1)
    )
    return db_session.execute(stmt).scalar_one_or_none()


def rotate(
    *, db_session: Session, principal: Principal, grace_seconds: int | None = None
) -> SigningKey:
    """Activate a new key; the current one keeps verifying for the grace period, then retires."""
    principal.require(Perm.healthcode_keys)
    settings = code_settings()
    grace = settings.key_grace_seconds if grace_seconds is None else grace_seconds
    if grace < settings.ttl_seconds:
        raise InvalidInput.one(
            "grace_seconds", "code.key_grace_short", minimum=settings.ttl_seconds
        )
    now = clock.now()
    previous = (
        db_session.execute(
            select(SigningKey).where(
                SigningKey.activated_at.is_not(None), SigningKey.superseded_at.is_(None)
            )
        )
        .scalars()
        .all()
    )
    for old in previous:
        old.superseded_at = now
        old.retired_at = now + timedelta(seconds=grace)
    row = _new_row(db_session, now)
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="code.key_rotate",
        target_type="code_signing_key",
        target_id=row.kid,
        details={
            "kid": row.kid,
            "superseded": [old.kid for old in previous],
            "retire_at": (now + timedelta(seconds=grace)).isoformat(),
        },
    )
    return row


def ensure_active(*, db_session: Session) -> SigningKey:
    """The signing key, creating the first one (audited, as the system) if there is none."""
    row = active(db_session=db_session)
    if row is not None:
        return row
    row = _new_row(db_session, clock.now())
    audit_service.record(
        db_session=db_session,
        actor=system_principal(),
        action="code.key_create",
        target_type="code_signing_key",
        target_id=row.kid,
        details={"kid": row.kid},
    )
    return row


def private_key(row: SigningKey) -> Ed25519PrivateKey:
    raw = base64.b64decode(crypto.decrypt(row.private_cipher))
    return Ed25519PrivateKey.from_private_bytes(raw)


def verifying(*, db_session: Session, now: datetime | None = None) -> Sequence[SigningKey]:
    """Keys that still verify at ``now``: not retired yet."""
    at = now or clock.now()
    stmt = (
        select(SigningKey)
        .where(SigningKey.activated_at.is_not(None))
        .where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > at))
        .order_by(SigningKey.activated_at.desc(), SigningKey.id.desc())
    )
    return db_session.execute(stmt).scalars().all()


def list_keys(*, db_session: Session, principal: Principal) -> Sequence[SigningKey]:
    principal.require(Perm.healthcode_keys)
    stmt = select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
    return db_session.execute(stmt).scalars().all()


def jwks(*, db_session: Session, now: datetime | None = None) -> dict[str, Any]:
    """The public key set checkpoints verify with (no private material)."""
    return jwks_of(verifying(db_session=db_session, now=now))


def jwks_of(rows: Sequence[SigningKey]) -> dict[str, Any]:
    return {
        "keys": [
            signing.jwk(r.kid, r.public_key, activated_at=r.activated_at, retired_at=r.retired_at)
            for r in rows
        ],
        "code_ttl_seconds": code_settings().ttl_seconds,
    }


def public_keys(
    *, db_session: Session, now: datetime | None = None
) -> dict[str, signing.PublicKey]:
    return signing.public_keys_from_jwks(jwks(db_session=db_session, now=now))
