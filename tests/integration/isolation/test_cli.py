"""``bastion isolation …`` and ``bastion protocol …`` on a committed database of their own."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.isolation import sites
from bastion.isolation.schemas import SiteCreate
from bastion.regions import service as region_service
from tests.integration.cli.conftest import bastion, cli_db, flat  # noqa: F401 - fixtures
from tests.integration.isolation.helpers import NOW, TODAY, need, place, record_all_negative

DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def test_the_isolation_commands_show_sites_due_releases_red_transfers_and_zone_checks(
    bastion,  # noqa: F811
    cli_db,  # noqa: F811
):
    db = cli_db
    hotel = sites.create_site(
        db_session=db,
        principal=system_principal(),
        data=SiteCreate(
            code="HOTEL-1", name="隔离酒店", kind="hotel", region_code="220102", rooms=5, beds=5
        ),
    )
    sites.update_basic(
        db_session=db,
        principal=system_principal(),
        code=hotel.code,
        item="water",
        status="problem",
        note="停水",
    )
    with clock.frozen(NOW - 8 * DAY):
        [waiting] = place(db, need(db, where="in", starts_on=TODAY - 8 * DAY, region="220102"))
        [home] = place(
            db,
            need(
                db,
                reason="secondary_contact",
                destination="home",
                starts_on=TODAY - 8 * DAY,
                region="220102",
            ),
        )
    record_all_negative(db, home)
    zone = region_service.designate_zone(
        db_session=db,
        principal=system_principal(),
        region_code="220102",
        kind="lockdown",
        starts_on=TODAY - 2 * DAY,
        reason="测试",
    )
    db.commit()

    shown = bastion("isolation", "sites")
    assert shown.exit_code == 0, shown.output
    assert "HOTEL-1" in shown.stdout
    assert "water: 停水" in flat(shown.stdout)

    due = bastion("isolation", "due-releases", "--region", "220102")
    assert due.exit_code == 0, due.output
    assert "1 due for release" in flat(due.stdout)
    assert "ready" in due.stdout

    red = bastion("isolation", "transfers", "--red")
    assert red.exit_code == 0, red.output
    assert "1 tasks, 1 red" in flat(red.stdout)
    assert waiting

    check = bastion("isolation", "zone-check", str(zone.id))
    assert check.exit_code == 2, check.output
    assert "Days without a new case" in flat(check.stdout)

    missing = bastion("isolation", "zone-check", "999999")
    assert missing.exit_code == 1


def test_protocol_show_and_choose(bastion):  # noqa: F811
    shown = bastion("protocol", "show")
    assert shown.exit_code == 0, shown.output
    assert "in force today: jilin-2022-03" in flat(shown.stdout)
    chosen = bastion(
        "protocol",
        "choose",
        "national-9",
        "--from",
        (TODAY + 7 * DAY).isoformat(),
        "--reason",
        "第九版方案",
    )
    assert chosen.exit_code == 0, chosen.output
    assert "new placements only" in flat(chosen.stdout)
    again = bastion("protocol", "choose", "national-9", "--from", "2022-01-01", "--reason", "x")
    assert again.exit_code == 1
    shown = bastion("protocol", "show")
    assert f"{(TODAY + 7 * DAY).isoformat()}: national-9" in flat(shown.stdout)


def test_release_due_releases_the_ready_in_one_batch_and_lists_the_others(
    bastion,  # noqa: F811
    cli_db,  # noqa: F811
):
    db = cli_db
    with clock.frozen(NOW - 8 * DAY):
        ready, blocked = (
            place(
                db,
                need(
                    db,
                    reason="secondary_contact",
                    destination="home",
                    starts_on=TODAY - 8 * DAY,
                    region="220102",
                ),
            )[0]
            for _ in range(2)
        )
    record_all_negative(db, ready)
    db.commit()

    done = bastion("isolation", "release-due", "--region", "220102", "--day", TODAY.isoformat())
    assert done.exit_code == 2, done.output
    text = flat(done.stdout)
    assert "1 released on 2022-03-25" in text
    assert "1 refused" in text
    assert str(blocked) in text
    again = bastion("isolation", "release-due", "--region", "220102")
    assert "0 released" in flat(again.stdout)
    bad = bastion("isolation", "release-due", "--day", "yesterday")
    assert bad.exit_code != 0
