"""Lab pages: result upload (CSV and XLSX) with the row-by-row report, conflicts listed for
the lab and resolved by command staff — the results flow, as the API calls it: a positive pool
uploaded here holds its members (yellow codes), a positive retest opens a case."""

from __future__ import annotations

import io
from datetime import timedelta

import openpyxl
import pytest
from sqlalchemy import select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.config import get_settings
from bastion.healthcode import views as code_views
from bastion.registry.models import Person
from bastion.testing.models import PoolHold, ResultConflict, RetestTask, Tube, TubeMember
from bastion.tracing.models import Case
from tests.integration.web.pages import NOW, START, login, main_of
from tests.support import pool_factories as pf
from tests.support import testing_factories as tf

TESTED = (START + timedelta(hours=4)).isoformat()
TUBES = ["TW30000001", "TW30000002"]


def _csv(rows: list[str]) -> bytes:
    return ("lab,tube,result,tested_at\n" + "\n".join(rows) + "\n").encode()


def _tube(db, barcode: str) -> Tube:
    db.expire_all()
    return db.execute(select(Tube).where(Tube.barcode == barcode)).scalar_one()


def _upload(client, token: str, name: str, data: bytes):
    return client.post(
        "/lab/results",
        data={"csrf": token},
        files={"file": (name, data, "application/octet-stream")},
    )


def test_a_csv_upload_records_good_rows_and_names_each_bad_one(client, db, scene):
    tf.in_lab(db, scene.round, scene.site, scene.lab, TUBES, box="BOXL-1")
    db.commit()
    token = login(client, "lab_in")
    data = _csv(
        [
            f"LAB-CC,TW30000001,negative,{TESTED}",
            f"LAB-CC,TW30000002,purple,{TESTED}",
            f"LAB-CC,NO-SUCH-TUBE,negative,{TESTED}",
        ]
    )
    response = _upload(client, token, "run.csv", data)
    assert response.status_code == 200, response.text
    report = main_of(response.text).split('id="report"', 1)[1]
    assert "共 3 行：登记 1 行" in report
    assert ">3</td>" in report  # rows 3 and 4 of the file are named
    assert ">4</td>" in report
    assert _tube(db, "TW30000001").result == "negative"
    assert _tube(db, "TW30000002").result is None


def test_an_xlsx_upload_is_read_like_the_csv(client, db, scene):
    tf.in_lab(db, scene.round, scene.site, scene.lab, TUBES, box="BOXL-2")
    db.commit()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["lab", "tube", "result", "ct_orf1ab", "tested_at"])
    sheet.append(["LAB-CC", "TW30000001", "negative", None, TESTED])
    sheet.append(["LAB-CC", "TW30000002", "positive", 28.5, TESTED])  # a number cell
    buffer = io.BytesIO()
    book.save(buffer)
    token = login(client, "lab_in")
    response = _upload(client, token, "run.xlsx", buffer.getvalue())
    assert response.status_code == 200, response.text
    assert "共 2 行：登记 2 行" in response.text
    assert _tube(db, "TW30000002").result == "positive"
    assert _tube(db, "TW30000002").ct_orf1ab == 28.5


def test_a_file_without_the_required_columns_is_refused_whole(client, db, scene):
    token = login(client, "lab_in")
    response = _upload(client, token, "run.csv", b"tube,result\nTW1,negative\n")
    assert response.status_code == 422
    assert "lab" in main_of(response.text)


def test_an_upload_without_csrf_is_refused(client, db, scene):
    tf.in_lab(db, scene.round, scene.site, scene.lab, TUBES, box="BOXL-3")
    db.commit()
    login(client, "lab_in")
    response = _upload(client, "forged", "run.csv", _csv([f"LAB-CC,TW30000001,negative,{TESTED}"]))
    assert response.status_code == 401
    assert _tube(db, "TW30000001").result is None


def test_a_lab_outside_cannot_report_for_changchuns_lab(client, db, scene):
    tf.in_lab(db, scene.round, scene.site, scene.lab, TUBES, box="BOXL-4")
    db.commit()
    token = login(client, "lab_out")
    response = _upload(client, token, "run.csv", _csv([f"LAB-CC,TW30000001,negative,{TESTED}"]))
    assert "登记 0 行" in response.text
    assert "LAB-CC" not in main_of(response.text).split('id="report"', 1)[0]
    assert _tube(db, "TW30000001").result is None


