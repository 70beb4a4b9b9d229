"""Signed codes: good, forged, expired, wrong-key, malformed and rotated-key codes, checked with
only the public keys; the payload round-trips for any claims."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from bastion.healthcode import signing

NOW = datetime(2022, 3, 25, 8, 0, tzinfo=UTC)
T0 = int(NOW.timestamp())
KEY_A = Ed25519PrivateKey.generate()
KEY_B = Ed25519PrivateKey.generate()


def _public(kid: str, private: Ed25519PrivateKey, retired_at: int | None = None):
    return signing.PublicKey(kid, private.public_key(), retired_at)


def _raw(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


KEYS = {"0000000a": _public("0000000a", KEY_A), "0000000b": _public("0000000b", KEY_B)}
CLAIMS = signing.Claims("0000000a", "red", T0 - 10, T0 + 290, "5f2c1e0a9b8d7c6e5f4a3b2c")


def _flip(payload: str, at: int, mask: int = 0x01) -> str:
    """The code with one byte of its binary form changed (XOR ``mask``)."""
    raw = bytearray(signing.unb64(payload[len(signing.PREFIX) :]))
    raw[at] ^= mask
    return signing.PREFIX + signing.b64(bytes(raw))


GOOD = signing.sign(CLAIMS, KEY_A)

CASES = [
    # (name, payload, keys, now, refusal)
    ("good", GOOD, KEYS, NOW, None),
    ("good at the last second", GOOD, KEYS, NOW + timedelta(seconds=289), None),
    ("expired", GOOD, KEYS, NOW + timedelta(seconds=290), "expired"),
    ("issued in the future", GOOD, KEYS, NOW - timedelta(seconds=200), "expired"),
    ("red turned green", _flip(GOOD, 5, 0x02), KEYS, NOW, "bad_signature"),
    ("expiry extended", _flip(GOOD, 13), KEYS, NOW, "bad_signature"),
    ("person changed", _flip(GOOD, 20), KEYS, NOW, "bad_signature"),
    ("signature changed", _flip(GOOD, -1), KEYS, NOW, "bad_signature"),
    (
        "signed with another key under this key's id",
        signing.sign(CLAIMS, KEY_B),
        KEYS,
        NOW,
        "bad_signature",
    ),
    (
        "unknown key id",
        signing.sign(replace(CLAIMS, kid="ffffffff"), KEY_A),
        KEYS,
        NOW,
        "unknown_key",
    ),
    ("no keys at all", GOOD, {}, NOW, "unknown_key"),
    (
        "retired key",
        GOOD,
        {"0000000a": _public("0000000a", KEY_A, retired_at=T0 - 1)},
        NOW,
        "retired_key",
    ),
    (
        "superseded key still in its grace period",
        GOOD,
        {"0000000a": _public("0000000a", KEY_A, retired_at=T0 + 600)},
        NOW,
        None,
    ),
    ("empty", "", KEYS, NOW, "malformed"),
    ("no prefix", GOOD[len(signing.PREFIX) :], KEYS, NOW, "malformed"),
    ("not base64", signing.PREFIX + "!!!!", KEYS, NOW, "malformed"),
    ("truncated", GOOD[:-10], KEYS, NOW, "malformed"),
    ("extra bytes", GOOD + "AAAA", KEYS, NOW, "malformed"),
    ("wrong version", _flip(GOOD, 0), KEYS, NOW, "malformed"),
    ("too short", signing.PREFIX + "AA", KEYS, NOW, "malformed"),
]


@pytest.mark.parametrize(
    ("name", "payload", "keys", "now", "refusal"), CASES, ids=[c[0] for c in CASES]
)
def test_verification_table(name, payload, keys, now, refusal):
    verdict = signing.verify(payload, keys, now=now)
    assert verdict.refusal == refusal, name
    assert verdict.ok == (refusal is None)
    if refusal is None:
        assert verdict.claims == CLAIMS


def test_a_colour_byte_past_the_known_colours_is_malformed():
    body = bytearray(signing.encode(CLAIMS))
    body[5] = 7
    payload = signing.PREFIX + signing.b64(bytes(body) + KEY_A.sign(bytes(body)))
    assert signing.verify(payload, KEYS, now=NOW).refusal == "malformed"


def test_rotation_old_codes_verify_until_the_old_key_retires():
    """A code signed before a rotation stays good while the old key is in its grace period;
    new codes carry the new key's id; once the old key retires its codes are refused."""
    old = signing.sign(CLAIMS, KEY_A)
    new = signing.sign(replace(CLAIMS, kid="0000000b"), KEY_B)
    after_rotation = {
        "0000000a": _public("0000000a", KEY_A, retired_at=T0 + 120),
        "0000000b": _public("0000000b", KEY_B),
    }
    assert signing.verify(old, after_rotation, now=NOW).ok
    assert signing.verify(new, after_rotation, now=NOW).ok
    later = NOW + timedelta(seconds=120)
    assert signing.verify(old, after_rotation, now=later).refusal == "retired_key"
    assert signing.verify(new, after_rotation, now=later).ok


