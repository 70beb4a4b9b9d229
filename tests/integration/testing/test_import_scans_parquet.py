"""``bastion testing import-scans FILE.parquet``: the same door for Parquet files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.testing.test_import_scans import committed, invoke, members

__all__ = ["committed"]

AT = datetime(2022, 3, 25, 1, 0, tzinfo=UTC)


def write(tmp_path, columns, name="scans.parquet", row_group_size=None):
    path = tmp_path / name
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def test_a_parquet_file_lands_row_group_by_row_group_and_a_second_import_changes_nothing(
    committed, tmp_path
):
    rnd, site, people = committed
    persons = [token for token, _ in people[:2]] + [number for _, number in people[2:]]
    path = write(
        tmp_path,
        {
            "round": [rnd] * 4,
            "site": [site] * 4,
            "tube": ["TP00000001"] * 4,
            "person": persons,
            "scanned_at": pa.array([AT + timedelta(seconds=i) for i in range(4)]),
        },
        row_group_size=1,
    )
    assert pq.ParquetFile(path).num_row_groups == 4
    first = invoke(path)
    assert first.exit_code == 0, first.output
    assert "4 scans recorded" in first.flat
    again = invoke(path)
    assert again.exit_code == 0
    assert "imported before" in again.flat
    assert members() == 4


def test_bad_rows_are_reported_with_their_row_and_the_good_ones_land(committed, tmp_path):
    rnd, site, people = committed
    path = write(
        tmp_path,
        {
            "round": [rnd] * 4,
            "site": [site] * 4,
            "tube": ["TP00000002", "TP00000002", "bad code!", "TP00000003"],
            "person": [token for token, _ in people],
            "scanned_at": ["2022-03-25T09:00:00+08:00", "not-a-time", None, None],
            "capacity": pa.array([None, None, None, 99], pa.int16()),
        },
    )
    result = invoke(path)
    assert result.exit_code == 2, result.output
    assert "1 scans recorded" in result.flat
    assert "row 2: scanned_at" in result.flat
    assert "row 3: tube" in result.flat
    assert "row 4: capacity" in result.flat
    assert members() == 1


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {
                "round": ["R"],
                "site": ["S"],
                "tube": ["TP00000004"],
                "person": ["x"],
                "scanned_at": pa.array([1648170000], pa.int64()),
            },
            "column 'scanned_at' holds int64",
        ),
        (
            {
                "round": ["R"],
                "site": ["S"],
                "tube": ["TP00000004"],
                "person": ["x"],
                "scanned_at": ["2022-03-25T09:00:00+08:00"],
                "capacity": ["ten"],
            },
            "column 'capacity' holds string",
        ),
        ({"round": ["R"], "site": ["S"], "tube": ["T"]}, "scanned_at"),
        (
            {
                "round": ["R"],
                "site": ["S"],
                "tube": ["T"],
                "person": ["x"],
                "scanned_at": ["2022-03-25T09:00:00+08:00"],
                "colour": ["red"],
            },
            "colour",
        ),
    ],
)
def test_a_parquet_file_with_wrong_columns_is_refused_whole(committed, tmp_path, columns, message):
    result = invoke(write(tmp_path, columns))
    assert result.exit_code == 1, result.output
    assert message in result.flat
    assert "Traceback" not in result.flat
    assert members() == 0


@pytest.mark.parametrize(
    "content",
    [b"PAR1" + b"\x00garbage" * 20, b"PAR1", b"PAR1\x15\x04PAR1"],
)
def test_a_malformed_parquet_file_is_refused_with_the_reason(committed, tmp_path, content):
    path = tmp_path / "broken.parquet"
    path.write_bytes(content)
    result = invoke(path)
    assert result.exit_code == 1, result.output
    assert "cannot be read" in result.flat
    assert "Traceback" not in result.flat
    assert members() == 0


def test_a_truncated_parquet_file_is_refused(committed, tmp_path):
    rnd, site, people = committed
    good = write(
        tmp_path,
        {
            "round": [rnd],
            "site": [site],
            "tube": ["TP00000005"],
            "person": [people[0][0]],
            "scanned_at": pa.array([AT]),
        },
    )
    path = tmp_path / "cut.parquet"
    path.write_bytes(good.read_bytes()[:-30])
    result = invoke(path)
    assert result.exit_code == 1, result.output
    assert "cannot be read" in result.flat
    assert members() == 0
