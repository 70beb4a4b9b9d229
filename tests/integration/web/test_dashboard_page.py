"""The command dashboard: round progress with drill-down, lab load, the slots other domains
fill, and the same permission and region checks as the API."""

from __future__ import annotations

from datetime import timedelta

from bastion.core import clock
from tests.integration.web.pages import login, main_of
from tests.support import testing_factories as tf


def test_the_commander_sees_round_progress_and_drills_down(client, db, scene):
    tf.sampled(db, scene.round, scene.site, ["TW00000001"], people_per_tube=1)
    db.commit()
    login(client, "commander_in")
    page = client.get("/dashboard")
    assert page.status_code == 200
    body = main_of(page.text)
    assert "R-WEB-1" in body
    assert "<svg" in body  # the charts are drawn on the server
    assert "南关区" in body  # the districts of Changchun
    assert "吉林市" not in body  # nothing of a neighbouring city
    district = client.get(f"/dashboard?round={scene.round.id}&region=220102")
    assert district.status_code == 200
    assert "测试街道" in main_of(district.text)
    grid = client.get(f"/dashboard?round={scene.round.id}&region=220102001001")
    assert "第1网格" in main_of(grid.text)


def test_a_late_round_is_marked_late(client, db, scene):
    tf.sampled(db, scene.round, scene.site, ["TW00000002"], people_per_tube=1)
    db.commit()
    with clock.frozen(scene.round.deadline_at + timedelta(hours=1)):
        login(client, "analyst_in")
        page = client.get("/dashboard")
    assert 'class="badge late"' in main_of(page.text)
    assert 'class="badge late"' not in main_of(client.get("/dashboard").text)


def test_lab_load_is_shown_against_capacity(client, db, scene):
    login(client, "commander_in")
    body = main_of(client.get("/dashboard").text)
    assert "LAB-CC" in body
    assert "0/100" in body


def test_the_other_domains_slots_are_marked(client, scene):
    login(client, "commander_in")
    body = client.get("/dashboard").text
    for slot in ("cases", "isolation", "transfers", "bulletin"):
        assert f'data-slot="{slot}"' in body


def test_a_commander_outside_gets_nothing_of_changchun(client, scene):
    login(client, "commander_out")
    assert client.get("/dashboard?region=220100").status_code == 403
    assert client.get("/dashboard?region=220102").status_code == 403
    body = main_of(client.get("/dashboard").text)
    assert "南关区" not in body
    assert "LAB-CC" not in body


def test_a_sampler_may_not_open_the_dashboard(client, scene):
    login(client, "sampler_in")
    response = client.get("/dashboard")
    assert response.status_code == 403
    assert "R-WEB-1" not in response.text


def test_transport_delays_are_shown_for_the_region_in_view(client, db, scene):
    sampled_at = tf.SAMPLED_AT
    tf.sampled(db, scene.round, scene.site, ["TW00000011", "TW00000012"], at=sampled_at)
    tf.sampled(db, scene.round, scene.jilin_site, ["TW00000013"], at=sampled_at)
    tf.packed(db, scene.round, scene.site, "box-0401", ["TW00000011"], at=sampled_at)
    db.commit()
    with clock.frozen(sampled_at + timedelta(hours=5)):
        login(client, "commander_in")
        card = main_of(client.get("/dashboard").text).split('id="transport-delays"', 1)[1]
        card = card.split("</section>", 1)[0]
        # Changchun's site: one tube in no box, one box waiting for a courier for five hours.
        assert "SITE-CC" in card
        assert "BOX-0401" in card
        assert "待取件" in card
        assert "SITE-JL" not in card  # Jilin City's site is not the commander's
        elsewhere = client.get(f"/dashboard?round={scene.round.id}&region=220104")
        other = main_of(elsewhere.text).split('id="transport-delays"', 1)[1]
        assert "BOX-0401" not in other.split("</section>", 1)[0]
    with clock.frozen(sampled_at + timedelta(minutes=30)):  # nothing late yet
        login(client, "commander_in")
        on_time = main_of(client.get("/dashboard").text).split('id="transport-delays"', 1)[1]
    assert "无超时的采样管或转运箱" in on_time.split("</section>", 1)[0]