def test_jwks_round_trip_carries_keys_and_retirement():
    retire = NOW + timedelta(minutes=15)
    document = {
        "keys": [
            signing.jwk("0000000a", _raw(KEY_A), activated_at=NOW, retired_at=retire),
            signing.jwk("0000000b", _raw(KEY_B), activated_at=NOW, retired_at=None),
            {"kty": "RSA", "kid": "ignored"},
        ]
    }
    keys = signing.public_keys_from_jwks(document)
    assert sorted(keys) == ["0000000a", "0000000b"]
    assert keys["0000000a"].retired_at == int(retire.timestamp())
    assert signing.verify(GOOD, keys, now=NOW).ok
    with pytest.raises(ValueError, match="bad key"):
        signing.public_keys_from_jwks({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "x"}]})


def test_a_code_is_compact_enough_for_a_small_qr_code():
    assert len(GOOD) <= 150
    assert set(GOOD[len(signing.PREFIX) :]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


@pytest.mark.parametrize(
    ("token", "shown"), [("5f2c1e0a9b8d7c6e5f4a3b2c", "5f2c…3b2c"), ("abcdef", "ab…")]
)
def test_person_tokens_are_masked(token, shown):
    assert signing.mask_person(token) == shown


claims_strategy = st.builds(
    signing.Claims,
    kid=st.binary(min_size=4, max_size=4).map(bytes.hex),
    colour=st.sampled_from(signing.COLOURS),
    issued_at=st.integers(0, 2**31 - 1),
    expires_at=st.integers(2**31, 2**32 - 1),
    person=st.text(min_size=1, max_size=20).filter(lambda s: len(s.encode()) <= 64),
)


@given(claims_strategy)
def test_any_claims_round_trip(claims):
    payload = signing.sign(claims, KEY_A)
    decoded = signing.decode(payload)
    assert decoded is not None
    assert decoded[0] == claims
    keys = {claims.kid: _public(claims.kid, KEY_A)}
    at = datetime.fromtimestamp(claims.issued_at, UTC)
    assert signing.verify(payload, keys, now=at).ok


@given(claims_strategy, st.integers(0, 200))
def test_any_single_byte_change_is_refused(claims, position):
    payload = signing.sign(claims, KEY_A)
    raw = bytearray(signing.unb64(payload[len(signing.PREFIX) :]))
    raw[position % len(raw)] ^= 0x40
    tampered = signing.PREFIX + signing.b64(bytes(raw))
    keys = {claims.kid: _public(claims.kid, KEY_A)}
    at = datetime.fromtimestamp(claims.issued_at, UTC)
    assert not signing.verify(tampered, keys, now=at).ok


@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    assert not signing.verify(text, KEYS, now=NOW).ok
