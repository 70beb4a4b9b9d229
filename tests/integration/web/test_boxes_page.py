"""Boxes: pack at the site, hand over to the courier, receive at the lab, see the
reconciliation — through the transport service, with CSRF and region checks."""

from __future__ import annotations

from sqlalchemy import select

from bastion.testing.models import Box
from tests.integration.web.pages import login, main_of
from tests.support import testing_factories as tf

TUBES = ["TW20000001", "TW20000002", "TW20000003"]


def _box(db, code: str) -> Box | None:
    db.expire_all()
    return db.execute(select(Box).where(Box.code == code)).scalar_one_or_none()


def test_a_box_goes_from_site_to_lab_and_shows_what_is_missing(client, db, scene):
    tf.sampled(db, scene.round, scene.site, TUBES)
    db.commit()
    token = login(client, "sampler_in")
    packed = client.post(
        "/boxes/pack",
        data={
            "csrf": token,
            "code": "BOXW-1",
            "round": scene.round.code,
            "site": scene.site.code,
            "tubes": "\n".join(TUBES),
            "declared": "3",
        },
        follow_redirects=False,
    )
    assert packed.status_code == 303, packed.text
    assert _box(db, "BOXW-1").state == "packed"

    token = login(client, "courier_in")
    handed = client.post("/boxes/pick-up", data={"csrf": token, "code": "BOXW-1", "counted": "3"})
    assert handed.status_code == 200
    assert _box(db, "BOXW-1").state == "in_transit"

    token = login(client, "lab_in")
    received = client.post(
        "/boxes/receive",
        data={
            "csrf": token,
            "code": "BOXW-1",
            "lab": scene.lab.code,
            "tubes": " ".join(TUBES[:2]),
        },
    )
    assert received.status_code == 200
    body = main_of(received.text)
    assert 'id="mismatched"' in body
    assert "TW20000003" in body  # the missing tube is named
    assert _box(db, "BOXW-1").state == "received"


def test_a_refused_hand_over_shows_the_form_again_with_the_reason(client, db, scene):
    token = login(client, "courier_in")
    response = client.post(
        "/boxes/pick-up", data={"csrf": token, "code": "NO-SUCH-BOX", "counted": "3"}
    )
    assert response.status_code == 404
    assert 'class="error"' in response.text
    assert 'action="/boxes/pick-up"' in response.text


def test_a_form_without_its_csrf_token_changes_nothing(client, db, scene):
    tf.sampled(db, scene.round, scene.site, TUBES)
    db.commit()
    login(client, "sampler_in")
    response = client.post(
        "/boxes/pack",
        data={
            "csrf": "forged",
            "code": "BOXW-2",
            "round": scene.round.code,
            "site": scene.site.code,
            "tubes": "\n".join(TUBES),
            "declared": "3",
        },
    )
    assert response.status_code == 401
    assert _box(db, "BOXW-2") is None


def test_a_courier_outside_sees_no_changchun_box(client, db, scene):
    tf.sampled(db, scene.round, scene.site, TUBES)
    tf.packed(db, scene.round, scene.site, "BOXW-3", TUBES)
    db.commit()
    login(client, "courier_in")
    assert "BOXW-3" in main_of(client.get("/boxes?code=BOXW-3").text)
    login(client, "courier_out")
    response = client.get("/boxes?code=BOXW-3")
    assert response.status_code == 404
    token = login(client, "courier_out")
    refused = client.post("/boxes/pick-up", data={"csrf": token, "code": "BOXW-3", "counted": "3"})
    assert refused.status_code in (403, 404)
    assert _box(db, "BOXW-3").state == "packed"


def test_only_a_lab_gets_the_receipt_form(client, scene):
    login(client, "courier_in")
    assert 'action="/boxes/receive"' not in client.get("/boxes").text
    login(client, "lab_in")
    assert 'action="/boxes/receive"' in client.get("/boxes").text
    login(client, "analyst_in")
    assert client.get("/boxes").status_code == 403
