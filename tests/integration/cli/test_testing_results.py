"""``bastion testing import-results FILE`` and ``bastion testing lab-status``: results land from
a file with a report of every refused row; labs' figures as a table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.core import clock
from bastion.testing.models import Tube
from tests.integration.cli.conftest import flat
from tests.support import factories, world
from tests.support import testing_factories as tf
from tests.support.testing_factories import SAMPLED_AT, START

NOW = START + timedelta(hours=10)
TESTED = (SAMPLED_AT + timedelta(hours=4)).isoformat()
HEADER = "lab,tube,result,ct_orf1ab,ct_n,received_at,tested_at\n"
TUBES = ["TB50000001", "TB50000002", "TB50000003"]


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def in_lab(bastion, cli_db):
    """Three tubes received by LAB-1, committed in the CLI's database."""
    cli_db.add_all(world._tree("220102"))
    cli_db.flush()
    rnd = factories.round_(cli_db, starts_at=START)
    site = factories.site(cli_db)
    lab = factories.lab(cli_db, capacity=2)
    tf.in_lab(cli_db, rnd, site, lab, TUBES)
    cli_db.commit()
    return lab


def results_of(cli_db):
    cli_db.expire_all()
    return {
        r.barcode: r.result
        for r in cli_db.execute(select(Tube.barcode, Tube.result).order_by(Tube.barcode))
    }


def write(tmp_path, text, name="results.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes((HEADER + text).encode(encoding))
    return str(path)


def test_it_imports_a_results_file_and_says_what_it_did(bastion, cli_db, in_lab, tmp_path):
    path = write(
        tmp_path,
        f"LAB-1,{TUBES[0]},negative,,,,{TESTED}\nLAB-1,{TUBES[1]},positive,28,30,,{TESTED}\n",
    )
    result = bastion("testing", "import-results", path)
    assert result.exit_code == 0, result.output
    assert "2 rows: 2 recorded, 0 unchanged, 0 conflicts, 0 refused" in flat(result.stdout)
    assert results_of(cli_db) == {TUBES[0]: "negative", TUBES[1]: "positive", TUBES[2]: None}
    again = bastion("testing", "import-results", path)
    assert again.exit_code == 0
    assert "2 rows: 0 recorded, 2 unchanged" in flat(again.stdout)


def test_refused_rows_are_listed_with_their_row_and_the_exit_code_is_2(
    bastion, cli_db, in_lab, tmp_path
):
    path = write(
        tmp_path,
        f"LAB-1,{TUBES[0]},negative,,,,{TESTED}\n"
        f"LAB-1,{TUBES[1]},positive,,,,{TESTED}\n"
        f"LAB-9,{TUBES[2]},negative,,,,{TESTED}\n",
    )
    result = bastion("testing", "import-results", path)
    assert result.exit_code == 2, result.output
    assert "3 rows: 1 recorded, 0 unchanged, 0 conflicts, 2 refused" in flat(result.stdout)
    errors = flat(result.stderr)
    assert "row 3: ct_orf1ab: a positive result needs at least one Ct value." in errors
    assert "row 4: lab: no lab 'LAB-9'." in errors
    assert results_of(cli_db)[TUBES[0]] == "negative"


def test_a_file_missing_a_column_is_refused_whole_with_exit_1(bastion, cli_db, in_lab, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"lab,tube,tested_at\nLAB-1,TB50000001,2022-03-25T05:00:00Z\n")
    result = bastion("testing", "import-results", str(path))
    assert result.exit_code == 1
    assert "the file lacks the required column 'result'" in flat(result.stderr)
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 64)
    result = bastion("testing", "import-results", str(garbage))
    assert result.exit_code == 1
    assert "the file is not UTF-8 or GBK text" in flat(result.stderr)


def test_a_long_file_streams_through_with_progress(bastion, cli_db, in_lab, tmp_path):
    line = f"LAB-1,{TUBES[0]},negative,,,,{TESTED}\n"
    path = write(tmp_path, line * 25_000)
    result = bastion("testing", "import-results", path)
    assert result.exit_code == 0, result.output
    assert "25000 rows: 1 recorded, 24999 unchanged" in flat(result.stdout)


def test_lab_status_shows_each_lab_with_its_rating(bastion, cli_db, in_lab, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = bastion("testing", "lab-status", "--date", "2022-03-25")
    assert result.exit_code == 0, result.output
    text = flat(result.stdout)
    assert "Labs on 2022-03-25" in text
    # Three tubes against a capacity of two: 150% load, rated red.
    assert "LAB-1" in text
    assert "150.0%" in text
    assert "red" in text
    bad = bastion("testing", "lab-status", "--date", "25/03/2022")
    assert bad.exit_code == 1
    assert "date: '25/03/2022' is not a date" in flat(bad.stderr)
