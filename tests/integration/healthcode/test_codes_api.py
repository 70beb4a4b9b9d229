"""The resident's signed code, its QR image and reason, the public keys, online verification
and key rotation, through the API."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import segno

from bastion.audit.models import AuditEntry
from bastion.core import clock
from bastion.core.i18n import t
from bastion.healthcode import signing
from tests.integration.healthcode.codes_support import NOW, fresh_lookup, resident, set_status


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _keys(client) -> dict[str, signing.PublicKey]:
    response = client.get("/api/v1/codes/keys")
    assert response.status_code == 200
    assert "private" not in response.text
    assert all("d" not in key for key in response.json()["keys"])
    return signing.public_keys_from_jwks(response.json())


def test_a_resident_without_a_status_row_gets_a_green_code_that_verifies_offline(
    client, db, headers
):
    person = resident(db)
    response = client.get("/api/v1/codes/mine", headers=headers("resident"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["colour"] == "green"
    assert body["reason_key"] == "code.reason_none"
    assert body["name"] == "王*"
    verdict = signing.verify(body["payload"], _keys(client), now=clock.now())
    assert verdict.ok, verdict
    assert verdict.claims is not None
    assert (verdict.claims.colour, verdict.claims.person) == ("green", person.token)
    assert verdict.claims.expires_at - verdict.claims.issued_at == 300


def test_a_red_status_gives_a_red_code_and_its_reason_in_both_languages(client, db, headers):
    person = resident(db)
    set_status(db, person, "red", reason_key="code.reason_none", popup=None)
    auth = headers("resident")
    texts = {}
    for lang in ("zh-CN", "en"):
        body = client.get("/api/v1/codes/mine", params={"lang": lang}, headers=auth).json()
        assert body["colour"] == "red"
        assert signing.decode(body["payload"])[0].colour == "red"  # type: ignore[index]
        texts[lang] = body["reason"]
        assert body["reason"] == t("code.reason_none", lang)
    assert texts["zh-CN"] != texts["en"]


def test_the_reason_follows_the_status_rows_key(client, db, headers):
    person = resident(db)
    set_status(db, person, "yellow", reason_key="healthcode.reason.default", popup="x.popup")
    body = client.get("/api/v1/codes/mine", headers=headers("resident")).json()
    assert body["colour"] == "yellow"
    assert body["reason_key"] == "healthcode.reason.default"
    assert body["reason"] == t("healthcode.reason.default", "zh-CN")
    assert body["popup"] == "x.popup"


def test_the_qr_image_carries_the_same_payload(client, db, headers):
    resident(db)
    auth = headers("resident")
    payload = client.get("/api/v1/codes/mine", headers=auth).json()["payload"]
    svg = client.get("/api/v1/codes/mine/qr", params={"format": "svg", "scale": 4}, headers=auth)
    assert svg.status_code == 200
    assert svg.headers["content-type"].startswith("image/svg+xml")
    expected = io.BytesIO()
    segno.make(payload, error="m").save(expected, kind="svg", scale=4, dark="#0a7d32", border=2)
    assert svg.content == expected.getvalue()
    png = client.get("/api/v1/codes/mine/qr", params={"format": "png"}, headers=auth)
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")


def test_a_user_without_a_person_gets_404(client, headers):
    response = client.get("/api/v1/codes/mine", headers=headers("resident", "out"))
    assert response.status_code == 404
    assert response.json()["code"] == "code.no_person"


def test_checkpoint_verify_online_refuses_forged_and_expired_codes(client, db, headers):
    person = resident(db)
    set_status(db, person, "yellow")
    payload = client.get("/api/v1/codes/mine", headers=headers("resident")).json()["payload"]
    staff = headers("grid_worker")
    good = client.post("/api/v1/codes/verify", json={"payload": payload}, headers=staff).json()
    assert good["valid"] is True
    assert (good["colour"], good["current_colour"]) == ("yellow", "yellow")
    assert good["person"] == signing.mask_person(person.token)

    raw = bytearray(signing.unb64(payload[len(signing.PREFIX) :]))
    raw[5] = 0  # yellow → green, signature unchanged
    forged = signing.PREFIX + signing.b64(bytes(raw))
    bad = client.post("/api/v1/codes/verify", json={"payload": forged}, headers=staff).json()
    assert (bad["valid"], bad["refusal"]) == (False, "bad_signature")
    assert bad["current_colour"] is None

    with clock.frozen(NOW + timedelta(minutes=6)):
        late = client.post("/api/v1/codes/verify", json={"payload": payload}, headers=staff)
    assert (late.json()["valid"], late.json()["refusal"]) == (False, "expired")
    assert late.json()["message"] == t("code.verdict_expired", "zh-CN")

    junk = client.post("/api/v1/codes/verify", json={"payload": "hello"}, headers=staff)
    assert junk.json()["refusal"] == "malformed"
    missing = client.post("/api/v1/codes/verify", content=b"not json", headers=staff)
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "payload"


def test_rotation_keeps_old_codes_valid_and_new_codes_use_the_new_key(client, db, headers):
    fresh_lookup(client.app)  # polls inline: the new key is in use from the next request on
    resident(db)
    auth = headers("resident")
    old = client.get("/api/v1/codes/mine", headers=auth).json()["payload"]
    old_kid = signing.decode(old)[0].kid  # type: ignore[index]

    rotated = client.post("/api/v1/codes/keys/rotate", headers=headers("admin"))
    assert rotated.status_code == 201, rotated.text
    new_kid = rotated.json()["kid"]
    assert new_kid != old_kid
    assert rotated.json()["superseded"] == [old_kid]
    entry = db.query(AuditEntry).filter(AuditEntry.action == "code.key_rotate").one()
    assert entry.target_id == new_kid

    published = _keys(client)
    assert set(published) == {old_kid, new_kid}
    assert published[old_kid].retired_at == int((NOW + timedelta(seconds=900)).timestamp())
    assert signing.verify(old, published, now=clock.now()).ok

    with clock.frozen(NOW + timedelta(minutes=4)):  # past half the old code's life: re-signed
        fresh = client.get("/api/v1/codes/mine", headers=auth).json()["payload"]
    assert signing.decode(fresh)[0].kid == new_kid  # type: ignore[index]

    with clock.frozen(NOW + timedelta(seconds=900)):
        after = _keys(client)
    assert set(after) == {new_kid}


def test_only_key_holders_rotate(client, headers):
    response = client.post("/api/v1/codes/keys/rotate", headers=headers("commander"))
    assert response.status_code == 403


def test_the_checkpoint_page_embeds_the_public_keys_and_its_script(client, db, headers):
    resident(db)
    client.get("/api/v1/codes/mine", headers=headers("resident"))  # creates the first key
    kid = next(iter(_keys(client)))
    page = client.get("/checkpoint", params={"lang": "en"})
    assert page.status_code == 200
    assert kid in page.text
    assert t("code.checkpoint_title", "en") in page.text
    assert t("code.verdict_bad_signature", "en") in page.text
    assert "/static/checkpoint.js" in page.text
    script = client.get("/static/checkpoint.js")
    assert script.status_code == 200
    assert "Ed25519" in script.text
