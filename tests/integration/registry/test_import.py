"""Importing persons from CSV and XLSX, through the service and the API upload."""

from __future__ import annotations

import json
import random
from datetime import date

import pytest
from sqlalchemy import select

from bastion.core import crypto
from bastion.core.config import get_settings
from bastion.core.errors import InvalidInput, TooLarge
from bastion.registry import importer
from bastion.registry.models import Household, ImportBatch, Person
from tests.integration.registry.imports import CHINESE_COLUMNS, COLUMNS, csv_bytes, row, xlsx_bytes
from tests.integration.registry.people import (
    audit_entries,
    count,
    footprint,
    new_id_number,
    register,
)
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID, NANGUAN_GRID_2

UPLOAD = "/api/v1/persons/import"


def person_row(**overrides):
    values = row(
        name="王芳",
        id_number=new_id_number(),
        phone="13812345678",
        region_code=NANGUAN_GRID,
        address="南关区测试街道1号",
        household="H-1",
        special_groups="",
    )
    values.update(overrides)
    return values


def run(db, principal, data: bytes, filename: str = "people.csv"):
    return importer.import_persons(
        db_session=db, principal=principal("grid_worker"), filename=filename, data=data
    )


def upload(client, headers, data: bytes, filename: str = "people.csv", role: str = "grid_worker"):
    return client.post(UPLOAD, files={"file": (filename, data)}, headers=headers(role))


def person_by_number(db, number: str) -> Person | None:
    return db.execute(
        select(Person).where(Person.id_hash == crypto.lookup_hash(number))
    ).scalar_one_or_none()


# Files that land -----------------------------------------------------------------------------


def test_a_good_csv_lands_every_row_and_is_recorded(db, principal):
    rows = [person_row(household="H-1"), person_row(household="H-1"), person_row(household="")]
    result = run(db, principal, csv_bytes(rows))
    assert (result.rows_total, result.created, result.unchanged, result.refused) == (3, 3, 0, 0)
    assert result.problems == []
    for values in rows:
        person = person_by_number(db, values["id_number"])
        assert person is not None
        assert person.name == "王芳"
        assert crypto.decrypt(person.id_cipher) == values["id_number"]
        assert person.id_masked == values["id_number"][0] + "*" * 16 + values["id_number"][-1]
    first, second, third = (person_by_number(db, v["id_number"]) for v in rows)
    assert first.household_id == second.household_id is not None
    assert third.household_id is None
    batch = db.get(ImportBatch, result.batch_id)
    assert (batch.rows_total, batch.rows_created, batch.actor) == (3, 3, "grid_worker_in")
    entries = audit_entries(db, "registry.import")
    assert json.loads(entries[-1].details)["created"] == 3


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_a_csv_with_chinese_headers_lands_in_any_usual_encoding(client, headers, db, encoding):
    rows = [
        person_row(name="欧阳娜娜", address="长春市南关区幸福街3号", special_groups="独居；低保"),
        person_row(
            name="张伟", id_number=new_id_number(sex="M"), sex="男", special_groups="退役军人"
        ),
    ]
    data = csv_bytes(rows, header=CHINESE_COLUMNS, encoding=encoding)
    response = upload(client, headers, data)
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 2
    assert response.json()["problems"] == []
    ouyang = person_by_number(db, rows[0]["id_number"])
    assert ouyang.name == "欧阳娜娜"
    assert ouyang.address == "长春市南关区幸福街3号"
    assert ouyang.special_groups == 1 | 8
    zhang = person_by_number(db, rows[1]["id_number"])
    assert (zhang.name, zhang.sex, zhang.special_groups) == ("张伟", "M", 16)


def test_an_xlsx_written_by_a_spreadsheet_lands_with_numbers_and_dates_understood(
    client, headers, db
):
    number = new_id_number(born=date(1971, 7, 1))
    rows = [
        person_row(
            id_number=number,
            phone=13812345678,  # a number cell, as Excel stores an unformatted phone
            birth_date=date(1971, 7, 1),  # a date cell
            household=301,
        ),
        person_row(region_code=int(NANGUAN_GRID_2)),
    ]
    response = upload(
        client, headers, xlsx_bytes(rows, header=CHINESE_COLUMNS), filename="花名册.xlsx"
    )
    assert response.status_code == 200, response.text
    assert (response.json()["created"], response.json()["refused"]) == (2, 0)
    person = person_by_number(db, number)
    assert (person.phone, person.birth_date) == ("13812345678", date(1971, 7, 1))
    household = db.get(Household, person.household_id)
    assert household.household_no == "301"
    assert person_by_number(db, rows[1]["id_number"]).region_code == NANGUAN_GRID_2


def test_awkward_characters_survive_the_bulk_path_exactly(db, principal):
    address = 'C:\\楼\\3单元 "东门" 100%, 2号；#5'
    values = person_row(name="欧阳·娜娜", address=address, household="H\\1")
    result = run(db, principal, csv_bytes([values]))
    assert result.created == 1, result.problems
    person = person_by_number(db, values["id_number"])
    assert (person.name, person.address) == ("欧阳·娜娜", address)
    assert db.get(Household, person.household_id).household_no == "H\\1"


