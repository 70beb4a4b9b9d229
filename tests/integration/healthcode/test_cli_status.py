"""`bastion healthcode status|recompute|requests|approve` on a committed database, and
`bastion audit verify` catching an edited health-code history row."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.core import clock
from bastion.core.auth import hash_password
from bastion.core.db import make_engine
from bastion.healthcode import manual
from bastion.healthcode.models import CodeHistory
from bastion.regions import service as region_service
from tests.integration.cli.conftest import bastion, cli_db, flat  # noqa: F401 - fixtures
from tests.integration.healthcode import records
from tests.support import factories
from tests.support.world import _tree


def _world(cli_db: Session):  # type: ignore[no-untyped-def]  # noqa: F811
    region_service.load_base_regions(db_session=cli_db)
    cli_db.add_all(_tree("220102"))
    cli_db.flush()
    users = {}
    for name, role in (("inv", "investigator"), ("cmd", "commander")):
        user = User(
            username=name,
            display_name=name,
            password_hash=hash_password("x" * 12),
            role=role,
            region_code="220100",
            active=True,
            token_version=0,
            created_at=clock.now(),
        )
        cli_db.add(user)
        cli_db.flush()
        users[name] = user
    patient, contact_person = factories.person(cli_db), factories.person(cli_db)
    case = records.case(cli_db, patient)
    records.contact(cli_db, contact_person, case)
    cli_db.commit()
    return users, patient, contact_person, case


def test_recompute_status_approve_and_verify(bastion, cli_db) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    users, patient, contact_person, case = _world(cli_db)
    out = bastion("healthcode", "recompute", "--region", "220100")
    assert out.exit_code == 0, out.output
    assert "2 statuses changed" in flat(out.output)
    out = bastion("healthcode", "status", str(patient.id), "--history")
    assert out.exit_code == 0, out.output
    assert "red" in out.output
    assert f"case {case.id}" in flat(out.output)

    from bastion.accounts import service as account_service

    req = manual.create_request(
        db_session=cli_db,
        principal=account_service.principal_for(db_session=cli_db, user=users["inv"]),
        data=manual.RequestIn(
            person_ids=[contact_person.id],
            colour="red",
            reason="x",
            evidence_type="case",
            evidence_id=case.id,
        ),
    )
    cli_db.commit()
    listed = bastion("healthcode", "requests")
    assert str(req.id) in listed.output
    own = bastion("healthcode", "approve", str(req.id), "--as", "inv")
    assert own.exit_code == 1
    ok = bastion("healthcode", "approve", str(req.id), "--as", "cmd")
    assert ok.exit_code == 0, ok.output and "approved" in ok.output
    assert bastion("audit", "verify").exit_code == 0

    engine = make_engine()
    with engine.begin() as conn:
        conn.execute(
            update(CodeHistory.__table__)
            .where(CodeHistory.__table__.c.person_id == contact_person.id)
            .values(new_colour="green")
        )
    engine.dispose()
    broken = bastion("audit", "verify")
    assert broken.exit_code == 1
    assert "edited" in flat(broken.output)
