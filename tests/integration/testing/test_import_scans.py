"""``bastion testing import-scans FILE``: the file door of the one bulk path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.core import clock, crypto
from bastion.core.db import transaction
from bastion.regions import service as region_service
from bastion.testing.models import TubeMember
from tests.support import factories
from tests.support.world import _tree

START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
runner = CliRunner()


@pytest.fixture
def committed(cli_env):
    with clock.frozen(START + timedelta(hours=6)), transaction() as session:
        region_service.load_base_regions(db_session=session)
        session.add_all(_tree("220102"))
        session.flush()
        rnd = factories.round_(session, starts_at=START)
        site = factories.site(session)
        people = [
            (p.token, crypto.decrypt(p.id_cipher))
            for p in (factories.person(session) for _ in range(4))
        ]
        return rnd.code, site.code, people


def write(tmp_path, lines, name="scans.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def invoke(path):
    """Run the command; its output with line wrapping undone (Rich wraps at the terminal width)."""
    with clock.frozen(START + timedelta(hours=6)):
        result = runner.invoke(app, ["testing", "import-scans", str(path)])
    result.flat = " ".join(result.output.split())
    return result


def members():
    with transaction() as session:
        return session.execute(select(func.count()).select_from(TubeMember)).scalar_one()


def test_a_file_of_scans_lands_and_a_second_import_changes_nothing(committed, tmp_path):
    rnd, site, people = committed
    at = "2022-03-25T09:00:00+08:00"
    lines = (
        ["round,site,tube,person,scanned_at"]
        + [f"{rnd},{site},TF00000001,{token},{at}" for token, _ in people[:2]]
        + [f"{rnd},{site},TF00000001,{number},{at}" for _, number in people[2:]]
    )
    path = write(tmp_path, lines)
    first = invoke(path)
    assert first.exit_code == 0, first.output
    assert "4 scans recorded" in first.flat
    again = invoke(path)
    assert again.exit_code == 0
    assert "imported before" in again.flat
    assert members() == 4


def test_bad_rows_are_reported_with_their_line_and_the_good_ones_land(committed, tmp_path):
    rnd, site, people = committed
    lines = [
        "round,site,tube,person,scanned_at,capacity",
        f"{rnd},{site},TF00000002,{people[0][0]},2022-03-25T09:00:00+08:00,",
        f"{rnd},{site},TF00000002,220102198005170010,2022-03-25T09:00:00+08:00,",
        f"{rnd},{site},TF00000002,{people[1][0]},not-a-time,",
        f"{rnd},{site},TF00000003,{people[2][0]},2022-03-25T09:00:00+08:00,ten",
    ]
    result = invoke(write(tmp_path, lines))
    assert result.exit_code == 2
    assert "1 scans recorded" in result.flat
    assert "row 3: person" in result.flat
    assert "row 4: scanned_at" in result.flat
    assert "row 5: capacity" in result.flat
    assert members() == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "no data rows"),
        (b"round,site,tube\n", "scanned_at"),
        (b"round,site,tube,person,scanned_at,colour\n", "colour"),
        (b"\xff\xfe\x00\x00garbage\x00\x00", "not UTF-8 or GBK"),
        (b"round,site,tube,person,scanned_at\n\x00\x00\x00", "NUL byte"),
    ],
)
def test_an_unreadable_file_is_refused_whole_with_the_reason(committed, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    result = invoke(path)
    assert result.exit_code == 1
    assert message in result.flat
    assert "Traceback" not in result.flat
    assert members() == 0


def test_a_gbk_file_from_a_spreadsheet_is_read(committed, tmp_path):
    rnd, site, people = committed
    lines = [
        "round,site,tube,person,scanned_at",
        f"{rnd},{site},TF00000004,{people[0][0]},2022-03-25 09:00:00",
    ]
    result = invoke(write(tmp_path, lines, encoding="gbk"))
    assert result.exit_code == 0, result.output
    assert members() == 1