def test_an_xlsx_named_as_csv_is_still_read_as_a_workbook(client, headers, db):
    response = upload(client, headers, xlsx_bytes([person_row()]), filename="export.csv")
    assert response.status_code == 200
    assert response.json()["created"] == 1


# Mixed files: good rows land, bad rows are reported --------------------------------------------


def test_a_mixed_file_lands_the_good_rows_and_reports_each_bad_one(client, headers, db):
    good_1, good_2 = person_row(), person_row()
    rows = [
        good_1,  # row 2
        person_row(id_number="110105194912310021"),  # row 3: wrong check character
        person_row(name=""),  # row 4: no name
        good_2,  # row 5
        person_row(phone="12345", region_code="229999"),  # row 6: two problems
        person_row(region_code=CHANGYI_GRID),  # row 7: outside Changchun
        person_row(sex="男"),  # row 8: a woman's number
    ]
    before = count(db, Person)
    response = upload(client, headers, csv_bytes(rows), filename="mixed.csv")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["rows_total"], report["created"], report["refused"]) == (7, 2, 5)
    found = {(p["row"], p["field"], p["code"]) for p in report["problems"]}
    assert found == {
        (3, "id_number", "id.bad_check_char"),
        (4, "name", "field.required"),
        (6, "phone", "person.bad_phone"),
        (6, "region_code", "error.region_unknown"),
        (7, "region_code", "error.region_outside"),
        (8, "sex", "person.sex_mismatch"),
    }
    assert all(p["reason"] for p in report["problems"])
    assert count(db, Person) == before + 2
    assert person_by_number(db, good_1["id_number"]) is not None
    assert person_by_number(db, good_2["id_number"]) is not None


def test_problems_are_explained_in_the_callers_language(client, headers, db):
    data = csv_bytes([person_row(name="")])
    zh = client.post(UPLOAD, files={"file": ("a.csv", data)}, headers=headers("grid_worker"))
    en = client.post(
        UPLOAD + "?lang=en", files={"file": ("a.csv", data)}, headers=headers("grid_worker")
    )
    assert zh.json()["problems"][0]["reason"] == "必填。"
    assert en.json()["problems"][0]["reason"] == "is required."


def test_a_number_twice_in_one_file_is_refused_on_the_later_row_naming_the_first(db, principal):
    number = new_id_number()
    rows = [person_row(), person_row(id_number=number), person_row(), person_row(id_number=number)]
    result = run(db, principal, csv_bytes(rows))
    assert result.created == 3
    [problem] = result.problems
    assert (problem.row, problem.field, problem.reason) == (
        5,
        "id_number",
        "person.duplicate_in_file",
    )
    assert problem.params == {"first": 3}
    assert "row 3" in problem.text("en")


def test_sending_the_same_file_again_changes_nothing(client, headers, db):
    data = csv_bytes([person_row(household="H-5"), person_row(household="H-5"), person_row()])
    first = upload(client, headers, data)
    assert first.json()["created"] == 3
    before = footprint(db)
    again = upload(client, headers, data)
    assert again.status_code == 200
    assert (again.json()["created"], again.json()["unchanged"], again.json()["refused"]) == (
        0,
        3,
        0,
    )
    after = footprint(db)
    assert after["persons"] == before["persons"]
    assert after["households"] == before["households"]
    assert after["batches"] == before["batches"] + 1  # the attempt itself is recorded


def test_a_row_whose_number_is_registered_with_other_details_is_a_conflict(db, principal):
    number = new_id_number()
    register(db, id_number=number, name="王芳", phone="13812345678")
    result = run(db, principal, csv_bytes([person_row(id_number=number, name="王芳芳")]))
    assert result.created == 0
    assert [(p.row, p.field, p.reason) for p in result.problems] == [
        (2, "id_number", "person.conflicting_details")
    ]
    assert person_by_number(db, number).name == "王芳"


def test_households_are_created_once_per_region_and_number(db, principal):
    existing = register(db, household="H-100")
    rows = [
        person_row(household="H-100"),  # joins the existing household
        person_row(household="H-200"),
        person_row(household="H-200"),
        person_row(household="H-200", region_code=NANGUAN_GRID_2),  # same number, other grid
    ]
    before = count(db, Household)
    result = run(db, principal, csv_bytes(rows))
    assert result.created == 4
    assert count(db, Household) == before + 2
    ids = [person_by_number(db, r["id_number"]).household_id for r in rows]
    assert ids[0] == existing.household_id
    assert ids[1] == ids[2] != ids[3]
    second = run(db, principal, csv_bytes([person_row(household="H-200")]))
    assert second.created == 1
    assert count(db, Household) == before + 2


