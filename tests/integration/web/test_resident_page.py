"""The resident's page: my code (QR, colour, the reason in words, valid until), my test results
(never who else shared the tube), contesting my code, my proxy bindings — the health-code and
testing services, for residents only."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.healthcode import views as code_views
from bastion.healthcode.models import ReviewRequest
from bastion.registry import service as registry_service
from bastion.registry.idnumber import make_resident_id
from bastion.registry.schemas import PersonCreate
from bastion.testing import ingest
from tests.integration.healthcode.codes_support import resident, set_status
from tests.integration.web.pages import login, main_of
from tests.support import factories
from tests.support import testing_factories as tf


def _reviews(db) -> int:
    return db.execute(select(func.count()).select_from(ReviewRequest)).scalar_one()


def _sampled_with(db, scene, person, barcode: str) -> object:
    """``person`` and a neighbour in one pooled tube, resulted negative by the lab."""
    neighbour = factories.person(db, region_code=person.region_code, name="钱多多")
    at = clock.now() - timedelta(hours=5)
    scans = [
        ingest.RawScan(
            row=n + 1,
            round=scene.round.code,
            site=scene.site.code,
            tube=barcode,
            person=p.token,
            scanned_at=at + timedelta(seconds=n),
        )
        for n, p in enumerate((person, neighbour))
    ]
    report = ingest.ingest_scans(
        db_session=db,
        principal=system_principal(),
        key="web-resident-1",
        source="test",
        scans=scans,
    )
    assert report.refused == 0
    tf.packed(db, scene.round, scene.site, "BOX-RES1", [barcode], at=at + timedelta(minutes=30))
    tf.received(db, "BOX-RES1", scene.lab, counted=1, at=at + timedelta(hours=1))
    tf.upload(db, [tf.row(scene.lab, barcode, "negative")])
    return neighbour


def test_the_resident_sees_their_code_and_results(client, db, scene):
    me = resident(db)
    set_status(db, me, "yellow", reason_key="healthcode.reason.default")
    neighbour = _sampled_with(db, scene, me, "TR00000001")
    db.commit()
    login(client, "resident_in")
    page = client.get("/me")
    assert page.status_code == 200
    body = main_of(page.text)
    assert 'id="qr"' in body
    assert "<svg" in body
    assert "BHC1." in body  # the signed payload the QR carries
    assert "黄码" in body.split('id="code-colour"', 1)[1][:40]
    assert 'id="valid-until"' in body
    results = body.split('id="results"', 1)[1]
    assert "TR00000001" in results
    assert "阴性" in results
    assert neighbour.name not in body
    assert "钱" not in results


def test_only_a_resident_linked_to_a_person_has_the_page(client, db, scene):
    login(client, "commander_in")
    assert client.get("/me").status_code == 403
    login(client, "resident_in")  # no person linked yet: told how to link, nothing else
    page = client.get("/me")
    assert page.status_code == 200
    assert 'id="unlinked"' in page.text
    assert 'id="qr"' not in page.text


def test_contesting_a_red_code_records_a_review_request(client, db, scene):
    me = resident(db)
    set_status(db, me, "green")
    db.commit()
    token = login(client, "resident_in")
    assert 'id="contest"' not in client.get("/me").text  # nothing to contest
    refused = client.post("/me/contest", data={"csrf": token, "statement": "错误"})
    assert refused.status_code == 409
    set_status(db, me, "red")
    db.commit()
    assert 'id="contest"' in client.get("/me").text
    forged = client.post("/me/contest", data={"csrf": "forged", "statement": "已出院"})
    assert forged.status_code == 401
    empty = client.post("/me/contest", data={"csrf": token, "statement": "  "})
    assert empty.status_code == 422
    assert _reviews(db) == 0
    done = client.post(
        "/me/contest", data={"csrf": token, "statement": "我已出院"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert _reviews(db) == 1
    assert "复核申请已提交" in main_of(client.get(done.headers["location"]).text)


def test_my_proxy_bindings_are_listed(client, db, scene, principal):
    me = resident(db)
    db.commit()
    number = make_resident_id("220102", date(1950, 2, 3), 777)
    registry_service.create(
        db_session=db,
        principal=system_principal(),
        data=PersonCreate(name="孙立", id_number=number, region_code=me.region_code),
    )
    code_views.request_binding(
        db_session=db, principal=principal("resident"), id_number=number, relation="parent"
    )
    db.commit()
    login(client, "resident_in")
    bindings = main_of(client.get("/me").text).split('id="bindings"', 1)[1]
    assert "parent" in bindings
    assert "待同意" in bindings
    assert me.id  # linked
