"""Signed health codes: the payload format, signing and offline verification (pure).

A code is ``BHC1.`` followed by base64url (no padding) of::

    version (1 byte, 1) | kid (4 bytes) | colour (1 byte: 0 green, 1 yellow, 2 red)
    | issued_at (uint32, Unix seconds) | expires_at (uint32) | len (1 byte) | person token (utf-8)
    | Ed25519 signature (64 bytes) over everything before it

About 140 characters for a 24-character person token: a version-7 QR code at level M. A
checkpoint needs only the public keys (:func:`public_keys_from_jwks`) to check a code; nothing
in here touches the database.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "BHC1."
VERSION = 1
COLOURS: tuple[str, ...] = ("green", "yellow", "red")
SIGNATURE_BYTES = 64
_HEAD = struct.Struct(">B4sBIIB")
#: A code "issued" this far in the future still passes (checkpoint clocks drift).
CLOCK_SKEW_SECONDS = 60
MAX_TOKEN_BYTES = 64

Refusal = Literal["malformed", "unknown_key", "retired_key", "bad_signature", "expired"]


@dataclass(frozen=True)
class Claims:
    """What a code says."""

    kid: str
    colour: str
    issued_at: int
    expires_at: int
    person: str


@dataclass(frozen=True)
class PublicKey:
    """A verifying key as a checkpoint knows it: usable until ``retired_at`` (Unix s)."""

    kid: str
    key: Ed25519PublicKey
    retired_at: int | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a code: ``claims`` when valid, else ``refusal``."""

    claims: Claims | None
    refusal: Refusal | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: Claims) -> bytes:
    """The signed part of a code."""
    token = claims.person.encode()
    if len(token) > MAX_TOKEN_BYTES:
        raise ValueError("person token too long")
    head = _HEAD.pack(
        VERSION,
        bytes.fromhex(claims.kid),
        COLOURS.index(claims.colour),
        claims.issued_at,
        claims.expires_at,
        len(token),
    )
    return head + token


def sign(claims: Claims, private_key: Ed25519PrivateKey) -> str:
    """The code for ``claims`` signed with ``private_key`` (whose id is ``claims.kid``)."""
    body = encode(claims)
    return PREFIX + b64(body + private_key.sign(body))


def decode(payload: str) -> tuple[Claims, bytes, bytes] | None:
    """(claims, signed bytes, signature) of a well-formed code, else None."""
    text = payload.strip()
    if not text.startswith(PREFIX):
        return None
    try:
        raw = unb64(text[len(PREFIX) :])
    except (binascii.Error, ValueError):
        return None
    if len(raw) < _HEAD.size + SIGNATURE_BYTES:
        return None
    version, kid, colour, issued, expires, size = _HEAD.unpack_from(raw)
    body_len = _HEAD.size + size
    if version != VERSION or colour >= len(COLOURS) or len(raw) != body_len + SIGNATURE_BYTES:
        return None
    try:
        person = raw[_HEAD.size : body_len].decode()
    except UnicodeDecodeError:
        return None
    if not person or issued > expires:
        return None
    claims = Claims(kid.hex(), COLOURS[colour], issued, expires, person)
    return claims, raw[:body_len], raw[body_len:]


def verify(payload: str, keys: Mapping[str, PublicKey], *, now: datetime) -> Verdict:
    """Check a code against the known public keys at ``now``. Refusals, in the order checked:
    malformed, unknown key id, retired key, bad signature (forged or altered), expired."""
    decoded = decode(payload)
    if decoded is None:
        return Verdict(None, "malformed")
    claims, body, signature = decoded
    known = keys.get(claims.kid)
    if known is None:
        return Verdict(claims, "unknown_key")
    at = int(now.timestamp())
    if known.retired_at is not None and at >= known.retired_at:
        return Verdict(claims, "retired_key")
    try:
        known.key.verify(signature, body)
    except InvalidSignature:
        return Verdict(claims, "bad_signature")
    if at >= claims.expires_at or claims.issued_at > at + CLOCK_SKEW_SECONDS:
        return Verdict(claims, "expired")
    return Verdict(claims)


def mask_person(token: str) -> str:
    """A person token as shown at a checkpoint: enough to match a record, not to copy it."""
    if len(token) <= 8:
        return token[:2] + "…"
    return f"{token[:4]}…{token[-4:]}"


def jwk(
    kid: str, public_raw: bytes, *, activated_at: datetime | None, retired_at: datetime | None
) -> dict[str, Any]:
    """One key in JWKS form (RFC 8037 OKP), with its validity as Unix seconds."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": kid,
        "x": b64(public_raw),
        "nbf": int(activated_at.timestamp()) if activated_at else None,
        "exp": int(retired_at.timestamp()) if retired_at else None,
    }


def public_keys_from_jwks(document: Mapping[str, Any]) -> dict[str, PublicKey]:
    """The verifying keys of an exported key set (``keys export-public`` / the keys endpoint).
    Raises ValueError on a document that is not a key set."""
    found: dict[str, PublicKey] = {}
    for item in document.get("keys", []):
        if item.get("kty") != "OKP" or item.get("crv") != "Ed25519":
            continue
        try:
            key = Ed25519PublicKey.from_public_bytes(unb64(str(item["x"])))
        except (KeyError, ValueError, binascii.Error) as err:
            raise ValueError(f"bad key {item.get('kid')!r}") from err
        exp = item.get("exp")
        found[str(item["kid"])] = PublicKey(str(item["kid"]), key, int(exp) if exp else None)
    return found


def expires_text(claims: Claims) -> datetime:
    return datetime.fromtimestamp(claims.expires_at, UTC)