def test_blank_lines_are_skipped_and_rows_keep_the_numbers_a_spreadsheet_shows(db, principal):
    good, bad = person_row(), person_row(name="")
    text = csv_bytes([good]).decode() + "\r\n" + csv_bytes([bad]).decode().split("\r\n", 1)[1]
    result = run(db, principal, text.encode())
    assert result.rows_total == 2
    assert [p.row for p in result.problems] == [4]


def test_a_multiline_cell_does_not_shift_the_row_numbers(db, principal):
    rows = [person_row(address="一号楼\n二单元"), person_row(name="")]
    result = run(db, principal, csv_bytes(rows))
    assert [(p.row, p.field) for p in result.problems] == [(2, "address"), (3, "name")]


def test_a_row_longer_than_the_header_is_refused_not_silently_cut(db, principal):
    good = person_row()
    cut = person_row(address="长春市")
    text = csv_bytes([good, cut]).decode().rstrip("\r\n") + ',"南关区"\r\n'
    result = run(db, principal, text.encode())
    assert result.created == 1
    assert [(p.row, p.reason) for p in result.problems] == [(3, "import.extra_cells")]
    assert person_by_number(db, cut["id_number"]) is None


def test_an_import_needs_the_import_permission(client, headers, db):
    before = footprint(db)
    response = upload(client, headers, csv_bytes([person_row()]), role="investigator")
    assert response.status_code == 403
    assert footprint(db) == before


# Files refused whole ---------------------------------------------------------------------------

_rng = random.Random(20220326)
GARBAGE = bytes(_rng.randrange(256) for _ in range(4096))
GOOD_ROW = person_row()


def _header_only() -> bytes:
    return csv_bytes([])


@pytest.mark.parametrize(
    ("name", "data", "code", "field"),
    [
        ("empty.csv", b"", "import.empty", "file"),
        ("bom-only.csv", b"\xef\xbb\xbf", "import.empty", "file"),
        ("header-only.csv", _header_only(), "import.empty", "file"),
        ("header-only.xlsx", xlsx_bytes([]), "import.empty", "file"),
        (
            "no-id.csv",
            csv_bytes([GOOD_ROW], columns=[c for c in COLUMNS if c != "id_number"]),
            "field.missing_column",
            "id_number",
        ),
        (
            "extra.csv",
            csv_bytes([GOOD_ROW], columns=[*COLUMNS, "blood_type"]),
            "field.unknown_column",
            "blood_type",
        ),
        (
            "twice.csv",
            csv_bytes([GOOD_ROW], header=[*COLUMNS[:-1], "name"]),
            "field.duplicate_column",
            "name",
        ),
        ("garbage.csv", GARBAGE, None, "file"),
        (
            "report.pdf",
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n",
            "import.unsupported_type",
            "file",
        ),
        (
            "old.xls",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + GARBAGE,
            "import.unsupported_type",
            "file",
        ),
        ("broken.xlsx", b"PK\x03\x04" + GARBAGE, "import.bad_file", "file"),
        ("truncated.xlsx", xlsx_bytes([GOOD_ROW])[:500], "import.bad_file", "file"),
        (
            "nul.csv",
            csv_bytes([GOOD_ROW]).replace(b"13812345678", b"138\x0012345678"),
            "import.bad_file",
            "file",
        ),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_whole_with_a_clear_4xx(
    client, headers, db, name, data, code, field
):
    before = footprint(db)
    response = upload(client, headers, data, filename=name)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["errors"], body
    if code is not None:
        assert (body["errors"][0]["code"], body["errors"][0]["field"]) == (code, field)
    assert body["errors"][0]["field"] == field
    assert footprint(db) == before


@pytest.fixture
def small_uploads(monkeypatch):
    """Lower the upload limit to 1 KiB for the test, restoring it after."""
    monkeypatch.setenv("BASTION_MAX_UPLOAD_BYTES", "1024")
    get_settings.cache_clear()
    assert get_settings().max_upload_bytes == 1024
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    assert get_settings().max_upload_bytes > 1024


def test_an_oversized_upload_is_refused_with_413_and_nothing_written(
    small_uploads, client, headers, db
):
    data = csv_bytes([person_row() for _ in range(30)])
    assert len(data) > 1024
    before = footprint(db)
    response = upload(client, headers, data)
    assert response.status_code == 413
    assert response.json()["code"] == "error.too_large"
    assert footprint(db) == before
    small = upload(client, headers, csv_bytes([person_row()]))
    assert small.status_code == 200


def test_the_service_refuses_an_oversized_file_itself(small_uploads, db, principal):
    with pytest.raises(TooLarge):
        run(db, principal, csv_bytes([person_row() for _ in range(30)]))


def test_the_service_refuses_an_unreadable_file_before_writing_anything(db, principal):
    before = footprint(db)
    with pytest.raises(InvalidInput) as caught:
        run(db, principal, b"%PDF-1.4", filename="scan.pdf")
    assert caught.value.problems[0].field == "file"
    assert footprint(db) == before
