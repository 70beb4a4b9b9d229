"""Manual changes under four eyes, alarms, contests; the abuse scenarios."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.audit.models import AuditEntry
from bastion.core.errors import Forbidden, InvalidInput
from bastion.healthcode import manual, store
from bastion.healthcode.models import CodeAlarm, CodeHistory, CodeStatus, ManualRequest
from tests.integration.healthcode import records
from tests.support import factories


def _audit(db: Session, action: str) -> list[AuditEntry]:
    db.expire_all()
    return list(db.execute(select(AuditEntry).where(AuditEntry.action == action)).scalars().all())


def _request(db, principal, people, case, colour="red"):  # type: ignore[no-untyped-def]
    return manual.create_request(
        db_session=db,
        principal=principal("investigator"),
        data=manual.RequestIn(
            person_ids=[p.id for p in people],
            colour=colour,
            reason="流调确认同住",
            evidence_type="case",
            evidence_id=case.id,
        ),
    )


def test_four_eyes_red_resting_on_a_case(db: Session, principal) -> None:  # type: ignore[no-untyped-def]
    patient, housemate = factories.person(db), factories.person(db)
    case = records.case(db, patient)
    contact = records.contact(db, housemate, case)
    contact.status = "released"
    contact.released_on = contact.identified_on
    db.flush()
    req = _request(db, principal, [housemate], case)
    assert req.status == "pending"
    assert db.get(CodeStatus, housemate.id) is None
    manual.decide(db_session=db, principal=principal("commander"), request_id=req.id, approve=True)
    s = db.get(CodeStatus, housemate.id)
    assert s is not None
    assert (s.colour, s.rule, s.evidence_type, s.evidence_id) == (
        "red",
        f"jl22.1:manual_red#{req.id}",
        "case",
        str(case.id),
    )
    h = db.execute(select(CodeHistory).where(CodeHistory.person_id == housemate.id)).scalar_one()
    assert h.cause == "manual"
    assert [e.target_id for e in _audit(db, "healthcode.manual_approve")] == [str(req.id)]


def test_turning_a_list_red_without_evidence_is_refused_and_audited(db: Session, principal) -> None:  # type: ignore[no-untyped-def]
    depositors = [factories.person(db) for _ in range(5)]
    with pytest.raises(InvalidInput) as err:
        manual.create_request(
            db_session=db,
            principal=principal("investigator"),
            data=manual.RequestIn(
                person_ids=[p.id for p in depositors],
                colour="red",
                reason="维稳",
                evidence_type="case",
                evidence_id=999_999,
            ),
        )
    assert err.value.problems[0].reason == "healthcode.evidence_missing"
    assert manual.is_audited(err.value)
    refused = _audit(db, "healthcode.manual_request")
    assert len(refused) == 1
    assert '"refused"' in refused[0].details
    assert db.execute(select(ManualRequest)).first() is None


def test_red_evidence_must_concern_every_person_named(db: Session, principal) -> None:  # type: ignore[no-untyped-def]
    patient = factories.person(db)
    case = records.case(db, patient)
    strangers = [factories.person(db) for _ in range(3)]
    with pytest.raises(InvalidInput) as err:
        _request(db, principal, strangers, case)
    assert err.value.problems[0].reason == "healthcode.evidence_unrelated"
    with pytest.raises(InvalidInput) as err:
        manual.create_request(
            db_session=db,
            principal=principal("investigator"),
            data=manual.RequestIn(
                person_ids=[strangers[0].id],
                colour="red",
                reason="x",
                evidence_type="zone",
                evidence_id=1,
            ),
        )
    assert err.value.problems[0].reason == "healthcode.red_needs_case"
    assert len(_audit(db, "healthcode.manual_request")) == 2


def test_self_approval_is_refused_and_audited(db: Session, principal, cast) -> None:  # type: ignore[no-untyped-def]
    patient, contact_person = factories.person(db), factories.person(db)
    case = records.case(db, patient)
    records.contact(db, contact_person, case)
    commander = principal("commander")
    req = manual.create_request(
        db_session=db,
        principal=commander,
        data=manual.RequestIn(
            person_ids=[contact_person.id],
            colour="red",
            reason="x",
            evidence_type="case",
            evidence_id=case.id,
        ),
    )
    with pytest.raises(Forbidden) as err:
        manual.decide(db_session=db, principal=commander, request_id=req.id, approve=True)
    assert err.value.key == "healthcode.self_approval"
    assert db.get(ManualRequest, req.id).status == "pending"  # type: ignore[union-attr]
    entries = _audit(db, "healthcode.manual_approve")
    assert len(entries) == 1
    assert "self_approval" in entries[0].details


def test_many_people_raise_an_alarm_province_admins_see(db: Session, principal, cast) -> None:  # type: ignore[no-untyped-def]
    patient = factories.person(db)
    case = records.case(db, patient)
    people = [factories.person(db) for _ in range(manual.alarm_threshold() + 1)]
    for p in people:
        records.contact(db, p, case)
    req = _request(db, principal, people, case)
    alarm = db.execute(select(CodeAlarm)).scalar_one()
    assert (alarm.request_id, alarm.province_code) == (req.id, "220000")
    assert _audit(db, "healthcode.alarm")
    from bastion.accounts import service as account_service

    province_admin = account_service.principal_for(
        db_session=db, user=db.get(User, cast.ids[("admin", "admin_province")])
    )
    assert [a.id for a in manual.list_alarms(db_session=db, principal=province_admin)] == [alarm.id]
    assert manual.list_alarms(db_session=db, principal=principal("admin")) == []
    with pytest.raises(Forbidden):
        manual.list_alarms(db_session=db, principal=principal("commander"))


def test_refused_request_changes_nothing_and_contest_is_listed(
    db: Session, principal, cast
) -> None:  # type: ignore[no-untyped-def]
    patient = factories.person(db)
    case = records.case(db, patient)
    store.recompute_people(db_session=db, person_ids=[patient.id])
    user = db.get(User, cast.ids[("resident", "in")])
    assert user is not None
    user.person_id = patient.id
    db.flush()
    review = manual.contest(db_session=db, principal=principal("resident"), statement="我已出院")
    assert (review.colour, review.evidence_id) == ("red", str(case.id))
    listed = manual.list_reviews(db_session=db, principal=principal("hotline"))
    assert [r.id for r in listed] == [review.id]
    assert manual.list_reviews(db_session=db, principal=principal("hotline", "out")) == []


def test_alarm_threshold_is_a_setting(db: Session, principal, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bastion.core.config import Settings, get_settings

    assert Settings().healthcode_alarm_threshold == 20
    lowered = get_settings().model_copy(update={"healthcode_alarm_threshold": 3})
    monkeypatch.setattr(manual, "get_settings", lambda: lowered)
    assert manual.alarm_threshold() == 3
    patient = factories.person(db)
    case = records.case(db, patient)
    three = [factories.person(db) for _ in range(3)]
    for p in three:
        records.contact(db, p, case)
    _request(db, principal, three, case)
    assert db.execute(select(CodeAlarm)).scalars().all() == []
    four = [factories.person(db) for _ in range(4)]
    for p in four:
        records.contact(db, p, case)
    req = _request(db, principal, four, case)
    assert [a.request_id for a in db.execute(select(CodeAlarm)).scalars()] == [req.id]
