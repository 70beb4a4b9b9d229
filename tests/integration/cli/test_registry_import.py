"""``bastion registry import FILE``: land the good rows, report the bad ones, refuse bad files."""

from __future__ import annotations

from sqlalchemy import func, select

from bastion.registry.models import Household, Person
from tests.integration.cli.conftest import flat
from tests.integration.registry.imports import CHINESE_COLUMNS, csv_bytes, row, xlsx_bytes
from tests.integration.registry.people import new_id_number

DISTRICT = "220102"  # a base region: the CLI's fresh database has no test grids


def person_row(**overrides):
    values = row(
        name="王芳",
        id_number=new_id_number(),
        phone="13812345678",
        region_code=DISTRICT,
        address="南关区",
        household="H-1",
    )
    values.update(overrides)
    return values


def persons_in(cli_db) -> int:
    cli_db.expire_all()
    return cli_db.execute(select(func.count()).select_from(Person)).scalar_one()


def test_it_imports_a_good_csv_and_says_what_it_did(bastion, cli_db, tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes([person_row(), person_row()], header=CHINESE_COLUMNS[:8]))
    result = bastion("registry", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "2 rows: 2 created, 0 unchanged, 0 refused" in flat(result.stdout)
    assert persons_in(cli_db) == 2
    assert cli_db.execute(select(func.count()).select_from(Household)).scalar_one() == 1


def test_it_imports_an_xlsx(bastion, cli_db, tmp_path):
    path = tmp_path / "花名册.xlsx"
    path.write_bytes(xlsx_bytes([person_row(phone=13912345678)]))
    result = bastion("registry", "import", str(path))
    assert result.exit_code == 0, result.output
    assert persons_in(cli_db) == 1


def test_a_second_run_of_the_same_file_changes_nothing(bastion, cli_db, tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(csv_bytes([person_row(), person_row(), person_row()]))
    assert bastion("registry", "import", str(path)).exit_code == 0
    again = bastion("registry", "import", str(path))
    assert again.exit_code == 0
    assert "3 rows: 0 created, 3 unchanged, 0 refused" in flat(again.stdout)
    assert persons_in(cli_db) == 3


def test_bad_rows_are_listed_with_their_row_and_field_and_the_exit_code_says_so(
    bastion, cli_db, tmp_path
):
    path = tmp_path / "mixed.csv"
    rows = [person_row(), person_row(id_number="110105194912310021"), person_row(phone="12")]
    path.write_bytes(csv_bytes(rows))
    result = bastion("registry", "import", str(path))
    assert result.exit_code == 2
    assert "3 rows: 1 created, 0 unchanged, 2 refused" in flat(result.stdout)
    errors = flat(result.stderr)
    assert "row 3: id_number: the ID number's check character is wrong" in errors
    assert "row 4: phone: not a valid phone number." in errors
    assert persons_in(cli_db) == 1


def test_an_unreadable_file_is_refused_with_exit_1_and_nothing_written(bastion, cli_db, tmp_path):
    for name, data in (
        ("scan.pdf", b"%PDF-1.4"),
        ("empty.csv", b""),
        ("header.csv", csv_bytes([])),
        ("broken.xlsx", b"PK\x03\x04not a zip"),
        ("nul.csv", b"name,id_number,region_code\r\n\x00\x00\r\n"),
    ):
        path = tmp_path / name
        path.write_bytes(data)
        result = bastion("registry", "import", str(path))
        assert result.exit_code == 1, (name, result.output)
        assert "file:" in flat(result.stderr), (name, result.stderr)
    assert persons_in(cli_db) == 0


def test_a_missing_file_is_refused_by_the_argument_check(bastion, tmp_path):
    result = bastion("registry", "import", str(tmp_path / "nowhere.csv"))
    assert result.exit_code == 2
    assert "does not exist" in flat(result.output)
