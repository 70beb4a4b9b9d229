"""Personal-data protection and signed tokens (core.crypto): pure functions of the settings."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from bastion.core import clock, crypto
from bastion.core.config import get_settings

T0 = datetime(2022, 3, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def other_keys(monkeypatch: pytest.MonkeyPatch):
    """Switch to a different data key and secret for the test, then back."""

    def switch() -> None:
        monkeypatch.setenv("BASTION_DATA_KEY", base64.b64encode(b"k" * 32).decode())
        monkeypatch.setenv("BASTION_SECRET_KEY", "another-secret")
        get_settings.cache_clear()

    yield switch
    monkeypatch.undo()
    get_settings.cache_clear()


@given(st.text(max_size=200))
def test_encryption_round_trips_any_text(plain):
    assert crypto.decrypt(crypto.encrypt(plain)) == plain


def test_the_same_number_encrypts_differently_each_time():
    assert crypto.encrypt("11010519491231002X") != crypto.encrypt("11010519491231002X")


def test_a_tampered_ciphertext_is_refused_not_misread():
    blob = bytearray(crypto.encrypt("11010519491231002X"))
    blob[-1] ^= 1
    with pytest.raises(InvalidTag):
        crypto.decrypt(bytes(blob))


def test_a_ciphertext_cannot_be_read_under_another_key(other_keys):
    blob = crypto.encrypt("11010519491231002X")
    other_keys()
    with pytest.raises(InvalidTag):
        crypto.decrypt(blob)


@pytest.mark.parametrize(
    "typed",
    [
        "11010519491231002x",
        " 11010519491231002X ",
        "110105 19491231 002X",
        "１１０１０５１９４９１２３１００２Ｘ",
        "\t11010519491231002X\n",
    ],
)
def test_the_lookup_hash_ignores_case_spacing_and_full_width_digits(typed):
    assert crypto.lookup_hash(typed) == crypto.lookup_hash("11010519491231002X")


def test_the_lookup_hash_tells_numbers_apart_and_hides_them():
    a = crypto.lookup_hash("11010519491231002X")
    b = crypto.lookup_hash("220102198506151232")
    assert a != b
    assert len(a) == 64
    assert "11010519491231002X" not in a


def test_the_lookup_hash_depends_on_the_key(other_keys):
    before = crypto.lookup_hash("11010519491231002X")
    other_keys()
    assert crypto.lookup_hash("11010519491231002X") != before


def test_a_data_key_of_the_wrong_length_is_refused(monkeypatch):
    monkeypatch.setenv("BASTION_DATA_KEY", base64.b64encode(b"short").decode())
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="32 bytes"):
            crypto.encrypt("x")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


# Signed tokens ---------------------------------------------------------------------------------


def test_a_signed_token_returns_its_payload():
    with clock.frozen(T0):
        token = crypto.sign({"uid": 7, "ver": 0}, ttl_seconds=60, purpose="session")
        body = crypto.unsign(token, purpose="session")
    assert body is not None
    assert body["uid"] == 7
    assert body["ver"] == 0


def test_a_token_is_valid_until_it_expires_and_not_after():
    with clock.frozen(T0):
        token = crypto.sign({"uid": 7}, ttl_seconds=600, purpose="session")
    with clock.frozen(T0 + timedelta(seconds=599)):
        assert crypto.unsign(token, purpose="session") is not None
    with clock.frozen(T0 + timedelta(seconds=600)):
        assert crypto.unsign(token, purpose="session") is not None
    with clock.frozen(T0 + timedelta(seconds=601)):
        assert crypto.unsign(token, purpose="session") is None


def test_a_token_for_one_purpose_is_refused_for_another():
    with clock.frozen(T0):
        token = crypto.sign({"uid": 7}, ttl_seconds=60, purpose="session")
        assert crypto.unsign(token, purpose="healthcode") is None


def test_a_token_signed_under_another_secret_is_refused(other_keys):
    with clock.frozen(T0):
        token = crypto.sign({"uid": 7}, ttl_seconds=60, purpose="session")
        other_keys()
        assert crypto.unsign(token, purpose="session") is None


def _flip(text: str, index: int) -> str:
    swapped = "A" if text[index] != "A" else "B"
    return text[:index] + swapped + text[index + 1 :]


def test_a_tampered_token_is_refused():
    with clock.frozen(T0):
        token = crypto.sign({"uid": 7}, ttl_seconds=60, purpose="session")
        data, mac = token.split(".")
        forged_body = crypto._b64(b'{"exp":9999999999,"pur":"session","uid":1}')
        for forged in (
            f"{_flip(data, 3)}.{mac}",
            f"{data}.{_flip(mac, 3)}",
            f"{forged_body}.{mac}",
            f"{data}.",
            f"{data}{mac}",
        ):
            assert crypto.unsign(forged, purpose="session") is None


@given(st.text(max_size=100))
def test_garbage_is_never_a_token(garbage):
    assert crypto.unsign(garbage, purpose="session") is None
