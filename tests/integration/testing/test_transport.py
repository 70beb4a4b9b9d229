"""Boxes of tubes from site to courier to lab: the chain of custody, what each step refuses,
and the reconciliation of what the system holds against what people counted and scanned."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, NotFound
from bastion.testing import transport
from bastion.testing.models import BoxEvent, Tube
from tests.support import factories
from tests.support import testing_factories as tf
from tests.support.testing_factories import SAMPLED_AT, START

NOW = START + timedelta(hours=10)
TUBES = ["TB10000001", "TB10000002", "TB10000003"]


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def world(db):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    lab = factories.lab(db)
    tubes = tf.sampled(db, rnd, site, TUBES)
    return rnd, site, lab, tubes


def tube(db, barcode):
    return db.execute(select(Tube).where(Tube.barcode == barcode)).scalar_one()


def problems_of(err):
    return [(p.field, p.reason) for p in err.value.problems]


# The happy path ----------------------------------------------------------------------------


def test_a_box_goes_from_site_to_courier_to_lab_and_its_tubes_follow(db, world, principal):
    rnd, site, lab, _ = world
    packed = tf.packed(db, rnd, site, "box-0001", TUBES, principal=principal("sampler"))
    assert packed.box.code == "BOX-0001"
    assert packed.box.state == "packed"
    assert {tube(db, b).state for b in TUBES} == {"boxed"}
    assert packed.reconciled

    courier = transport.pick_up_box(
        db_session=db, principal=principal("courier"), code="BOX-0001", tubes_counted=3
    )
    assert courier.box.state == "in_transit"
    assert courier.box.picked_up_at == NOW
    assert {tube(db, b).state for b in TUBES} == {"in_transit"}

    at_lab = transport.receive_box(
        db_session=db, principal=principal("lab"), code="BOX-0001", lab_code=lab.code, tubes=TUBES
    )
    assert at_lab.box.state == "received"
    assert at_lab.lab_code == lab.code
    assert at_lab.tubes_received == 3
    assert at_lab.reconciled
    for barcode in TUBES:
        t = tube(db, barcode)
        assert (t.state, t.lab_id, t.received_at) == ("received", lab.id, NOW)
    events = db.execute(
        select(BoxEvent.event, BoxEvent.tubes_counted)
        .where(BoxEvent.box_id == at_lab.box.id)
        .order_by(BoxEvent.id)
    ).all()
    assert [tuple(e) for e in events] == [("packed", 3), ("picked_up", 3), ("received", 3)]


def test_a_lab_may_receive_a_box_straight_from_the_site(db, world):
    rnd, site, lab, _ = world
    tf.packed(db, rnd, site, "BOX-0002", TUBES)
    view = tf.received(db, "BOX-0002", lab, counted=3)
    assert view.box.state == "received"
    assert view.box.picked_up_at is None
    assert [e.event for e in view.events] == ["packed", "received"]


def test_a_box_is_received_only_once(db, world):
    rnd, site, lab, _ = world
    other = factories.lab(db, code="LAB-2")
    tf.packed(db, rnd, site, "BOX-0003", TUBES)
    tf.received(db, "BOX-0003", lab, counted=3)
    with pytest.raises(InvalidTransition) as err:
        tf.received(db, "BOX-0003", other, counted=3)
    assert problems_of(err) == [("code", "box.already_received")]
    assert {tube(db, b).lab_id for b in TUBES} == {lab.id}


def test_a_box_is_picked_up_once_and_never_after_it_reached_the_lab(db, world):
    rnd, site, lab, _ = world
    tf.packed(db, rnd, site, "BOX-0004", TUBES)
    transport.pick_up_box(
        db_session=db, principal=system_principal(), code="BOX-0004", tubes_counted=3
    )
    with pytest.raises(InvalidTransition) as err:
        transport.pick_up_box(
            db_session=db, principal=system_principal(), code="BOX-0004", tubes_counted=3
        )
    assert problems_of(err) == [("code", "box.already_picked_up")]
    tf.received(db, "BOX-0004", lab, counted=3)
    with pytest.raises(InvalidTransition) as err:
        transport.pick_up_box(
            db_session=db, principal=system_principal(), code="BOX-0004", tubes_counted=3
        )
    assert problems_of(err) == [("code", "box.already_received")]


# Reconciliation ----------------------------------------------------------------------------


def test_reconciliation_lists_a_missing_and_an_extra_tube_and_neither_is_taken_in(db, world):
    rnd, site, lab, _ = world
    stray = tf.sampled(db, rnd, site, ["TB10000009"])["TB10000009"]
    tf.packed(db, rnd, site, "BOX-0006", TUBES)
    view = tf.received(db, "BOX-0006", lab, tubes=["TB10000001", "TB10000002", "TB10000009"])
    assert not view.reconciled
    assert [(m.stage, m.kind, m.tube) for m in view.mismatches] == [
        ("received", "missing_tube", "TB10000003"),
        ("received", "extra_tube", "TB10000009"),
    ]
    assert view.tubes_received == 2
    assert tube(db, "TB10000003").state == "boxed"
    assert tube(db, "TB10000003").received_at is None
    db.refresh(stray)
    assert (stray.state, stray.box_id, stray.lab_id) == ("open", None, None)
    again = transport.get_box(db_session=db, principal=system_principal(), code="BOX-0006")
    assert again.mismatches == view.mismatches


def test_counts_that_differ_are_mismatches_at_each_hand_over_not_refusals(db, world):
    rnd, site, lab, _ = world
    view = tf.packed(db, rnd, site, "BOX-0007", TUBES, declared=4)
    assert [(m.stage, m.kind, m.expected, m.counted) for m in view.mismatches] == [
        ("packed", "count_differs", 3, 4)
    ]
    transport.pick_up_box(
        db_session=db, principal=system_principal(), code="BOX-0007", tubes_counted=2
    )
    view = tf.received(db, "BOX-0007", lab, counted=3)
    assert [(m.stage, m.kind, m.expected, m.counted) for m in view.mismatches] == [
        ("packed", "count_differs", 3, 4),
        ("picked_up", "count_differs", 3, 2),
    ]
    assert view.tubes_received == 3


def test_a_pick_up_scan_with_barcodes_is_reconciled_too(db, world):
    rnd, site, _, _ = world
    tf.packed(db, rnd, site, "BOX-0008", TUBES)
    view = transport.pick_up_box(
        db_session=db,
        principal=system_principal(),
        code="BOX-0008",
        tubes=["TB10000001", "tb10000002", "TB10000002"],
    )
    assert view.events[-1].tubes_counted == 2
    assert [(m.kind, m.tube) for m in view.mismatches] == [
        ("count_differs", None),
        ("missing_tube", "TB10000003"),
    ]


# Refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("barcode", "reason"),
    [
        ("TB19999999", "box.unknown_tube"),
        ("bad code!", "scan.bad_barcode"),
        ("OTHER-ROUND-1", "box.tube_other_round"),
        ("OTHER-SITE-01", "box.tube_other_site"),
        ("EMPTY-TUBE-1", "box.tube_not_sampled"),
        ("TB10000003", "box.tube_in_other_box"),
    ],
)
def test_each_bad_tube_refuses_the_whole_pack_naming_it(db, world, barcode, reason):
    rnd, site, _, _ = world
    other_round = factories.round_(db, code="R-TEST-2", starts_at=START)
    other_site = factories.site(db, code="SITE-2")
    tf.sampled(db, other_round, site, ["OTHER-ROUND-1"])
    tf.sampled(db, rnd, other_site, ["OTHER-SITE-01"])
    tf.bare_tube(db, rnd, site, "EMPTY-TUBE-1", members=0)
    tf.packed(db, rnd, site, "BOX-0009", ["TB10000003"])
    with pytest.raises(InvalidInput) as err:
        tf.packed(db, rnd, site, "BOX-0010", ["TB10000001", barcode], declared=2)
    assert problems_of(err) == [("tubes.1", reason)]
    assert tube(db, "TB10000001").box_id is None


def test_a_pack_names_every_problem_of_its_fields_at_once(db, world):
    with pytest.raises(InvalidInput) as err:
        transport.pack_box(
            db_session=db,
            principal=system_principal(),
            code="x",
            round_ref="NO-SUCH-ROUND",
            site_code="NO-SUCH\x00SITE",
            tubes=[],
            declared_tubes=0,
        )
    assert problems_of(err) == [
        ("code", "box.bad_code"),
        ("tubes", "box.no_tubes"),
        ("declared_tubes", "field.out_of_range"),
        ("round", "scan.unknown_round"),
        ("site", "scan.unknown_site"),
    ]


def test_re_sending_the_same_pack_returns_the_box_and_other_contents_are_refused(db, world):
    rnd, site, _, _ = world
    first = tf.packed(db, rnd, site, "BOX-0011", TUBES[:2])
    again = tf.packed(db, rnd, site, "BOX-0011", list(reversed(TUBES[:2])))
    assert again.box.id == first.box.id
    assert len(again.events) == 1
    with pytest.raises(Conflict) as err:
        tf.packed(db, rnd, site, "BOX-0011", TUBES)
    assert problems_of(err) == [("code", "box.code_taken")]


def test_an_unknown_box_or_lab_is_refused_with_its_field(db, world):
    with pytest.raises(NotFound) as err:
        transport.pick_up_box(
            db_session=db, principal=system_principal(), code="NO-SUCH-BOX", tubes_counted=1
        )
    assert problems_of(err) == [("code", "box.not_found")]
    rnd, site, _, _ = world
    tf.packed(db, rnd, site, "BOX-0012", TUBES)
    with pytest.raises(InvalidInput) as err:
        transport.receive_box(
            db_session=db,
            principal=system_principal(),
            code="BOX-0012",
            lab_code="NO-SUCH-LAB",
            tubes_counted=3,
        )
    assert problems_of(err) == [("lab", "lab.not_found")]


def test_a_hand_over_needs_a_count_or_barcodes(db, world):
    rnd, site, _, _ = world
    tf.packed(db, rnd, site, "BOX-0013", TUBES)
    with pytest.raises(InvalidInput) as err:
        transport.pick_up_box(db_session=db, principal=system_principal(), code="BOX-0013")
    assert problems_of(err) == [("tubes_counted", "box.count_required")]


def test_hand_over_times_run_forward_and_never_into_the_future(db, world):
    rnd, site, lab, _ = world
    tf.packed(db, rnd, site, "BOX-0014", TUBES, at=SAMPLED_AT + timedelta(hours=2))
    for at, reason in (
        (SAMPLED_AT + timedelta(hours=1), "box.time_before_previous"),
        (NOW + timedelta(hours=1), "box.time_in_future"),
        ((NOW - timedelta(hours=1)).replace(tzinfo=None), "field.needs_timezone"),
    ):
        with pytest.raises(InvalidInput) as err:
            tf.received(db, "BOX-0014", lab, counted=3, at=at)
        assert problems_of(err) == [("at", reason)]
    view = tf.received(db, "BOX-0014", lab, counted=3, at=NOW - timedelta(hours=1))
    assert view.box.received_at == NOW - timedelta(hours=1)


def test_roles_sampler_packs_courier_picks_up_lab_receives(db, world, principal):
    rnd, site, lab, _ = world
    with pytest.raises(Forbidden):
        tf.packed(db, rnd, site, "BOX-0015", TUBES, principal=principal("courier"))
    with pytest.raises(Forbidden):
        tf.packed(db, rnd, site, "BOX-0015", TUBES, principal=principal("lab"))
    tf.packed(db, rnd, site, "BOX-0015", TUBES, principal=principal("sampler"))
    with pytest.raises(Forbidden):
        transport.receive_box(
            db_session=db,
            principal=principal("courier"),
            code="BOX-0015",
            lab_code=lab.code,
            tubes_counted=3,
        )
    with pytest.raises(Forbidden):
        transport.pick_up_box(
            db_session=db, principal=principal("analyst"), code="BOX-0015", tubes_counted=3
        )


def test_nobody_acts_on_a_site_box_or_lab_outside_their_region(db, world, principal):
    rnd, site, lab, _ = world
    province = factories.round_(db, code="R-PROVINCE", region_code="220000", starts_at=START)
    tf.sampled(db, province, site, ["TB20000001"])
    with pytest.raises(InvalidInput) as err:
        tf.packed(db, rnd, site, "BOX-0016", TUBES, principal=principal("sampler", "out"))
    assert problems_of(err) == [("round", "scan.unknown_round")]
    with pytest.raises(Forbidden) as err:
        tf.packed(
            db, province, site, "BOX-0016", ["TB20000001"], principal=principal("sampler", "out")
        )
    assert problems_of(err) == [("site", "error.region_outside")]
    tf.packed(db, rnd, site, "BOX-0016", TUBES)
    with pytest.raises(Forbidden) as err:
        transport.pick_up_box(
            db_session=db, principal=principal("courier", "out"), code="BOX-0016", tubes_counted=3
        )
    assert problems_of(err) == [("code", "error.region_outside")]
    with pytest.raises(Forbidden) as err:
        transport.receive_box(
            db_session=db,
            principal=principal("lab", "out"),
            code="BOX-0016",
            lab_code=lab.code,
            tubes_counted=3,
        )
    assert problems_of(err) == [("lab", "error.region_outside")]
    with pytest.raises(NotFound):
        transport.get_box(db_session=db, principal=principal("analyst", "out"), code="BOX-0016")


# Through the API ---------------------------------------------------------------------------


def test_the_api_carries_a_box_from_site_to_lab(client, headers, db, world):
    _, _, lab, _ = world
    packed = client.post(
        "/api/v1/boxes",
        json={
            "code": "BOX-0100",
            "round": "R-TEST-1",
            "site": "SITE-1",
            "tubes": TUBES,
            "declared_tubes": 3,
        },
        headers=headers("sampler"),
    )
    assert packed.status_code == 201, packed.text
    assert packed.json()["state"] == "packed"
    picked = client.post(
        "/api/v1/boxes/BOX-0100/pick-up", json={"tubes_counted": 3}, headers=headers("courier")
    )
    assert picked.status_code == 200, picked.text
    got = client.post(
        "/api/v1/boxes/BOX-0100/receive",
        json={"lab": lab.code, "tubes": TUBES[:2]},
        headers=headers("lab"),
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["state"] == "received"
    assert body["lab"] == lab.code
    assert body["reconciled"] is False
    assert [(m["kind"], m["tube"]) for m in body["mismatches"]] == [
        ("count_differs", None),
        ("missing_tube", "TB10000003"),
    ]
    read = client.get("/api/v1/boxes/BOX-0100", headers=headers("analyst"))
    assert read.status_code == 200
    assert read.json()["mismatches"] == body["mismatches"]
    assert [e["event"] for e in read.json()["events"]] == ["packed", "picked_up", "received"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("post", "/api/v1/boxes", {"code": "BOX-0200"}, 422, "round"),
        (
            "post",
            "/api/v1/boxes",
            {
                "code": "BOX-0200",
                "round": "R-TEST-1",
                "site": "SITE-1",
                "tubes": ["TB10000001", "\x00\x01"],
                "declared_tubes": 10**40,
            },
            422,
            "declared_tubes",
        ),
        (
            "post",
            "/api/v1/boxes",
            {
                "code": "BOX-0200",
                "round": "R-\x00",
                "site": "SITE-1",
                "tubes": ["TB10000001"],
                "declared_tubes": 1,
            },
            422,
            "round",
        ),
        ("post", "/api/v1/boxes/NO-SUCH-BOX/pick-up", {"tubes_counted": 1}, 404, "code"),
        ("post", "/api/v1/boxes/%00%01/pick-up", {"tubes_counted": 1}, 404, "code"),
        ("post", "/api/v1/boxes/BOX-0300/pick-up", {"tubes_counted": 10**30}, 422, "tubes_counted"),
        ("post", "/api/v1/boxes/BOX-0300/receive", {"lab": "LAB-\x00"}, 422, "lab"),
        ("post", "/api/v1/boxes/BOX-0300/receive", {"lab": "LAB-1", "tubes": [7]}, 422, "tubes.0"),
        ("get", "/api/v1/boxes/" + "X" * 80, None, 422, "code"),
        (
            "post",
            "/api/v1/boxes",
            {
                "code": "BOX-0200",
                "round": "R-TEST-1",
                "site": "SITE-1",
                "tubes": ["TB10000001"],
                "declared_tubes": 1,
                "at": "0001-01-01T00:00:00+08:00",
            },
            422,
            "at",
        ),
        (
            "post",
            "/api/v1/boxes/BOX-0300/pick-up",
            {"tubes_counted": 3, "at": "9999-12-31T23:59:59-08:00"},
            422,
            "at",
        ),
        (
            "post",
            "/api/v1/boxes/BOX-0300/receive",
            {"lab": "LAB-1", "tubes_counted": 3, "at": "0001-01-01T00:00:00+14:00"},
            422,
            "at",
        ),
        ("post", "/api/v1/boxes/BOX-0300/pick-up", {"tubes_counted": 3, "at": "soon"}, 422, "at"),
    ],
)
def test_bad_box_requests_get_problem_responses_naming_the_field(
    client, headers, db, world, method, path, body, status, field
):
    rnd, site, _, _ = world
    tf.packed(db, rnd, site, "BOX-0300", TUBES)
    kwargs = {"headers": headers("admin")}
    if body is not None:
        kwargs["json"] = body
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in response.json()["errors"]]


# Transport delays --------------------------------------------------------------------------


def test_transport_delays_list_unboxed_tubes_and_late_boxes_oldest_first(db, world, principal):
    rnd, site, lab, _ = world  # three tubes sampled at START + 1 h, nine hours ago
    fresh = tf.sampled(db, rnd, site, ["TB10000009"], at=NOW - timedelta(minutes=30))
    assert fresh
    tf.packed(db, rnd, site, "box-0101", TUBES[:1], at=NOW - timedelta(hours=5))
    tf.packed(db, rnd, site, "box-0102", TUBES[1:2], at=NOW - timedelta(hours=7))
    with clock.frozen(NOW - timedelta(hours=6)):
        transport.pick_up_box(
            db_session=db, principal=system_principal(), code="BOX-0102", tubes_counted=1
        )
    reader = principal("commander")
    found = transport.transport_delays(db_session=db, principal=reader, ref=rnd.code)
    # One tube of the first three is still in no box; the fresh one is not late yet.
    assert [(u.site, u.tubes, u.oldest_scan_at) for u in found.unboxed] == [
        (site.code, 1, tube(db, TUBES[2]).first_scan_at)
    ]
    assert [(b.code, b.state, b.hours) for b in found.late_boxes] == [
        ("BOX-0102", "in_transit", 6.0),  # on the road since six hours ago
        ("BOX-0101", "packed", 5.0),  # waiting for its courier for five
    ]
    # Looser thresholds: nothing is late.
    relaxed = transport.transport_delays(
        db_session=db,
        principal=reader,
        ref=rnd.code,
        unboxed_hours=12,
        waiting_hours=6,
        on_road_hours=8,
    )
    assert (relaxed.unboxed, relaxed.late_boxes) == ([], [])
    # A received box is no longer late.
    transport.receive_box(
        db_session=db,
        principal=principal("lab"),
        code="BOX-0102",
        lab_code=lab.code,
        tubes_counted=1,
    )
    again = transport.transport_delays(db_session=db, principal=reader, ref=rnd.code)
    assert [b.code for b in again.late_boxes] == ["BOX-0101"]


def test_transport_delays_refuse_bad_thresholds_and_hide_other_regions(db, world, principal):
    rnd, *_ = world
    with pytest.raises(InvalidInput) as err:
        transport.transport_delays(
            db_session=db, principal=principal("commander"), ref=rnd.code, waiting_hours=0
        )
    assert problems_of(err) == [("waiting_hours", "field.out_of_range")]
    with pytest.raises(NotFound):
        transport.transport_delays(
            db_session=db, principal=principal("commander", "out"), ref=rnd.code
        )


def test_transport_delays_through_the_api(client, db, world, headers):
    rnd, site, *_ = world
    tf.packed(db, rnd, site, "box-0201", TUBES, at=NOW - timedelta(hours=3))
    answer = client.get(f"/api/v1/rounds/{rnd.code}/transport-delays", headers=headers("commander"))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["round"], body["unboxed_tubes"], body["unboxed"]) == (rnd.code, 0, [])
    assert [(b["code"], b["state"], b["hours"]) for b in body["late_boxes"]] == [
        ("BOX-0201", "packed", 3.0)
    ]
    refused = client.get(
        f"/api/v1/rounds/{rnd.code}/transport-delays",
        params={"on_road_hours": "1000"},
        headers=headers("commander"),
    )
    assert refused.status_code == 422
    assert "on_road_hours" in refused.text


def test_transport_delays_on_the_command_line(cli_env, monkeypatch):
    from typer.testing import CliRunner

    from bastion.cli.main import app
    from bastion.core.db import transaction
    from bastion.regions import service as region_service
    from bastion.regions.models import Region
    from tests.support.world import NANGUAN_COMMUNITY, NANGUAN_GRID, NANGUAN_STREET

    monkeypatch.setenv("COLUMNS", "200")  # Rich reads it when it prints
    with transaction() as session:
        region_service.load_base_regions(db_session=session)
        for code, parent, level in (
            (NANGUAN_STREET, "220102", "street"),
            (NANGUAN_COMMUNITY, NANGUAN_STREET, "community"),
            (NANGUAN_GRID, NANGUAN_COMMUNITY, "grid"),
        ):
            session.add(
                Region(code=code, parent_code=parent, level=level, name_zh=code, name_en=code)
            )
        session.flush()
        rnd = factories.round_(session, code="R-CLI-T", starts_at=START)
        site = factories.site(session)
        tf.sampled(session, rnd, site, TUBES)
        tf.packed(session, rnd, site, "box-0301", TUBES[:2], at=NOW - timedelta(hours=3))
    runner = CliRunner()
    shown = runner.invoke(app, ["testing", "transport-delays", "R-CLI-T"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "BOX-0301" in text
    assert "waiting" in text
    assert "1 tubes in no box, 1 late boxes" in text
    refused = runner.invoke(
        app, ["testing", "transport-delays", "R-CLI-T", "--waiting-hours", "-1"]
    )
    assert refused.exit_code == 1
    assert "waiting_hours" in refused.output
