"""``bastion bulletin`` as the issue writes it: print, publish, correct, revisions, charts."""

from __future__ import annotations

from datetime import datetime

import pytest
from openpyxl import load_workbook

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.tracing import service as tracing_service
from bastion.tracing.schemas import CaseCreate
from tests.integration.bulletin.scenario import SHANGHAI
from tests.integration.cli.conftest import bastion, cli_db, flat  # noqa: F401 - fixtures
from tests.support import factories


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(datetime(2022, 3, 26, 9, 0, tzinfo=SHANGHAI)):
        yield


def _cases(session, count, region="220102"):
    for _ in range(count):
        person = factories.person(session, region_code=region)
        tracing_service.create_case(
            db_session=session,
            principal=system_principal(),
            data=CaseCreate(person_id=person.id, classification="confirmed", clinical_type="mild"),
        )
    session.commit()


def test_print_publish_correct_and_list_revisions(bastion, cli_db, tmp_path):  # noqa: F811
    with clock.frozen(datetime(2022, 3, 25, 15, 0, tzinfo=SHANGHAI)):
        _cases(cli_db, 2)
    zh = bastion("bulletin", "--date", "2022-03-25", "--lang", "zh", "--format", "md")
    assert zh.exit_code == 0, zh.output
    assert "3月25日0—24时，全省新增本土确诊病例2例（轻型2例），其中长春市2例。" in zh.output
    en = bastion("bulletin", "--date", "2022-03-25", "--lang", "en", "--format", "html")
    assert "2 new local confirmed cases (2 mild): Changchun 2." in en.output
    assert en.output.startswith("<!doctype html>")
    published = bastion("bulletin", "publish", "--date", "2022-03-25")
    assert published.exit_code == 0, published.output
    assert "revision 1" in flat(published.output)
    again = bastion("bulletin", "publish", "--date", "2022-03-25")
    assert again.exit_code == 1
    with clock.frozen(datetime(2022, 3, 25, 20, 0, tzinfo=SHANGHAI)):
        _cases(cli_db, 1, region="220202")
    refused = bastion("bulletin", "correct", "--date", "2022-03-25", "--reason", " ")
    assert refused.exit_code == 1
    corrected = bastion("bulletin", "correct", "--date", "2022-03-25", "--reason", "吉林市补报1例")
    assert corrected.exit_code == 0, corrected.output
    assert "New local confirmed cases (Jilin City): None → 1" in flat(corrected.output)
    listed = bastion("bulletin", "revisions", "--date", "2022-03-25")
    assert "revision 2" in flat(listed.output)
    assert "吉林市补报1例" in listed.output
    out = tmp_path / "b.xlsx"
    wrote = bastion("bulletin", "--date", "2022-03-25", "--format", "xlsx", "--out", str(out))
    assert wrote.exit_code == 0, wrote.output
    sheet = load_workbook(out)["指标"]
    values = {row[0]: row[1] for row in sheet.iter_rows(min_row=3, values_only=True)}
    assert values["新增本土确诊病例"] == 3


def test_bad_input_is_a_message_not_a_traceback(bastion):  # noqa: F811
    for args in (
        ["bulletin", "--date", "2022-02-30"],
        ["bulletin", "--date", "2022-03-25", "--format", "pdf"],
        ["bulletin", "--date", "2022-03-25", "--format", "xlsx"],
        ["bulletin", "--date", "2022-03-25", "--lang", "fr"],
        ["bulletin", "--date", "2099-01-01"],
        ["bulletin", "--date", "2022-03-25", "--region", "220102"],
    ):
        result = bastion(*args)
        assert result.exit_code == 1, (args, result.output)


def test_charts_are_written(bastion, tmp_path):  # noqa: F811
    out = tmp_path / "charts"
    result = bastion("bulletin", "charts", "--date", "2022-03-25", "--out-dir", str(out))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "bulletin-2022-03-25-cities.png",
        "bulletin-2022-03-25-cities.svg",
        "bulletin-2022-03-25-curve.png",
        "bulletin-2022-03-25-curve.svg",
    ]


def test_rebuild_counters_recounts_contacts_loaded_past_the_writers(bastion, cli_db):  # noqa: F811
    from bastion.tracing.models import Contact

    source = tracing_service.create_case(
        db_session=cli_db,
        principal=system_principal(),
        data=CaseCreate(
            person_id=factories.person(cli_db, region_code="220102").id,
            classification="confirmed",
            clinical_type="mild",
        ),
    )
    for released in (None, datetime(2022, 3, 25).date()):
        cli_db.add(
            Contact(
                person_id=factories.person(cli_db, region_code="220102").id,
                region_code="220102",
                level="close",
                case_id=source.id,
                identified_on=datetime(2022, 3, 24).date(),
                status="released" if released else "active",
                released_on=released,
                created_at=clock.now(),
            )
        )
    cli_db.commit()
    before = bastion("bulletin", "--date", "2022-03-25", "--lang", "en", "--format", "md")
    assert "close contacts have been traced" not in before.output, before.output
    rebuilt = bastion("bulletin", "rebuild-counters")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "contact_day_counts: 2 rows" in flat(rebuilt.output)
    after = bastion("bulletin", "--date", "2022-03-25", "--lang", "en", "--format", "md")
    assert "2 close contacts have been traced in all" in flat(after.output), after.output
    assert "1 of them released" in flat(after.output)
