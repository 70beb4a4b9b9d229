"""``bastion audit verify`` on a committed database: 0 when intact, 1 naming the entry when a row
was edited, deleted or inserted by someone who got past the database's triggers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine, delete, insert, select, text, update

from bastion.audit import service as audit_service
from bastion.audit.models import AuditEntry
from bastion.core.db import make_engine
from tests.integration.cli.conftest import flat

ENTRIES = 4


@pytest.fixture
def logged(bastion, tmp_path) -> Iterator[Engine]:
    """Four committed audit entries (three user creations and an import), then an engine to
    tamper with, the append-only triggers removed as an intruder with the owner's rights would."""
    for n in range(3):
        result = bastion(
            "users",
            "create",
            "--username",
            f"clerk{n}",
            "--role",
            "sampler",
            "--region",
            "220100",
            "--password",
            "long-enough-1",
        )
        assert result.exit_code == 0, result.output
    path = tmp_path / "people.csv"
    path.write_text("name,id_number,region_code\r\n王芳,11010519491231002X,220102\r\n")
    assert bastion("registry", "import", str(path)).exit_code == 0
    engine = make_engine()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(text("DROP TRIGGER audit_log_no_delete"))
    yield engine
    engine.dispose()


LOG = AuditEntry.__table__


def entry(engine: Engine, seq: int) -> SimpleNamespace:
    with engine.connect() as conn:
        return SimpleNamespace(**conn.execute(select(LOG).where(LOG.c.seq == seq)).one()._asdict())


def rewrite(engine: Engine, seq: int, **values: object) -> None:
    with engine.begin() as conn:
        conn.execute(update(LOG).where(LOG.c.seq == seq).values(**values))


def forge(engine: Engine, seq: int, prev_hash: str, *, digest_right: bool = True) -> None:
    """Insert an entry the log never wrote, hashed as well as an outsider can."""
    fields = SimpleNamespace(
        seq=seq,
        at=datetime(2022, 3, 26, 1, 0, tzinfo=UTC),
        actor_id=None,
        actor="system",
        action="user.create",
        target_type="user",
        target_id="99",
        region_code="220100",
        details=json.dumps({"role": "admin", "username": "ghost"}),
        prev_hash=prev_hash,
    )
    digest = audit_service._digest(fields) if digest_right else "f" * 64
    with engine.begin() as conn:
        conn.execute(insert(LOG).values(**vars(fields), hash=digest))


def verify(bastion):
    result = bastion("audit", "verify")
    return result.exit_code, flat(result.stdout), flat(result.stderr)


def test_an_intact_log_verifies_with_exit_0(bastion, logged):
    code, out, _ = verify(bastion)
    assert code == 0
    assert f"audit log intact: {ENTRIES} entries" in out


def test_an_edited_entry_is_named(bastion, logged):
    rewrite(logged, 2, details='{"role": "admin"}')
    code, _, err = verify(bastion)
    assert code == 1
    assert "entry 2 was altered" in err


def test_an_edited_entry_whose_hash_was_recomputed_breaks_the_next_link(bastion, logged):
    row = entry(logged, 2)
    row.details = '{"role": "admin", "username": "clerk1"}'
    rewrite(logged, 2, details=row.details, hash=audit_service._digest(row))
    code, _, err = verify(bastion)
    assert code == 1
    assert "entry 3 does not link to the entry before it" in err
    assert "entry 2 was altered" not in err


def test_the_last_entry_edited_and_rehashed_disagrees_with_the_head(bastion, logged):
    row = entry(logged, ENTRIES)
    row.details = "{}"
    rewrite(logged, ENTRIES, details="{}", hash=audit_service._digest(row))
    code, _, err = verify(bastion)
    assert code == 1
    assert f"entry {ENTRIES} does not match the hash the head records" in err


def test_a_deleted_entry_in_the_middle_is_named(bastion, logged):
    with logged.begin() as conn:
        conn.execute(delete(LOG).where(LOG.c.seq == 2))
    code, _, err = verify(bastion)
    assert code == 1
    assert "entries 2..2 are missing (deleted)" in err
    assert "entry 3 does not link" in err


def test_a_deleted_last_entry_is_named(bastion, logged):
    with logged.begin() as conn:
        conn.execute(delete(LOG).where(LOG.c.seq == ENTRIES))
    code, _, err = verify(bastion)
    assert code == 1
    assert f"entries {ENTRIES}..{ENTRIES} were removed" in err


def test_an_entry_inserted_at_the_end_is_named_even_with_a_right_hash(bastion, logged):
    forge(logged, ENTRIES + 1, entry(logged, ENTRIES).hash)
    code, _, err = verify(bastion)
    assert code == 1
    assert f"entries {ENTRIES + 1}..{ENTRIES + 1} lie beyond the chain's head" in err


def test_an_entry_inserted_with_a_made_up_hash_is_named(bastion, logged):
    forge(logged, ENTRIES + 1, "0" * 64, digest_right=False)
    code, _, err = verify(bastion)
    assert code == 1
    assert f"entry {ENTRIES + 1} was altered" in err


@pytest.mark.parametrize("seq", [0, -5])
def test_an_entry_inserted_before_the_first_is_named(bastion, logged, seq):
    forge(logged, seq, audit_service.GENESIS)
    code, _, err = verify(bastion)
    assert code == 1
    assert f"entry {seq} is out of sequence" in err
    assert "entry 1 does not link" not in err
