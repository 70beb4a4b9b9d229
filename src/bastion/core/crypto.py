"""Personal-data protection: ID numbers encrypted at rest, looked up by a keyed hash; signed tokens.

* ``encrypt`` / ``decrypt``: AES-256-GCM with a random nonce (nonce ‖ ciphertext ‖ tag).
* ``lookup_hash``: HMAC-SHA256 under a key derived from the data key, so an exact search by ID
  number needs no decryption and the hash is useless without the key.
* ``sign`` / ``unsign``: compact HMAC-signed, expiring tokens for sessions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import unicodedata
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.core import clock
from bastion.core.config import get_settings


@lru_cache(maxsize=4)
def _keys(data_key: str) -> tuple[AESGCM, bytes]:
    raw = base64.b64decode(data_key)
    if len(raw) != 32:
        raise ValueError("BASTION_DATA_KEY must be base64 of exactly 32 bytes")
    enc_key = hmac.new(raw, b"bastion/encrypt/v1", hashlib.sha256).digest()
    hash_key = hmac.new(raw, b"bastion/lookup/v1", hashlib.sha256).digest()
    return AESGCM(enc_key), hash_key


def encrypt(plain: str) -> bytes:
    aes, _ = _keys(get_settings().data_key)
    nonce = os.urandom(12)
    return nonce + aes.encrypt(nonce, plain.encode(), None)


def decrypt(blob: bytes) -> str:
    aes, _ = _keys(get_settings().data_key)
    return aes.decrypt(blob[:12], blob[12:], None).decode()


def normalise_identifier(value: str) -> str:
    """The form an identifier is hashed in: full-width characters folded to ASCII (NFKC),
    whitespace removed, letters upper-case, so "110105 19491231 002x" finds 11010519491231002X."""
    return "".join(unicodedata.normalize("NFKC", value).split()).upper()


def lookup_hash(value: str) -> str:
    """Keyed hash (hex) of a normalised identifier, for exact lookups and uniqueness."""
    _, key = _keys(get_settings().data_key)
    return hmac.new(key, normalise_identifier(value).encode(), hashlib.sha256).hexdigest()


def hasher() -> Any:
    """A reusable HMAC object factory for bulk paths (copy() per value is the fast route)."""
    _, key = _keys(get_settings().data_key)
    return hmac.new(key, digestmod=hashlib.sha256)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(payload: dict[str, Any], *, ttl_seconds: int, purpose: str) -> str:
    """A URL-safe token carrying ``payload``, expiring after ``ttl_seconds``, for ``purpose``."""
    body = dict(payload, exp=int(clock.now().timestamp()) + ttl_seconds, pur=purpose)
    data = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(get_settings().secret_key.encode(), data.encode(), hashlib.sha256).digest()
    return f"{data}.{_b64(mac)}"


def unsign(token: str, *, purpose: str) -> dict[str, Any] | None:
    """The payload of a valid, unexpired token for ``purpose``; None for anything else."""
    try:
        data, mac = token.split(".", 1)
        expected = hmac.new(get_settings().secret_key.encode(), data.encode(), hashlib.sha256)
        if not hmac.compare_digest(expected.digest(), _unb64(mac)):
            return None
        body: dict[str, Any] = json.loads(_unb64(data))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if body.get("pur") != purpose or not isinstance(body.get("exp"), int):
        return None
    if body["exp"] < clock.now().timestamp():
        return None
    return body
