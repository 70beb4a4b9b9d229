"""Lab pages: result upload (CSV and XLSX) with the row-by-row report, conflicts listed for
the lab and resolved by command staff — the results service, as the API calls it."""

from __future__ import annotations

import io
from datetime import timedelta

import openpyxl
from sqlalchemy import select

from bastion.testing.models import ResultConflict, Tube
from tests.integration.web.pages import START, login, main_of
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