def test_a_conflict_is_listed_for_the_lab_and_resolved_by_the_commander(client, db, scene):
    tf.in_lab(db, scene.round, scene.site, scene.lab, TUBES, box="BOXL-5")
    tf.upload(db, [tf.row(scene.lab, "TW30000001", "negative")])
    tf.upload(db, [tf.row(scene.lab, "TW30000001", "positive", ct_orf1ab=30.5)])
    db.commit()
    login(client, "lab_in")
    assert "TW30000001" in main_of(client.get("/lab").text)
    assert client.get("/conflicts").status_code == 403  # the lab does not judge its own

    token = login(client, "commander_in")
    page = client.get("/conflicts")
    assert "TW30000001" in main_of(page.text)
    conflict = db.execute(select(ResultConflict)).scalar_one()
    missing_note = client.post(
        f"/conflicts/{conflict.id}/resolve", data={"csrf": token, "pick": "second", "note": ""}
    )
    assert missing_note.status_code == 422
    done = client.post(
        f"/conflicts/{conflict.id}/resolve",
        data={"csrf": token, "pick": "second", "note": "重新检测确认"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert _tube(db, "TW30000001").result == "positive"

    token = login(client, "commander_out")
    refused = client.post(
        f"/conflicts/{conflict.id}/resolve", data={"csrf": token, "pick": "first", "note": "x"}
    )
    assert refused.status_code == 404


# The results flow -----------------------------------------------------------------------------

CT_HEADER = "lab,tube,result,ct_orf1ab,ct_n,tested_at\n"


def _ct_csv(rows: list[str]) -> bytes:
    return (CT_HEADER + "\n".join(rows) + "\n").encode()


def _members(db, barcode: str) -> list[int]:
    return list(
        db.execute(
            select(TubeMember.person_id)
            .join(Tube, Tube.id == TubeMember.tube_id)
            .where(Tube.barcode == barcode)
            .order_by(TubeMember.person_id)
        ).scalars()
    )


def _code(db, person_id: int) -> tuple[str, str]:
    """(colour, rule key) as the health-code service shows it to staff."""
    db.expire_all()
    view = code_views.get_status(
        db_session=db, principal=system_principal(), person_id=person_id, lang="en"
    )
    return view.colour, view.rule.split(":", 1)[-1].split("#", 1)[0]


def _positive_pool(client, db, scene, barcode: str, box: str) -> list[int]:
    """A pool of three in the lab, uploaded positive through the page at NOW: its members."""
    tf.in_lab(db, scene.round, scene.site, scene.lab, [barcode], box=box, people_per_tube=3)
    db.commit()
    members = _members(db, barcode)
    assert [_code(db, p)[0] for p in members] == ["green"] * 3
    token = login(client, "lab_in")
    response = _upload(
        client, token, "run.csv", _ct_csv([f"LAB-CC,{barcode},positive,28.5,30.1,{TESTED}"])
    )
    assert response.status_code == 200, response.text
    assert "共 1 行：登记 1 行" in response.text
    return members


def test_a_positive_pool_uploaded_on_the_page_turns_its_members_yellow(client, db, scene):
    members = _positive_pool(client, db, scene, "TW30000011", "BOXL-6")
    db.expire_all()
    hold = db.execute(select(PoolHold)).scalar_one()
    assert hold.members == 3
    # The flow's last step: each member's code is recomputed at once, held by the pool.
    assert {_code(db, p) for p in members} == {("yellow", "pool_hold")}
    # Nobody outside the pool is touched.
    assert _code(db, scene.people[0].id) == ("green", "default")
    # No case for a pool: a pool is not a diagnosis.
    assert db.execute(select(Case)).first() is None


def test_a_positive_retest_uploaded_on_the_page_opens_a_case(client, db, scene):
    members = _positive_pool(client, db, scene, "TW30000021", "BOXL-7")
    db.expire_all()
    tasks = db.execute(select(RetestTask.person_id, RetestTask.state)).all()
    assert sorted(tasks) == [(p, "pending") for p in members]
    person = db.get(Person, members[0])
    assert person is not None
    # The member's own single-tube retest, sampled an hour later, boxed and received.
    pf.retest(db, scene.round, scene.site, "TW30000022", person, at=NOW + timedelta(hours=1))
    with clock.frozen(NOW + timedelta(hours=2)):
        tf.packed(
            db, scene.round, scene.site, "BOXL-8", ["TW30000022"], at=NOW + timedelta(hours=1.5)
        )
        tf.received(db, "BOXL-8", scene.lab, counted=1, at=NOW + timedelta(hours=2))
    db.commit()
    assert db.execute(select(Case)).first() is None

    token = login(client, "lab_in")
    tested = (NOW + timedelta(hours=3)).isoformat()
    with clock.frozen(NOW + timedelta(hours=4)):
        response = _upload(
            client, token, "retest.csv", _ct_csv([f"LAB-CC,TW30000022,positive,26.0,27.5,{tested}"])
        )
    assert response.status_code == 200, response.text
    assert "共 1 行：登记 1 行" in response.text
    db.expire_all()
    (case,) = db.execute(select(Case)).scalars()
    assert (case.person_id, case.status, case.found_by) == (
        members[0],
        "open",
        "community_screening",
    )
    # The escalated member is red for the case; the pool's other members stay held.
    assert _code(db, members[0]) == ("red", "case")
    assert {_code(db, p) for p in members[1:]} == {("yellow", "pool_hold")}


@pytest.fixture
def small_uploads(monkeypatch):
    """Lower the upload limit to 1 KiB for the test, restoring it after."""
    monkeypatch.setenv("BASTION_MAX_UPLOAD_BYTES", "1024")
    get_settings.cache_clear()
    assert get_settings().max_upload_bytes == 1024
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_an_oversized_file_is_refused_on_the_page_and_nothing_lands(
    small_uploads, client, db, scene
):
    tf.in_lab(db, scene.round, scene.site, scene.lab, TUBES, box="BOXL-9")
    db.commit()
    token = login(client, "lab_in")
    rows = [f"LAB-CC,TW30000001,negative,{TESTED}"] * 40
    data = _csv(rows)
    assert len(data) > 1024
    response = _upload(client, token, "run.csv", data)
    assert response.status_code == 413
    assert _tube(db, "TW30000001").result is None
