"""The health-code status API end to end: plain-words reasons, four eyes over HTTP with the
refusal's audit entry kept, contests, proxy bindings (never by name + ID number alone)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.accounts.models import User
from bastion.audit.models import AuditEntry
from bastion.healthcode import store
from tests.integration.healthcode import records
from tests.integration.registry.people import new_id_number, register

BASE = "/api/v1/healthcode"


def _link(db: Session, cast, role: str, person_id: int, where: str = "in") -> None:  # type: ignore[no-untyped-def]
    user = db.get(User, cast.ids[(role, where)])
    assert user is not None
    user.person_id = person_id
    db.flush()


def test_resident_sees_own_reason_in_plain_words_and_contests(db, client, headers, cast) -> None:  # type: ignore[no-untyped-def]
    person = register(db)
    case = records.case(db, person)
    store.recompute_people(db_session=db, person_ids=[person.id])
    _link(db, cast, "resident", person.id)
    r = client.get(f"{BASE}/status/me?lang=en", headers=headers("resident"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["colour"], body["evidence_type"], body["evidence_id"]) == (
        "red",
        "case",
        str(case.id),
    )
    assert "case" in body["reason"]
    assert body["popup_clears"]
    zh = client.get(f"{BASE}/status/me", headers=headers("resident")).json()
    assert "病例" in zh["reason"]
    hist = client.get(f"{BASE}/history/me", headers=headers("resident")).json()
    assert [(h["old_colour"], h["new_colour"]) for h in hist] == [(None, "red")]
    c = client.post(f"{BASE}/reviews", json={"statement": "误判"}, headers=headers("resident"))
    assert c.status_code == 201, c.text
    listed = client.get(f"{BASE}/reviews", headers=headers("hotline")).json()
    assert [x["id"] for x in listed] == [c.json()["id"]]
    # Someone else's status is not the resident's to read.
    other = register(db)
    assert client.get(f"{BASE}/status/{other.id}", headers=headers("resident")).status_code == 403


def test_bulk_red_without_evidence_over_http_is_refused_and_the_refusal_is_kept(
    db, client, headers
) -> None:  # type: ignore[no-untyped-def]
    people = [register(db) for _ in range(30)]
    r = client.post(
        f"{BASE}/requests",
        json={
            "person_ids": [p.id for p in people],
            "colour": "red",
            "reason": "上级要求",
            "evidence_type": "case",
            "evidence_id": 424242,
        },
        headers=headers("investigator"),
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["code"] == "healthcode.evidence_missing"
    db.expire_all()
    kept = (
        db.execute(select(AuditEntry).where(AuditEntry.action == "healthcode.manual_request"))
        .scalars()
        .all()
    )
    assert len(kept) == 1
    assert '"people": 30' in kept[0].details


def test_four_eyes_over_http(db, client, headers) -> None:  # type: ignore[no-untyped-def]
    patient, contact_person = register(db), register(db)
    case = records.case(db, patient)
    records.contact(db, contact_person, case, level="secondary")
    store.recompute_people(db_session=db, person_ids=[contact_person.id])
    made = client.post(
        f"{BASE}/requests",
        json={
            "person_ids": [contact_person.id],
            "colour": "yellow",
            "reason": "同楼栋",
            "evidence_type": "case",
            "evidence_id": case.id,
        },
        headers=headers("commander"),
    )
    assert made.status_code == 201, made.text
    rid = made.json()["id"]
    own = client.post(f"{BASE}/requests/{rid}/approve", json={}, headers=headers("commander"))
    assert own.status_code == 403
    assert own.json()["code"] == "healthcode.self_approval"
    ok = client.post(f"{BASE}/requests/{rid}/approve", json={}, headers=headers("admin"))
    assert ok.status_code == 200
    assert ok.json()["status"] == "approved"
    again = client.post(f"{BASE}/requests/{rid}/refuse", json={}, headers=headers("admin"))
    assert again.status_code == 409
    status = client.get(f"{BASE}/status/{contact_person.id}", headers=headers("hotline")).json()
    # The secondary contact's own rule outranks the manual yellow (earlier in the table).
    assert status["colour"] == "yellow"


def test_proxy_lookup_only_through_an_accepted_binding(db, client, headers, cast) -> None:  # type: ignore[no-untyped-def]
    number = new_id_number()
    grandma = register(db, id_number=number, name="李秀英")
    records.case(db, grandma)
    store.recompute_people(db_session=db, person_ids=[grandma.id])
    asked = client.post(
        f"{BASE}/proxy",
        json={"id_number": number, "relation": "grandparent"},
        headers=headers("resident"),
    )
    assert asked.status_code == 202
    unknown = client.post(
        f"{BASE}/proxy",
        json={"id_number": new_id_number(), "relation": "parent"},
        headers=headers("resident"),
    )
    assert unknown.json() == asked.json()  # registered or not: the same answer
    mine = client.get(f"{BASE}/proxy", headers=headers("resident")).json()
    assert len(mine) == 1
    assert mine[0]["holder"] is False
    bid = mine[0]["id"]
    # Name + ID number alone show nothing.
    early = client.get(f"{BASE}/proxy/{bid}/status", headers=headers("resident"))
    assert early.status_code == 403
    # The proxy cannot accept on the holder's behalf.
    assert (
        client.post(f"{BASE}/proxy/{bid}/accept", json={}, headers=headers("resident")).status_code
        == 403
    )
    # A grid worker needs the holder's documented consent.
    gw = headers("grid_worker")
    assert client.post(f"{BASE}/proxy/{bid}/accept", json={}, headers=gw).status_code == 422
    done = client.post(
        f"{BASE}/proxy/{bid}/accept", json={"consent_document": "同意书-2022-031"}, headers=gw
    )
    assert done.status_code == 200
    assert done.json()["consent_via"] == "grid_worker"
    seen = client.get(f"{BASE}/proxy/{bid}/status", headers=headers("resident")).json()
    assert seen["name_masked"] == "李**"
    assert "*" in seen["id_masked"]
    assert seen["status"]["colour"] == "red"
    assert seen["status"]["evidence_id"] is None
    db.expire_all()
    actions = {
        e.action
        for e in db.execute(select(AuditEntry)).scalars()
        if e.action.startswith("healthcode.proxy")
    }
    assert actions == {
        "healthcode.proxy_request",
        "healthcode.proxy_accept",
        "healthcode.proxy_lookup",
    }
    _ = cast


def test_reasons_notes_and_statements_keep_their_line_breaks(db, client, headers, cast) -> None:  # type: ignore[no-untyped-def]
    patient, contact_person = register(db), register(db)
    case = records.case(db, patient)
    records.contact(db, contact_person, case, level="secondary")
    store.recompute_people(db_session=db, person_ids=[contact_person.id])
    reason = "同楼栋：\n\t3号楼2单元"
    made = client.post(
        f"{BASE}/requests",
        json={
            "person_ids": [contact_person.id],
            "colour": "yellow",
            "reason": reason,
            "evidence_type": "case",
            "evidence_id": case.id,
        },
        headers=headers("commander"),
    )
    assert made.status_code == 201, made.text
    assert made.json()["reason"] == reason
    note = "证据不足。\r\n请补充流调记录。"
    refused = client.post(
        f"{BASE}/requests/{made.json()['id']}/refuse", json={"note": note}, headers=headers("admin")
    )
    assert refused.status_code == 200, refused.text
    assert refused.json()["decision_note"] == note
    store.recompute_people(db_session=db, person_ids=[patient.id])
    _link(db, cast, "resident", patient.id)
    statement = "我没有去过那里。\n当天在家。"
    contested = client.post(
        f"{BASE}/reviews", json={"statement": statement}, headers=headers("resident")
    )
    assert contested.status_code == 201, contested.text
    assert contested.json()["statement"] == statement


def test_a_control_character_in_a_status_filter_is_refused_naming_it(client, headers) -> None:  # type: ignore[no-untyped-def]
    for path, role in (("requests", "admin"), ("reviews", "hotline")):
        response = client.get(
            f"{BASE}/{path}", params={"status": "open\x00"}, headers=headers(role)
        )
        assert response.status_code == 422, response.text
        assert [(e["field"], e["code"]) for e in response.json()["errors"]] == [
            ("status", "field.control_chars")
        ]
