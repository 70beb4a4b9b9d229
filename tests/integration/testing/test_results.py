"""Lab results through the one bulk path: what lands, what is unchanged, what becomes a
conflict, what is refused and why; through the service, the JSON API and file uploads."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bastion.audit.models import AuditEntry
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from bastion.testing import results, transport
from bastion.testing.models import ResultConflict, Tube
from tests.support import factories
from tests.support import testing_factories as tf
from tests.support.testing_factories import SAMPLED_AT, START

NOW = START + timedelta(hours=10)
RECEIVED = SAMPLED_AT + timedelta(hours=2)
TESTED = RECEIVED + timedelta(hours=2)
TUBES = ["TB30000001", "TB30000002", "TB30000003", "TB30000004"]


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def world(db):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    lab = factories.lab(db)
    tubes = tf.in_lab(db, rnd, site, lab, TUBES, received_at=RECEIVED)
    return rnd, site, lab, tubes


def tube(db, barcode):
    return db.execute(select(Tube).where(Tube.barcode == barcode)).scalar_one()


def conflicts(db):
    return db.execute(select(func.count()).select_from(ResultConflict)).scalar_one()


def refusals(report):
    return [(p.row, p.field, p.reason) for p in report.problems]


# Landing -----------------------------------------------------------------------------------


def test_pack_pick_up_receive_and_results_land_on_each_tube(db, principal):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    lab = factories.lab(db)
    tf.sampled(db, rnd, site, TUBES[:2])
    tf.packed(db, rnd, site, "BOX-1000", TUBES[:2], principal=principal("sampler"), at=SAMPLED_AT)
    transport.pick_up_box(
        db_session=db,
        principal=principal("courier"),
        code="BOX-1000",
        tubes_counted=2,
        at=NOW - timedelta(hours=3),
    )
    transport.receive_box(
        db_session=db,
        principal=principal("lab"),
        code="BOX-1000",
        lab_code=lab.code,
        tubes=TUBES[:2],
        at=NOW - timedelta(hours=2),
    )
    report = tf.upload(
        db,
        [
            tf.row(lab, TUBES[0], "negative", n=1, tested_at=NOW - timedelta(minutes=30)),
            tf.row(lab, TUBES[1], "positive", n=2, ct_orf1ab="28.4", ct_n=30.1, tested_at=NOW),
        ],
        principal=principal("lab"),
    )
    assert (report.accepted, report.unchanged, report.conflicts, report.refused) == (2, 0, 0, 0)
    negative, positive = tube(db, TUBES[0]), tube(db, TUBES[1])
    assert (negative.state, negative.result, negative.uploaded_at) == ("resulted", "negative", NOW)
    assert negative.tested_at == NOW - timedelta(minutes=30)
    assert (positive.result, positive.ct_orf1ab, positive.ct_n) == ("positive", 28.4, 30.1)
    assert positive.lab_id == lab.id


def test_chinese_result_words_and_empty_ct_markers_are_understood(db, world):
    _, _, lab, _ = world
    report = tf.upload(
        db,
        [
            tf.row(lab, TUBES[0], "阴性", ct_orf1ab="未检出", ct_n="-"),
            tf.row(lab, TUBES[1], "阳性", n=2, ct_n="31.5", ct_orf1ab="N/A"),
            tf.row(lab, TUBES[2], "INVALID", n=3),
        ],
    )
    assert report.accepted == 3
    assert [tube(db, b).result for b in TUBES[:3]] == ["negative", "positive", "invalid"]
    assert tube(db, TUBES[1]).ct_n == 31.5


def test_a_re_uploaded_result_changes_nothing(db, world):
    _, _, lab, _ = world
    rows = [
        tf.row(lab, TUBES[0], "negative"),
        tf.row(lab, TUBES[1], "positive", n=2, ct_orf1ab=28.4),
    ]
    tf.upload(db, rows)
    first = tube(db, TUBES[1]).uploaded_at
    with clock.frozen(NOW + timedelta(hours=1)):
        again = tf.upload(db, [*rows, tf.row(lab, TUBES[1], "positive", n=3, ct_orf1ab="28.40")])
    assert (again.accepted, again.unchanged, again.conflicts, again.refused) == (0, 3, 0, 0)
    assert tube(db, TUBES[1]).uploaded_at == first
    assert conflicts(db) == 0


def test_a_contradicting_result_becomes_a_conflict_and_never_overwrites(db, world):
    _, _, lab, _ = world
    tf.upload(db, [tf.row(lab, TUBES[0], "negative")])
    report = tf.upload(db, [tf.row(lab, TUBES[0], "positive", ct_n=33.0)])
    assert (report.accepted, report.conflicts) == (0, 1)
    assert tube(db, TUBES[0]).result == "negative"
    (conflict,) = db.execute(select(ResultConflict)).scalars()
    assert (conflict.first_result, conflict.second_result, conflict.second_ct_n) == (
        "negative",
        "positive",
        33.0,
    )
    assert conflict.lab_id == lab.id
    again = tf.upload(db, [tf.row(lab, TUBES[0], "positive", ct_n=33.0)])
    assert (again.conflicts, again.unchanged) == (0, 1)
    assert conflicts(db) == 1


def test_the_same_tube_twice_in_one_upload_lands_once_and_a_contradiction_is_kept(db, world):
    _, _, lab, _ = world
    report = tf.upload(
        db,
        [
            tf.row(lab, TUBES[0], "negative", n=1),
            tf.row(lab, TUBES[0], "negative", n=2),
            tf.row(lab, TUBES[0], "invalid", n=3),
            tf.row(lab, TUBES[1], "negative", n=4),
        ],
        chunk=2,
    )
    assert (report.accepted, report.unchanged, report.conflicts) == (2, 1, 1)
    assert tube(db, TUBES[0]).result == "negative"


# Conflicts ---------------------------------------------------------------------------------


def make_conflict(db, lab):
    tf.upload(db, [tf.row(lab, TUBES[0], "negative")])
    tf.upload(db, [tf.row(lab, TUBES[0], "positive", ct_orf1ab=27.0, ct_n=29.0)])
    return db.execute(select(ResultConflict)).scalar_one()


def test_resolving_a_conflict_applies_the_pick_and_is_audited(db, world, principal):
    _, _, lab, _ = world
    conflict = make_conflict(db, lab)
    (listed,) = results.list_conflicts(db_session=db, principal=principal("analyst"))
    assert (listed.tube, listed.current_result, listed.second_result) == (
        TUBES[0],
        "negative",
        "positive",
    )
    view = results.resolve_conflict(
        db_session=db,
        principal=principal("commander"),
        conflict_id=conflict.id,
        pick="second",
        note="re-run on a fresh aliquot confirmed positive",
    )
    assert view.resolution == "second"
    t = tube(db, TUBES[0])
    assert (t.result, t.ct_orf1ab, t.ct_n) == ("positive", 27.0, 29.0)
    (entry,) = db.execute(
        select(AuditEntry).where(AuditEntry.action == "result_conflict.resolve")
    ).scalars()
    assert entry.actor == "commander_in"
    details = json.loads(entry.details)
    assert details["pick"] == "second"
    assert details["held"]["result"] == "negative"
    assert details["second"]["result"] == "positive"
    assert details["note"] == "re-run on a fresh aliquot confirmed positive"
    assert results.list_conflicts(db_session=db, principal=principal("analyst")) == []
    with pytest.raises(Conflict):
        results.resolve_conflict(
            db_session=db,
            principal=principal("commander"),
            conflict_id=conflict.id,
            pick="first",
            note="changed my mind",
        )
    # The original value sent again is recognised, not a new conflict.
    again = tf.upload(db, [tf.row(lab, TUBES[0], "negative")])
    assert (again.unchanged, again.conflicts) == (1, 0)


def test_picking_the_first_result_keeps_the_tube_as_it_was(db, world, principal):
    _, _, lab, _ = world
    conflict = make_conflict(db, lab)
    results.resolve_conflict(
        db_session=db,
        principal=system_principal(),
        conflict_id=conflict.id,
        pick="first",
        note="second upload was a mislabelled plate",
    )
    assert tube(db, TUBES[0]).result == "negative"


@pytest.mark.parametrize(
    ("pick", "note", "field"),
    [("third", "reason", "pick"), ("first", "   ", "note"), ("first", "a\x00b", "note")],
)
def test_a_resolution_needs_a_known_pick_and_a_reason(db, world, pick, note, field):
    _, _, lab, _ = world
    conflict = make_conflict(db, lab)
    with pytest.raises(InvalidInput) as err:
        results.resolve_conflict(
            db_session=db,
            principal=system_principal(),
            conflict_id=conflict.id,
            pick=pick,
            note=note,
        )
    assert [p.field for p in err.value.problems] == [field]


def test_the_lab_cannot_settle_its_own_conflicts_and_outsiders_cannot_see_them(
    db, world, principal
):
    _, _, lab, _ = world
    conflict = make_conflict(db, lab)
    with pytest.raises(Forbidden):
        results.resolve_conflict(
            db_session=db,
            principal=principal("lab"),
            conflict_id=conflict.id,
            pick="first",
            note="x",
        )
    with pytest.raises(NotFound):
        results.resolve_conflict(
            db_session=db,
            principal=principal("commander", "out"),
            conflict_id=conflict.id,
            pick="first",
            note="x",
        )
    assert results.list_conflicts(db_session=db, principal=principal("analyst", "out")) == []


# Refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"tube": "TB39999999"}, "tube", "result.unknown_tube"),
        ({"tube": "bad tube!"}, "tube", "scan.bad_barcode"),
        ({"lab": "NO-SUCH-LAB"}, "lab", "result.unknown_lab"),
        ({"lab": "LAB-\x00"}, "lab", "result.unknown_lab"),
        ({"lab": "LAB-2"}, "lab", "result.wrong_lab"),
        ({"result": "maybe"}, "result", "result.bad_result"),
        ({"result": "positive"}, "ct_orf1ab", "result.positive_without_ct"),
        ({"ct_orf1ab": "abc"}, "ct_orf1ab", "result.bad_ct"),
        ({"ct_n": "nan"}, "ct_n", "result.bad_ct"),
        ({"ct_orf1ab": "46"}, "ct_orf1ab", "result.ct_out_of_range"),
        ({"ct_n": 0}, "ct_n", "result.ct_out_of_range"),
        ({"tested_at": "yesterday"}, "tested_at", "field.bad_datetime"),
        ({"tested_at": "2022-03-25T99:00:00"}, "tested_at", "field.bad_datetime"),
        ({"received_at": "soon"}, "received_at", "field.bad_datetime"),
        (
            {"tested_at": RECEIVED - timedelta(minutes=1)},
            "tested_at",
            "result.tested_before_receipt",
        ),
        ({"tested_at": NOW + timedelta(hours=1)}, "tested_at", "result.in_the_future"),
    ],
)
def test_each_bad_result_is_refused_with_its_field_and_the_good_rows_land(
    db, world, change, field, reason
):
    _, _, lab, _ = world
    factories.lab(db, code="LAB-2")
    good = [tf.row(lab, TUBES[0], n=1), tf.row(lab, TUBES[1], n=2)]
    bad = results.RawResult(**{**tf.row(lab, TUBES[2], n=3).__dict__, **change})
    report = tf.upload(db, [good[0], bad, good[1]])
    assert report.accepted == 2
    assert refusals(report) == [(3, field, reason)]
    assert tube(db, TUBES[2]).result is None


def test_a_result_within_the_clock_skew_of_now_is_accepted(db, world):
    _, _, lab, _ = world
    report = tf.upload(db, [tf.row(lab, TUBES[0], tested_at=NOW + timedelta(minutes=5))])
    assert report.accepted == 1


def test_a_result_for_a_tube_no_lab_received_is_refused(db, world):
    rnd, site, lab, _ = world
    tf.sampled(db, rnd, site, ["TB30000009"])
    tf.packed(db, rnd, site, "BOX-1001", ["TB30000009"])
    report = tf.upload(
        db, [tf.row(lab, "TB30000009", received_at=RECEIVED.isoformat(), tested_at=TESTED)]
    )
    assert refusals(report) == [(1, "received_at", "result.not_received")]


def test_a_tube_missing_from_its_receipt_scan_is_received_from_its_labs_result_row(db, world):
    rnd, site, lab, _ = world
    other = factories.lab(db, code="LAB-2")
    tf.sampled(db, rnd, site, ["TB30000011", "TB30000012"])
    tf.packed(db, rnd, site, "BOX-1002", ["TB30000011", "TB30000012"], at=SAMPLED_AT)
    tf.received(db, "BOX-1002", lab, tubes=["TB30000011"], at=RECEIVED)
    assert tube(db, "TB30000012").received_at is None
    refused = tf.upload(
        db,
        [
            tf.row(lab, "TB30000012", n=1, tested_at=TESTED),
            tf.row(other, "TB30000012", n=2, received_at=RECEIVED, tested_at=TESTED),
            tf.row(
                lab,
                "TB30000012",
                n=3,
                received_at=SAMPLED_AT - timedelta(hours=1),
                tested_at=TESTED,
            ),
        ],
    )
    assert refusals(refused) == [
        (1, "received_at", "result.not_received"),
        (2, "lab", "result.wrong_lab"),
        (3, "received_at", "result.received_before_sampling"),
    ]
    report = tf.upload(
        db,
        [
            tf.row(
                lab,
                "TB30000012",
                received_at=(RECEIVED + timedelta(minutes=20)).isoformat(),
                tested_at=TESTED,
            )
        ],
    )
    assert (report.accepted, report.received_from_file) == (1, 1)
    t = tube(db, "TB30000012")
    assert (t.lab_id, t.received_at, t.state) == (
        lab.id,
        RECEIVED + timedelta(minutes=20),
        "resulted",
    )


def test_results_dated_before_receipt_are_refused(db, world):
    _, _, lab, _ = world
    report = tf.upload(
        db, [tf.row(lab, TUBES[0], tested_at=(RECEIVED - timedelta(hours=1)).isoformat())]
    )
    assert refusals(report) == [(1, "tested_at", "result.tested_before_receipt")]


def test_only_lab_staff_of_the_labs_region_record_results(db, world, principal):
    _, _, lab, _ = world
    with pytest.raises(Forbidden):
        tf.upload(db, [tf.row(lab, TUBES[0])], principal=principal("courier"))
    report = tf.upload(db, [tf.row(lab, TUBES[0])], principal=principal("lab", "out"))
    assert refusals(report) == [(1, "lab", "error.region_outside")]


def test_capacity_is_never_a_reason_to_refuse(db):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    tiny = factories.lab(db, code="LAB-TINY", capacity=1)
    tf.in_lab(db, rnd, site, tiny, TUBES, received_at=RECEIVED)
    report = tf.upload(db, [tf.row(tiny, b, n=i + 1) for i, b in enumerate(TUBES)])
    assert report.accepted == 4


def test_each_chunk_hands_its_new_results_to_the_pool_workflow(db, world):
    from bastion.testing.models import PoolHold

    _, _, lab, tubes = world
    tf.upload(db, [tf.row(lab, TUBES[0], "positive", ct_orf1ab=30.0)])
    assert db.execute(select(func.count()).select_from(PoolHold)).scalar_one() == 1
    report = tf.upload(
        db,
        [tf.row(lab, b, "positive", n=i + 1, ct_orf1ab=30.0) for i, b in enumerate(TUBES)],
        chunk=2,
    )
    # Chunk 1 holds TUBES[0] (already held: unchanged, not handed on again) and TUBES[1];
    # chunk 2 holds TUBES[2] and TUBES[3]. Each chunk's new results are held as it lands.
    assert (report.accepted, report.unchanged) == (3, 1)
    held = dict(db.execute(select(PoolHold.id, PoolHold.tube_id)).all())
    assert sorted(held.values()) == sorted(tubes[b].id for b in TUBES)  # one hold per tube
    per_chunk = [sorted(held[h] for h in s.hold_ids) for s in report.pool_summaries]
    assert per_chunk == [[tubes[TUBES[1]].id], sorted(tubes[b].id for b in TUBES[2:])]
    assert [(s.tubes, s.holds_created) for s in report.pool_summaries] == [(1, 1), (2, 2)]


def test_a_positive_pool_is_held_by_the_pool_workflow(db):
    from bastion.testing.models import PoolHold

    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    lab = factories.lab(db)
    tf.in_lab(db, rnd, site, lab, ["TB30000021"], people_per_tube=3, received_at=RECEIVED)
    tf.upload(db, [tf.row(lab, "TB30000021", "positive", ct_n=30.0)])
    hold = db.execute(select(PoolHold)).scalar_one()
    assert (hold.members, hold.lab_id) == (3, lab.id)


# Files -------------------------------------------------------------------------------------

HEADER = "lab,tube,result,ct_orf1ab,ct_n,received_at,tested_at\n"


def csv_of(*lines, header=HEADER, encoding="utf-8"):
    return io.BytesIO((header + "".join(line + "\n" for line in lines)).encode(encoding))


def import_file(db, binary, principal=None, chunk=results.CHUNK):
    return results.import_results_file(
        db_session=db, principal=principal or system_principal(), binary=binary, chunk=chunk
    )


def test_a_mixed_file_lands_its_good_rows_and_names_each_bad_one(db, world):
    t = TESTED.isoformat()
    report = import_file(
        db,
        csv_of(
            f"LAB-1,{TUBES[0]},negative,,,,{t}",
            f"LAB-1,{TUBES[1]},positive,27.5,29.1,,{t}",
            f"LAB-1,{TUBES[2]},positive,,,,{t}",
            f"LAB-1,{TUBES[3]},negative,,,,25/03/2022",
            "",
            f"LAB-1,TB39999999,negative,,,,{t}",
            f"LAB-1,{TUBES[2]},negative,fifty,,,{t}",
        ),
        chunk=2,
    )
    assert (report.rows, report.accepted, report.refused) == (6, 2, 4)
    assert refusals(report) == [
        (4, "ct_orf1ab", "result.positive_without_ct"),
        (5, "tested_at", "field.bad_datetime"),
        (7, "tube", "result.unknown_tube"),
        (8, "ct_orf1ab", "result.bad_ct"),
    ]
    assert tube(db, TUBES[1]).ct_orf1ab == 27.5


def test_a_re_imported_file_changes_nothing(db, world):
    t = TESTED.isoformat()
    lines = [f"LAB-1,{b},negative,,,,{t}" for b in TUBES]
    first = import_file(db, csv_of(*lines))
    assert first.accepted == 4
    before = db.execute(select(Tube.barcode, Tube.uploaded_at).order_by(Tube.barcode)).all()
    with clock.frozen(NOW + timedelta(hours=2)):
        again = import_file(db, csv_of(*lines))
    assert (again.accepted, again.unchanged, again.conflicts, again.refused) == (0, 4, 0, 0)
    assert db.execute(select(Tube.barcode, Tube.uploaded_at).order_by(Tube.barcode)).all() == before


def test_a_gbk_file_with_chinese_words_and_local_times_is_read(db, world):
    report = import_file(
        db,
        csv_of(f"LAB-1,{TUBES[0]},阴性,,,,2022-03-25 13:00:00", encoding="gbk"),
    )
    assert report.accepted == 1
    assert tube(db, TUBES[0]).tested_at == START + timedelta(hours=5)


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (b"", "file", "import.empty"),
        (b"\xff\xfe\x00l\x00a\x00b\x00", "file", "import.bad_encoding"),
        (b"lab,tube,result\x00\x00\x01\x02\n", "file", "import.bad_file"),
        (bytes(range(256)) * 4, "file", "import.bad_encoding"),
        (b"lab,tube,ct_n,tested_at\n", "result", "field.missing_column"),
        (b"lab,tube,result,tested_at,colour\n", "colour", "field.unknown_column"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole_with_a_clear_reason(
    db, world, data, field, reason
):
    with pytest.raises(InvalidInput) as err:
        import_file(db, io.BytesIO(data))
    assert (err.value.problems[0].field, err.value.problems[0].reason) == (field, reason)


def test_a_file_that_turns_unreadable_part_way_keeps_what_came_before(db, world):
    t = TESTED.isoformat()
    good = HEADER + f"LAB-1,{TUBES[0]},negative,,,,{t}\n" * 3000
    data = good.encode() + b"LAB-1,\xff\xfe\xfd,negative,,,," + t.encode() + b"\n"
    report = import_file(db, io.BytesIO(data), chunk=1000)
    assert report.stopped
    assert report.accepted == 1
    assert report.problems[-1].reason == "import.bad_file"


# Through the API ---------------------------------------------------------------------------


def test_the_api_records_a_list_and_names_bad_rows_by_their_place(client, headers, db, world):
    response = client.post(
        "/api/v1/results",
        json={
            "results": [
                {
                    "lab": "LAB-1",
                    "tube": TUBES[0],
                    "result": "negative",
                    "tested_at": TESTED.isoformat(),
                },
                {
                    "lab": "LAB-1",
                    "tube": TUBES[1],
                    "result": "positive",
                    "ct_orf1ab": 50,
                    "tested_at": TESTED.isoformat(),
                },
                {"lab": "LAB-1", "tube": TUBES[2], "result": "neg", "tested_at": "x"},
            ]
        },
        headers=headers("lab"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["refused"]) == (1, 2)
    assert [(p["field"], p["code"]) for p in body["problems"]] == [
        ("results.1.ct_orf1ab", "result.ct_out_of_range"),
        ("results.2.result", "result.bad_result"),
    ]
    got = client.get(f"/api/v1/tubes/{TUBES[0]}/result", headers=headers("analyst"))
    assert got.status_code == 200
    assert (got.json()["result"], got.json()["lab_code"], got.json()["state"]) == (
        "negative",
        "LAB-1",
        "resulted",
    )
    hidden = client.get(f"/api/v1/tubes/{TUBES[0]}/result", headers=headers("analyst", "out"))
    assert hidden.status_code == 404


def test_the_api_takes_a_csv_upload(client, headers, db, world):
    t = TESTED.isoformat()
    data = (HEADER + f"LAB-1,{TUBES[0]},negative,,,,{t}\nLAB-1,nope,negative,,,,{t}\n").encode()
    response = client.post(
        "/api/v1/results/file",
        files={"file": ("results.csv", data, "text/csv")},
        headers=headers("lab"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["refused"]) == (1, 1)
    assert body["problems"][0]["row"] == 3
    assert body["problems"][0]["field"] == "tube"


@pytest.fixture
def small_uploads(monkeypatch):
    """Lower the upload limit to 1 KiB for the test, restoring it after."""
    from bastion.core.config import get_settings

    monkeypatch.setenv("BASTION_MAX_UPLOAD_BYTES", "1024")
    get_settings.cache_clear()
    assert get_settings().max_upload_bytes == 1024
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    assert get_settings().max_upload_bytes > 1024


def test_an_oversized_results_file_is_refused_with_413_and_nothing_lands(
    small_uploads, client, headers, db, world
):
    t = TESTED.isoformat()
    line = f"LAB-1,{TUBES[0]},negative,,,,{t}\n"
    padding = "".join(f"LAB-1,{TUBES[1]},negative,,,,{t}\n" for _ in range(20))
    big = (HEADER + line + padding).encode()
    assert len(big) > 1024
    response = client.post(
        "/api/v1/results/file",
        files={"file": ("results.csv", big, "text/csv")},
        headers=headers("lab"),
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "error.too_large"
    db.expire_all()
    assert tube(db, TUBES[0]).result is None
    assert tube(db, TUBES[1]).result is None
    # The same first row alone is within the limit and lands.
    small = client.post(
        "/api/v1/results/file",
        files={"file": ("results.csv", (HEADER + line).encode(), "text/csv")},
        headers=headers("lab"),
    )
    assert small.status_code == 200, small.text
    assert small.json()["accepted"] == 1
    db.expire_all()
    assert tube(db, TUBES[0]).result == "negative"


def test_the_api_lists_and_resolves_conflicts(client, headers, db, world):
    _, _, lab, _ = world
    conflict = make_conflict(db, lab)
    listed = client.get("/api/v1/results/conflicts", headers=headers("analyst"))
    assert [c["id"] for c in listed.json()] == [conflict.id]
    refused = client.post(
        f"/api/v1/results/conflicts/{conflict.id}/resolve",
        json={"pick": "second", "note": "ok"},
        headers=headers("lab"),
    )
    assert refused.status_code == 403
    done = client.post(
        f"/api/v1/results/conflicts/{conflict.id}/resolve",
        json={"pick": "second", "note": "confirmed on re-run"},
        headers=headers("commander"),
    )
    assert done.status_code == 200, done.text
    assert done.json()["current_result"] == "positive"
    twice = client.post(
        f"/api/v1/results/conflicts/{conflict.id}/resolve",
        json={"pick": "first", "note": "again"},
        headers=headers("commander"),
    )
    assert twice.status_code == 409
    assert twice.json()["errors"][0]["field"] == "id"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/api/v1/results", {"json": {"results": "nope"}}, 422),
        ("post", "/api/v1/results", {"content": b"\xff\x00garbage"}, 422),
        ("post", "/api/v1/results", {"json": {"results": [{"lab": "LAB-1"}] * 10_001}}, 422),
        (
            "post",
            "/api/v1/results",
            {
                "json": {
                    "results": [
                        {
                            "lab": "\x00",
                            "tube": "\x00",
                            "result": "\x00",
                            "tested_at": "\x00",
                            "ct_n": "\x00",
                            "received_at": "\x00",
                        }
                    ]
                }
            },
            200,
        ),
        (
            "post",
            "/api/v1/results/file",
            {"files": {"file": ("x.csv", b"\x00\x01\x02", "text/csv")}},
            422,
        ),
        (
            "post",
            "/api/v1/results/file",
            {"files": {"file": ("x.csv", b"tube\n", "text/csv")}},
            422,
        ),
        ("post", "/api/v1/results/file", {"data": {"nofile": "1"}}, 422),
        ("get", "/api/v1/tubes/%00/result", {}, 404),
        ("get", "/api/v1/tubes/TB39999999/result", {}, 404),
        (
            "post",
            "/api/v1/results/conflicts/99999999999999999999/resolve",
            {"json": {"pick": "first", "note": "x"}},
            422,
        ),
        (
            "post",
            "/api/v1/results/conflicts/999999/resolve",
            {"json": {"pick": "first", "note": "x"}},
            404,
        ),
    ],
)
def test_bad_result_requests_get_problem_responses_never_a_500(
    client, headers, world, method, path, kwargs, status
):
    response = getattr(client, method)(path, headers=headers("admin"), **kwargs)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
