"""The investigator's pages: cases listed and read in the user's region, reclassified and closed,
exposures recorded by form and by CSV file (with the row report), contacts, and the chain drawn
as an SVG graph walkable both ways — the tracing services, with the API's checks."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from bastion.audit.models import AuditEntry
from bastion.core.auth import system_principal
from bastion.registry import service as registry_service
from bastion.registry.idnumber import make_resident_id
from bastion.registry.schemas import PersonCreate
from bastion.tracing.models import Case, Contact, Exposure
from tests.integration.tracing.support import case, expose
from tests.integration.web.pages import login, main_of
from tests.support import factories
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID


def _count(db, model) -> int:
    return db.execute(select(func.count()).select_from(model)).scalar_one()


def _case(db, **fields):
    person = factories.person(db, region_code=NANGUAN_GRID, name="赵敏")
    found = case(db, person, **fields)
    db.commit()
    return found, person


def test_cases_are_listed_and_read_masked_in_the_users_region(client, db):
    found, person = _case(db)
    outside = case(db, factories.person(db, region_code=CHANGYI_GRID))
    db.commit()
    login(client, "commander_in")
    listing = main_of(client.get("/cases").text)
    assert found.code in listing
    assert outside.code not in listing
    page = client.get(f"/cases/{found.code}")
    assert page.status_code == 200
    body = main_of(page.text)
    assert person.id_masked in body
    assert "赵敏" not in body
    assert "无症状感染者" in body
    assert "医疗机构" in body
    assert 'action="/cases/' not in body.replace("/unmask", "")  # a commander reads only
    assert client.get(f"/cases/{outside.id}").status_code == 404


def test_a_user_outside_or_without_the_permission_is_refused(client, db):
    found, _ = _case(db)
    login(client, "investigator_out")
    assert client.get(f"/cases/{found.id}").status_code == 404
    assert client.get(f"/cases/{found.id}/chain").status_code == 404
    assert found.code not in client.get("/cases").text
    login(client, "sampler_in")
    assert client.get("/cases").status_code == 403
    assert client.get(f"/cases/{found.id}").status_code == 403


def test_the_investigator_reclassifies_and_discharges(client, db):
    found, _ = _case(db)
    token = login(client, "investigator_in")
    forged = client.post(
        f"/cases/{found.id}/reclassify", data={"csrf": "x", "clinical_type": "mild"}
    )
    assert forged.status_code == 401
    done = client.post(
        f"/cases/{found.id}/reclassify",
        data={"csrf": token, "clinical_type": "ordinary"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    db.expire_all()
    assert db.get(Case, found.id).classification == "confirmed"
    refused = client.post(f"/cases/{found.id}/close", data={"csrf": token, "action": "release"})
    assert refused.status_code in (409, 422)
    assert 'role="alert"' in refused.text
    closed = client.post(
        f"/cases/{found.id}/close",
        data={"csrf": token, "action": "discharge"},
        follow_redirects=False,
    )
    assert closed.status_code == 303
    db.expire_all()
    assert db.get(Case, found.id).status == "discharged"
    assert "已出院" in main_of(client.get(closed.headers["location"]).text)


def test_a_commander_may_not_change_a_case(client, db):
    found, _ = _case(db)
    token = login(client, "commander_in")
    response = client.post(f"/cases/{found.id}/close", data={"csrf": token, "action": "death"})
    assert response.status_code == 403
    db.expire_all()
    assert db.get(Case, found.id).status == "open"


def test_an_exposure_is_recorded_by_form_and_makes_a_contact(client, db):
    found, _ = _case(db)
    other = factories.person(db, region_code=NANGUAN_GRID)
    db.commit()
    token = login(client, "investigator_in")
    fields = {"person_id": str(other.id), "exposed_on": "2022-03-24", "setting": "household"}
    assert client.post(f"/cases/{found.id}/exposures", data=fields).status_code == 401
    done = client.post(
        f"/cases/{found.id}/exposures", data={**fields, "csrf": token}, follow_redirects=False
    )
    assert done.status_code == 303
    assert _count(db, Exposure) == 1
    contact = db.execute(select(Contact).where(Contact.person_id == other.id)).scalar_one()
    page = main_of(client.get(f"/cases/{found.id}").text)
    assert f'href="/contacts/{contact.id}/chain"' in page
    bad = client.post(
        f"/cases/{found.id}/exposures",
        data={**fields, "csrf": token, "exposed_on": "2030-01-01"},
    )
    assert bad.status_code == 422
    assert "exposed_on" in bad.text
    assert _count(db, Exposure) == 1


def test_a_csv_file_of_exposures_lands_its_good_rows_and_reports_the_rest(client, db):
    found, _ = _case(db)
    a, b = (factories.person(db, region_code=NANGUAN_GRID) for _ in range(2))
    db.commit()
    token = login(client, "investigator_in")
    text = (
        "case,person_id,exposed_on,setting,place\n"
        f"{found.code},{a.id},2022-03-23,household,home\n"
        f"{found.code},{b.id},2022-03-23,nowhere,\n"
        f"{found.code},abc,2022-03-23,household,\n"
        f"{found.code},{b.id},2022-03-22,workplace,office\n"
    )
    response = client.post(
        f"/cases/{found.id}/exposures/file",
        data={"csrf": token},
        files={"file": ("exp.csv", text.encode(), "text/csv")},
    )
    assert response.status_code == 200
    report = main_of(response.text).split('id="report"', 1)[1]
    assert "共 4 行：登记 2 行" in report
    assert "退回 2 行" in report
    assert '<td class="num">2</td><td>setting</td>' in report
    assert '<td class="num">3</td><td>person_id</td>' in report
    assert _count(db, Exposure) == 2
    unreadable = client.post(
        f"/cases/{found.id}/exposures/file",
        data={"csrf": token},
        files={"file": ("exp.csv", b"nothing,here\n1,2\n", "text/csv")},
    )
    assert unreadable.status_code == 422
    assert _count(db, Exposure) == 2


def test_the_chain_is_drawn_and_walkable_both_ways(client, db):
    found, _ = _case(db)
    contact_person = factories.person(db, region_code=NANGUAN_GRID)
    db.commit()
    expose(db, found, contact_person)
    later = case(db, contact_person)
    db.commit()
    contact = db.execute(select(Contact).where(Contact.person_id == contact_person.id)).scalar_one()
    login(client, "analyst_in")
    down = main_of(client.get(f"/cases/{found.id}/chain").text)
    assert "<svg" in down
    assert "<script" not in down
    assert f'href="/contacts/{contact.id}/chain"' in down
    assert f'href="/cases/{later.id}/chain"' in down
    assert 'data-kind="became_case"' in down
    up = main_of(client.get(f"/cases/{later.id}/chain").text)
    assert f'href="/cases/{found.id}/chain"' in up  # walked up to the case it came from
    from_contact = client.get(f"/contacts/{contact.id}/chain")
    assert from_contact.status_code == 200
    assert f'data-node="case:{found.id}"' in from_contact.text


def test_unmasking_the_case_person_is_audited(client, db):
    found, _ = _case(db)
    token = login(client, "investigator_in")
    before = db.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "person.unmask")
    ).scalar_one()
    shown = client.post(f"/cases/{found.id}/unmask", data={"csrf": token})
    assert shown.status_code == 200
    assert "赵敏" in main_of(shown.text)
    after = db.execute(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "person.unmask")
    ).scalar_one()
    assert after == before + 1
    token = login(client, "commander_in")
    assert client.post(f"/cases/{found.id}/unmask", data={"csrf": token}).status_code == 403


def test_the_investigator_names_the_exposed_person_by_id_number(client, db):
    found, _ = _case(db)
    number = make_resident_id("220102", date(1968, 9, 3), 517)
    neighbour = registry_service.create(
        db_session=db,
        principal=system_principal(),
        data=PersonCreate(name="周芳", id_number=number, region_code=NANGUAN_GRID),
    )
    db.commit()
    token = login(client, "investigator_in")
    fields = {"csrf": token, "exposed_on": "2022-03-24", "setting": "household"}
    done = client.post(
        f"/cases/{found.id}/exposures", data={**fields, "id_number": number}, follow_redirects=False
    )
    assert done.status_code == 303
    contact = db.execute(select(Contact).where(Contact.person_id == neighbour.id)).scalar_one()
    assert contact.level == "close"
    unknown = make_resident_id("220102", date(1968, 9, 4), 519)
    refused = client.post(f"/cases/{found.id}/exposures", data={**fields, "id_number": unknown})
    assert refused.status_code == 422
    assert "id_number" in refused.text
    assert number not in refused.text  # the other person's number is never echoed
    neither = client.post(f"/cases/{found.id}/exposures", data=fields)
    assert neither.status_code == 422
    assert _count(db, Exposure) == 1
    text = f"case,id_number,exposed_on,setting\n{found.code},{number},2022-03-23,workplace\n"
    response = client.post(
        f"/cases/{found.id}/exposures/file",
        data={"csrf": token},
        files={"file": ("exp.csv", text.encode(), "text/csv")},
    )
    assert response.status_code == 200
    assert _count(db, Exposure) == 2
