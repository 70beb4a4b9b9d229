"""A round's load per sampling site and local hour (Asia/Shanghai): scans against the site's
capacity per hour, hours over it, scans outside opening hours — through the service, the API
and ``bastion testing site-load``, on both engines."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import transaction
from bastion.core.errors import Forbidden, NotFound
from bastion.regions import service as region_service
from bastion.testing import service as testing_service
from bastion.testing import site_load
from bastion.testing.schemas import RoundCreate, SiteCreate
from tests.support import factories, pool_factories
from tests.support.world import CHANGYI_GRID, NANGUAN_COMMUNITY, NANGUAN_GRID, _tree

#: 04:00 on 25 March, local time.
START = datetime(2022, 3, 24, 20, 0, tzinfo=UTC)
NOW = datetime(2022, 3, 25, 16, 0, tzinfo=UTC)


def local(hour: int, minute: int = 0, second: int = 0) -> datetime:
    """25 March 2022 at this local (UTC+8) time, as UTC."""
    return datetime(2022, 3, 25, hour, minute, second, tzinfo=UTC) - timedelta(hours=8)


@dataclass(frozen=True)
class Built:
    round_code: str


def build(db: Session) -> Built:
    """A province round; site SL-NG in Changchun (2 an hour, 07:00–22:00) and SL-CY in Jilin
    City, with scans at known local times."""
    rnd = testing_service.create_round(
        db_session=db,
        principal=system_principal(),
        data=RoundCreate(code="R-LOAD", name="load", region_code="220000", starts_at=START),
    )
    nanguan = testing_service.create_site(
        db_session=db,
        principal=system_principal(),
        data=SiteCreate(
            code="SL-NG",
            name="南关",
            region_code=NANGUAN_COMMUNITY,
            capacity_per_hour=2,
            opens_at=time(7, 0),
            closes_at=time(22, 0),
            grids=[NANGUAN_GRID],
        ),
    )
    changyi = testing_service.create_site(
        db_session=db,
        principal=system_principal(),
        data=SiteCreate(
            code="SL-CY",
            name="昌邑",
            region_code=CHANGYI_GRID[:12],
            capacity_per_hour=100,
            grids=[CHANGYI_GRID],
        ),
    )
    groups = [
        (nanguan, local(6, 30), 1),  # before opening
        (nanguan, local(7, 0, 0), 1),  # the opening minute: inside
        (nanguan, local(9, 10), 3),  # over capacity (3 > 2)
        (nanguan, local(10, 5), 2),  # at capacity: not over
        (nanguan, local(21, 59, 59), 1),  # last second: inside
        (nanguan, local(22, 0, 0), 1),  # closing time: outside
        (changyi, local(9, 30), 2),
    ]
    for n, (site, at, count) in enumerate(groups):
        grid = NANGUAN_GRID if site is nanguan else CHANGYI_GRID
        people = [factories.person(db, region_code=grid) for _ in range(count)]
        pool_factories.tube(db, rnd, site, f"TL{n:08d}", people, at=at)
    return Built(round_code=rnd.code)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def built(db) -> Built:  # type: ignore[no-untyped-def]
    made = build(db)
    db.commit()
    return made


def hours_of(load: site_load.RoundSiteLoad, code: str) -> list[tuple[str, int, int, bool]]:
    (site,) = [s for s in load.sites if s.code == code]
    return [
        (h.hour.strftime("%H:%M"), h.scans, h.outside_hours, h.over_capacity) for h in site.hours
    ]


def test_each_sites_hours_show_scans_capacity_and_opening_hours(db, built, principal):
    load = site_load.site_load(
        db_session=db, principal=principal("commander", "in"), ref=built.round_code
    )
    assert [s.code for s in load.sites] == ["SL-NG"]
    assert hours_of(load, "SL-NG") == [
        ("06:00", 1, 1, False),
        ("07:00", 1, 0, False),
        ("09:00", 3, 0, True),
        ("10:00", 2, 0, False),
        ("21:00", 1, 0, False),
        ("22:00", 1, 1, False),
    ]
    (site,) = load.sites
    assert (site.scans, site.outside_hours, site.peak_scans, site.hours_over_capacity) == (
        9,
        2,
        3,
        1,
    )
    assert site.hours[0].hour.utcoffset() == timedelta(hours=8)


def test_the_system_sees_every_site_and_a_region_filter_narrows(db, built):
    everything = site_load.site_load(db_session=db, principal=system_principal(), ref="R-LOAD")
    assert [s.code for s in everything.sites] == ["SL-CY", "SL-NG"]
    assert hours_of(everything, "SL-CY") == [("09:00", 2, 0, False)]
    jilin = site_load.site_load(
        db_session=db, principal=system_principal(), ref="R-LOAD", region_code="220200"
    )
    assert [s.code for s in jilin.sites] == ["SL-CY"]


def test_a_region_filter_outside_the_caller_is_forbidden(db, built, principal):
    with pytest.raises(Forbidden) as refused:
        site_load.site_load(
            db_session=db,
            principal=principal("commander", "in"),
            ref="R-LOAD",
            region_code="220200",
        )
    assert [(p.field, p.reason) for p in refused.value.problems] == [
        ("region", "error.region_outside")
    ]


def test_a_round_without_scans_lists_no_site_and_an_unknown_round_is_not_found(db, built):
    testing_service.create_round(
        db_session=db,
        principal=system_principal(),
        data=RoundCreate(code="R-EMPTY", name="empty", region_code="220100", starts_at=START),
    )
    assert (
        site_load.site_load(db_session=db, principal=system_principal(), ref="R-EMPTY").sites == []
    )
    with pytest.raises(NotFound):
        site_load.site_load(db_session=db, principal=system_principal(), ref="R-NONE")


def test_the_api_answers_per_site_and_hour_inside_the_callers_region(client, headers, built):
    inside = client.get("/api/v1/rounds/R-LOAD/site-load", headers=headers("analyst", "in"))
    assert inside.status_code == 200, inside.text
    body = inside.json()
    assert body["round_code"] == "R-LOAD"
    (site,) = body["sites"]
    assert (site["code"], site["capacity_per_hour"], site["hours_over_capacity"]) == (
        "SL-NG",
        2,
        1,
    )
    assert (site["opens_at"], site["closes_at"]) == ("07:00:00", "22:00:00")
    assert [(h["hour"], h["scans"], h["over_capacity"]) for h in site["hours"]][2] == (
        "2022-03-25T09:00:00+08:00",
        3,
        True,
    )
    outside = client.get("/api/v1/rounds/R-LOAD/site-load", headers=headers("analyst", "out"))
    assert [s["code"] for s in outside.json()["sites"]] == ["SL-CY"]
    filtered = client.get(
        "/api/v1/rounds/R-LOAD/site-load",
        params={"region": "220102"},
        headers=headers("analyst", "in"),
    )
    assert [s["code"] for s in filtered.json()["sites"]] == ["SL-NG"]


def test_the_api_refuses_a_role_without_testing_read(client, headers, built):
    response = client.get("/api/v1/rounds/R-LOAD/site-load", headers=headers("hotline"))
    assert response.status_code == 403


# The command ---------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def committed(cli_env):
    with clock.frozen(NOW), transaction() as session:
        region_service.load_base_regions(db_session=session)
        session.add_all(_tree("220102") + _tree("220202"))
        session.flush()
        return build(session)


def test_the_command_prints_each_sites_load_and_its_hours(committed):
    with clock.frozen(NOW):
        result = runner.invoke(
            app, ["testing", "site-load", committed.round_code, "--hours"], env={"COLUMNS": "200"}
        )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    (nanguan,) = [line for line in lines if "SL-NG 南关" in line]
    cells = [c.strip() for c in nanguan.split("│") if c.strip()]
    # site, opening hours, scans, capacity/h, peak hour, hours over, outside hours
    assert cells == ["SL-NG 南关", "07:00–22:00", "9", "2", "3", "1", "2"]
    (busy,) = [line for line in lines if "2022-03-25 09:00" in line and "SL-NG" in line]
    assert "150%" in busy


def test_the_command_refuses_an_unknown_round_with_exit_1(committed):
    result = runner.invoke(app, ["testing", "site-load", "R-NONE"])
    assert result.exit_code == 1
    assert "R-NONE" in result.output
