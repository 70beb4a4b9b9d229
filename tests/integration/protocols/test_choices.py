"""Which profile is in force on a date; choosing one is dated, never retroactive, audited."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select

from bastion.audit.models import AuditEntry
from bastion.core import clock
from bastion.core.config import get_settings
from bastion.core.errors import Conflict, Forbidden, InvalidInput
from bastion.protocols import service

TODAY = date(2022, 6, 1)


@pytest.fixture(autouse=True)
def _today():
    with clock.frozen(datetime(2022, 6, 1, 4, 0, tzinfo=clock.UTC)):
        yield


def test_without_a_choice_the_setting_is_in_force(db):
    assert service.profile_on(db, TODAY).key == get_settings().protocol_profile


def test_a_choice_takes_effect_from_its_day_on(db, principal):
    admin = principal("admin")
    service.choose(
        db_session=db,
        principal=admin,
        profile="national-9",
        effective_from=TODAY + timedelta(days=28),
        reason="9th edition published",
    )
    assert service.profile_on(db, TODAY + timedelta(days=27)).key == "jilin-2022-03"
    assert service.profile_on(db, TODAY + timedelta(days=28)).key == "national-9"
    assert service.profile_on(db, TODAY + timedelta(days=400)).key == "national-9"
    entry = db.execute(
        select(AuditEntry).where(AuditEntry.action == "protocol.choose")
    ).scalar_one()
    assert json.loads(entry.details)["profile"] == "national-9"
    assert [c.profile for c in service.history(db)] == ["jilin-2022-03", "national-9"]


def test_a_choice_in_the_past_is_refused(db, principal):
    with pytest.raises(InvalidInput) as caught:
        service.choose(
            db_session=db,
            principal=principal("admin"),
            profile="national-9",
            effective_from=TODAY - timedelta(days=1),
            reason="late",
        )
    assert caught.value.problems[0].field == "effective_from"


def test_two_choices_on_one_day_conflict(db, principal):
    kwargs = {
        "db_session": db,
        "principal": principal("admin"),
        "effective_from": TODAY,
        "reason": "x",
    }
    service.choose(profile="national-9", **kwargs)
    with pytest.raises(Conflict):
        service.choose(profile="national-2022-11", **kwargs)


def test_only_administrators_choose(db, principal):
    with pytest.raises(Forbidden):
        service.choose(
            db_session=db,
            principal=principal("commander"),
            profile="national-9",
            effective_from=TODAY,
            reason="x",
        )


def test_a_reason_keeps_its_line_breaks_and_refuses_a_control_character(client, headers, db):
    body = {"profile": "national-9", "effective_from": TODAY.isoformat()}
    nul = client.post(
        "/api/v1/protocols/choices", json={**body, "reason": "第九版\x00"}, headers=headers("admin")
    )
    assert nul.status_code == 422, nul.text
    assert [(e["field"], e["code"]) for e in nul.json()["errors"]] == [
        ("reason", "field.control_chars")
    ]
    reason = "第九版发布：\n\t密接隔离7天"
    chosen = client.post(
        "/api/v1/protocols/choices", json={**body, "reason": reason}, headers=headers("admin")
    )
    assert chosen.status_code == 201, chosen.text
    assert chosen.json()["reason"] == reason
    assert [c.reason for c in service.history(db)][-1] == reason
