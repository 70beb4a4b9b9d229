"""The dashboard's slots filled: today's cases with the curve, isolation beds against capacity,
transfers red when left from before today, the latest bulletin — each from its domain's
service, in the user's region only."""

from __future__ import annotations

from datetime import timedelta

from bastion.core import clock
from tests.integration.isolation.helpers import TODAY, need, place, site
from tests.integration.tracing.support import case
from tests.integration.web.pages import login, main_of
from tests.support import factories
from tests.support.world import NANGUAN_GRID

DAY = timedelta(days=1)


def _panel(body: str, name: str) -> str:
    return body.split(f'id="panel-{name}"', 1)[1].split("</section>", 1)[0]


def test_the_commander_sees_every_slot_filled(client, db):
    case(db, factories.person(db, region_code=NANGUAN_GRID), classification="confirmed",
         clinical_type="mild")  # fmt: skip
    case(db, factories.person(db, region_code=NANGUAN_GRID))
    site(db, beds=4)
    db.commit()
    login(client, "commander_in")
    page = client.get("/dashboard")
    assert page.status_code == 200
    body = main_of(page.text)
    assert "dashed" not in body
    assert 'class="card slot"' not in body
    cases = _panel(body, "cases")
    assert '<strong id="pn-new-confirmed">1</strong>' in cases
    assert '<strong id="pn-new-asymptomatic">1</strong>' in cases
    assert f"/bulletin/{TODAY.isoformat()}/charts/curve.svg?region=220100" in cases
    isolation = _panel(body, "isolation")
    assert '<span id="pn-beds">4</span>' in isolation
    assert "<svg" in isolation
    assert 'href="/bulletin?day=' in _panel(body, "bulletin")
    curve = client.get(f"/bulletin/{TODAY.isoformat()}/charts/curve.svg?region=220100")
    assert curve.status_code == 200
    assert curve.headers["content-type"].startswith("image/svg")


def test_transfers_left_from_before_today_are_red(client, db):
    with clock.frozen(clock.now() - DAY):
        place(db, need(db, starts_on=TODAY - DAY))
    db.commit()
    login(client, "analyst_in")
    transfers = _panel(main_of(client.get("/dashboard").text), "transfers")
    assert '<strong id="pn-open">1</strong>' in transfers
    assert 'class="badge red" id="pn-red"' in transfers


def test_a_commander_outside_sees_nothing_of_changchun(client, db):
    case(db, factories.person(db, region_code=NANGUAN_GRID))
    site(db, beds=4)
    place(db, need(db, starts_on=TODAY))
    db.commit()
    login(client, "commander_out")
    body = main_of(client.get("/dashboard").text)
    assert '<strong id="pn-new-asymptomatic">0</strong>' in _panel(body, "cases")
    assert '<span id="pn-beds">0</span>' in _panel(body, "isolation")
    assert '<strong id="pn-open">0</strong>' in _panel(body, "transfers")
    assert client.get("/dashboard?region=220100").status_code == 403


def test_roles_without_the_dashboard_get_no_panels(client, db):
    case(db, factories.person(db, region_code=NANGUAN_GRID))
    db.commit()
    for role in ("sampler_in", "investigator_in"):
        login(client, role)
        response = client.get("/dashboard")
        assert response.status_code == 403
        assert "panel-cases" not in response.text


def test_zones_in_force_are_listed_strictest_first_and_only_inside(client, db):
    from bastion.core.auth import system_principal
    from bastion.regions import service as region_service
    from tests.support.world import CHANGYI_GRID

    for code, kind in ((NANGUAN_GRID, "control"), (NANGUAN_GRID[:12], "lockdown")):
        region_service.designate_zone(
            db_session=db,
            principal=system_principal(),
            region_code=code,
            kind=kind,
            starts_on=TODAY - 2 * DAY,
            reason="test",
        )
    region_service.designate_zone(
        db_session=db,
        principal=system_principal(),
        region_code=CHANGYI_GRID,
        kind="lockdown",
        starts_on=TODAY,
        reason="test",
    )
    db.commit()
    login(client, "commander_in")
    zones = _panel(main_of(client.get("/dashboard").text), "zones")
    assert zones.index(NANGUAN_GRID[:12]) < zones.index(NANGUAN_GRID)  # lockdown first
    assert CHANGYI_GRID not in zones
    assert '<td class="num">3</td>' in zones  # designated two days ago: its third day
    login(client, "commander_out")
    outside = _panel(main_of(client.get("/dashboard").text), "zones")
    assert CHANGYI_GRID in outside
    assert NANGUAN_GRID not in outside
