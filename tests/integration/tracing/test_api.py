"""The tracing API: cases, exposures, contacts, chains and expansion, masked and scoped."""

from __future__ import annotations

import pytest

from bastion.core import clock
from tests.integration.tracing.support import NOW
from tests.support import factories


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def report(client, headers, person, **extra):
    body = {"person_id": person.id, "classification": "asymptomatic", **extra}
    return client.post("/api/v1/cases", json=body, headers=headers("investigator"))


def test_an_investigator_reports_a_case_and_an_analyst_reads_it_masked(client, headers, db):
    person = factories.person(db, name="王小明")
    made = report(client, headers, person, found_by="fever_clinic")
    assert made.status_code == 201, made.text
    code = made.json()["code"]
    read = client.get(f"/api/v1/cases/{code}", headers=headers("analyst"))
    assert read.status_code == 200
    body = read.json()
    assert body["person"]["masked"] is True
    assert body["person"]["name"] != "王小明"
    assert (body["reporting_city"], body["status"]) == ("220100", "open")
    listed = client.get("/api/v1/cases", params={"status": "open"}, headers=headers("commander"))
    assert code in {c["code"] for c in listed.json()["items"]}


def test_a_second_open_case_is_409_and_a_future_date_422(client, headers, db):
    person = factories.person(db)
    assert report(client, headers, person).status_code == 201
    second = report(client, headers, person)
    assert second.status_code == 409
    assert second.json()["code"] == "case.open_exists"
    future = report(client, headers, factories.person(db), onset_on="2022-03-26")
    assert future.status_code == 422
    assert future.headers["content-type"].startswith("application/problem+json")


def test_reclassify_then_discharge(client, headers, db):
    code = report(client, headers, factories.person(db)).json()["code"]
    h = headers("investigator")
    done = client.post(
        f"/api/v1/cases/{code}/reclassify", json={"clinical_type": "mild"}, headers=h
    )
    assert done.json()["classification"] == "confirmed"
    wrong = client.post(f"/api/v1/cases/{code}/close", json={"action": "release"}, headers=h)
    assert wrong.status_code == 409
    closed = client.post(f"/api/v1/cases/{code}/close", json={"action": "discharge"}, headers=h)
    assert (closed.json()["status"], closed.json()["closed_on"]) == ("discharged", "2022-03-25")


def test_exposures_make_contacts_a_chain_walks_both_ways(client, headers, db):
    h = headers("investigator")
    code = report(client, headers, factories.person(db)).json()["code"]
    close_person, second_person, stranger = (factories.person(db) for _ in range(3))
    one = client.post(
        "/api/v1/exposures",
        json={
            "case": code,
            "person_id": close_person.id,
            "exposed_on": "2022-03-24",
            "setting": "household",
            "place": "家中",
        },
        headers=h,
    )
    assert one.status_code == 201, one.text
    assert one.json()["close_contacts"] == 1
    contacts = client.get("/api/v1/contacts", params={"case": code}, headers=h).json()["items"]
    [close] = contacts
    batch = client.post(
        "/api/v1/exposures/batch",
        json={
            "items": [
                {
                    "contact_id": close["id"],
                    "person_id": second_person.id,
                    "exposed_on": "2022-03-25",
                    "setting": "workplace",
                },
                {
                    "case": "C77777777",
                    "person_id": stranger.id,
                    "exposed_on": "2022-03-25",
                    "setting": "transport",
                },
            ]
        },
        headers=h,
    )
    assert batch.status_code == 200
    assert (batch.json()["accepted"], batch.json()["refused"]) == (1, 1)
    assert batch.json()["problems"][0]["row"] == 2
    chain = client.get(f"/api/v1/cases/{code}/chain", headers=headers("analyst")).json()
    assert sorted(e["kind"] for e in chain["edges"]) == ["close", "secondary"]
    assert all(n["person"] is None or n["person"]["masked"] for n in chain["nodes"])
    detail = client.get(f"/api/v1/contacts/{close['id']}", headers=h).json()
    assert [link["case_code"] for link in detail["links"]] == [code]


def test_a_contact_of_an_unknown_case_is_404(client, headers, db):
    response = client.post(
        "/api/v1/exposures",
        json={
            "case": "C12345678",
            "person_id": factories.person(db).id,
            "exposed_on": "2022-03-25",
            "setting": "other",
        },
        headers=headers("investigator"),
    )
    assert response.status_code == 404
    assert response.json()["code"] == "case.not_found"


def test_expansion_runs_over_the_graph(client, headers, db):
    code = report(client, headers, factories.person(db)).json()["code"]
    response = client.post(
        "/api/v1/contacts/expand", json={"cases": [code]}, headers=headers("investigator")
    )
    assert response.status_code == 200
    assert response.json()["cases"] == 1
