"""``bastion healthcode verify`` checks a code offline with exported public keys; ``keys rotate``,
``keys list`` and ``keys export-public``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.core import clock
from bastion.core.config import get_settings
from bastion.core.db import dispose_engines, make_engine
from bastion.healthcode import keys, signing
from bastion.healthcode.signing_models import SigningKey

NOW = datetime(2022, 3, 25, 8, 0, tzinfo=UTC)
TOKEN = "5f2c1e0a9b8d7c6e5f4a3b2c"


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def bastion(cli_env: dict[str, Any]) -> Callable[..., Result]:
    runner = CliRunner()

    def run(*args: str) -> Result:
        result = runner.invoke(app, list(args))
        assert "Traceback" not in result.output, result.output
        if result.exception is not None:
            assert isinstance(result.exception, SystemExit), repr(result.exception)
        return result

    assert run("db", "upgrade").exit_code == 0
    return run


@pytest.fixture
def cli_db(cli_env: dict[str, Any]) -> Iterator[Session]:
    engine = make_engine(cli_env["BASTION_DATABASE_URL"])
    with Session(engine) as session:
        yield session
    engine.dispose()


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _sign(cli_db: Session, colour: str = "red", at: datetime = NOW) -> str:
    """A code signed with the database's active key (what a server would hand out)."""
    cli_db.rollback()  # a fresh snapshot: see what the commands committed
    row = keys.active(db_session=cli_db)
    assert row is not None
    issued = int(at.timestamp())
    claims = signing.Claims(row.kid, colour, issued, issued + 300, TOKEN)
    return signing.sign(claims, keys.private_key(row))


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No database from here on: verification must need only the keys file."""
    dispose_engines()
    monkeypatch.setenv("BASTION_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    get_settings.cache_clear()


def test_verify_offline_with_exported_public_keys(bastion, cli_db, tmp_path, monkeypatch):
    assert bastion("healthcode", "keys", "rotate").exit_code == 0
    exported = tmp_path / "keys.json"
    result = bastion("healthcode", "keys", "export-public", "--out", str(exported))
    assert result.exit_code == 0, result.output
    document = json.loads(exported.read_text())
    assert [k["kty"] for k in document["keys"]] == ["OKP"]
    assert "d" not in document["keys"][0]
    good = _sign(cli_db)
    raw = bytearray(signing.unb64(good[len(signing.PREFIX) :]))
    raw[5] = 0  # red → green with the same signature
    forged = signing.PREFIX + signing.b64(bytes(raw))
    cli_db.close()
    _offline(monkeypatch)

    ok = bastion("healthcode", "verify", good, "--keys", str(exported))
    assert ok.exit_code == 0, ok.output
    text = flat(ok.stdout)
    assert "VALID RED" in text
    assert "colour: red" in text
    assert "expires: 2022-03-25 16:05:00" in text  # Asia/Shanghai
    assert f"person: {signing.mask_person(TOKEN)}" in text
    assert TOKEN not in text

    refused = bastion("healthcode", "verify", forged, "--keys", str(exported))
    assert refused.exit_code == 1
    assert "REFUSED bad_signature" in flat(refused.stdout)

    with clock.frozen(NOW + timedelta(minutes=5)):
        late = bastion("healthcode", "verify", good, "--keys", str(exported))
    assert late.exit_code == 1
    assert "REFUSED expired" in flat(late.stdout)

    junk = bastion("healthcode", "verify", "BHC1.nonsense", "--keys", str(exported))
    assert (junk.exit_code, "REFUSED malformed" in flat(junk.stdout)) == (1, True)

    empty = tmp_path / "none.json"
    empty.write_text('{"keys": []}')
    unknown = bastion("healthcode", "verify", good, "--keys", str(empty))
    assert unknown.exit_code == 1
    assert "REFUSED unknown_key" in flat(unknown.stdout)

    broken = tmp_path / "broken.json"
    broken.write_text("not json")
    assert bastion("healthcode", "verify", good, "--keys", str(broken)).exit_code == 2


def test_rotation_lists_states_and_retires_old_keys(bastion, cli_db, tmp_path):
    assert bastion("healthcode", "keys", "rotate").exit_code == 0
    first = _sign(cli_db)
    assert bastion("healthcode", "keys", "rotate", "--grace", "600").exit_code == 0
    second = _sign(cli_db)
    assert signing.decode(first)[0].kid != signing.decode(second)[0].kid  # type: ignore[index]
    listing = flat(bastion("healthcode", "keys", "list").stdout)
    assert listing.count("signing") == 1
    assert listing.count("verifying") == 1
    cli_db.rollback()  # a fresh snapshot: see what the commands committed
    assert cli_db.query(SigningKey).count() == 2

    # The database's keys (no --keys): both verify during the grace period.
    assert bastion("healthcode", "verify", first).exit_code == 0
    assert bastion("healthcode", "verify", second).exit_code == 0
    before = tmp_path / "before.json"
    bastion("healthcode", "keys", "export-public", "--out", str(before))
    assert len(json.loads(before.read_text())["keys"]) == 2
    with clock.frozen(NOW + timedelta(seconds=600)):
        after = tmp_path / "after.json"
        bastion("healthcode", "keys", "export-public", "--out", str(after))
        assert len(json.loads(after.read_text())["keys"]) == 1
        assert "retired" in flat(bastion("healthcode", "keys", "list").stdout)
        # A checkpoint still holding the old key file refuses the retired key's codes...
        stale = bastion("healthcode", "verify", first, "--keys", str(before))
        assert "REFUSED retired_key" in flat(stale.stdout)
        # ...and one with fresh keys no longer knows it.
        assert "REFUSED unknown_key" in flat(bastion("healthcode", "verify", first).stdout)


def test_a_grace_shorter_than_a_code_lifetime_is_refused(bastion):
    result = bastion("healthcode", "keys", "rotate", "--grace", "10")
    assert result.exit_code == 1
    assert "grace" in result.output.lower()


def test_private_keys_are_encrypted_at_rest(bastion, cli_db):
    assert bastion("healthcode", "keys", "rotate").exit_code == 0
    cli_db.rollback()  # a fresh snapshot: see what the commands committed
    row = cli_db.query(SigningKey).one()
    raw_private = keys.private_key(row).private_bytes_raw()
    assert raw_private not in row.private_cipher
    assert signing.b64(raw_private).encode() not in row.private_cipher
