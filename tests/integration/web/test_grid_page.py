"""The grid worker's page: residents, who is not yet tested this round, retests due."""

from __future__ import annotations

from datetime import timedelta

from bastion.core.auth import system_principal
from bastion.testing import ingest
from tests.integration.web.pages import START, login, main_of
from tests.support import pool_factories as pf
from tests.support import testing_factories as tf
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID


def test_a_grid_worker_sees_who_in_the_grid_is_not_yet_tested(client, db, scene):
    login(client, "grid_worker_grid")  # a worker whose region is the grid itself
    before = client.get("/grid")
    assert before.status_code == 200
    section = main_of(before.text).split('id="not-tested"', 1)[1].split("</section>", 1)[0]
    assert section.count("<tr>") == 1 + 6  # the header, then the six people required
    assert scene.people[0].id_masked in section  # masked: first and last characters only
    assert scene.people[0].name not in section  # the name shows the surname only

    tf.sampled(db, scene.round, scene.site, ["TW40000001"])  # someone else, not required

    ingest.ingest_scans(
        db_session=db,
        principal=system_principal(),
        key="web-grid-000001",
        source="test",
        scans=[
            ingest.RawScan(
                row=1,
                round=scene.round.code,
                site=scene.site.code,
                tube="TW40000002",
                person=scene.people[0].token,
                scanned_at=tf.SAMPLED_AT,
            )
        ],
    )
    db.commit()
    after = (
        main_of(client.get("/grid").text).split('id="not-tested"', 1)[1].split("</section>", 1)[0]
    )
    assert after.count("<tr>") == 1 + 5


def test_a_city_level_worker_chooses_a_grid(client, scene):
    login(client, "grid_worker_in")
    page = main_of(client.get("/grid").text)
    assert NANGUAN_GRID in page
    assert CHANGYI_GRID not in page  # Jilin City's grids are not offered
    assert client.get(f"/grid?region={NANGUAN_GRID}").status_code == 200


def test_a_worker_outside_gets_nothing_from_a_changchun_grid(client, scene):
    login(client, "grid_worker_out")
    response = client.get(f"/grid?region={NANGUAN_GRID}")
    assert response.status_code == 403
    assert scene.people[0].id_masked not in response.text


def test_roles_without_the_registry_are_refused(client, scene):
    login(client, "courier_in")
    assert client.get(f"/grid?region={NANGUAN_GRID}").status_code == 403


def test_a_positive_pool_puts_its_members_on_the_retest_list(client, db, scene):
    tube = pf.tube(
        db, scene.round, scene.site, "TW40000009", scene.people[:3], at=START + timedelta(hours=1)
    )
    pf.result_and_process(db, tube, "positive", at=START + timedelta(hours=4), lab=scene.lab)
    db.commit()
    login(client, "grid_worker_grid")
    section = main_of(client.get("/grid").text).split('id="retests"', 1)[1]
    section = section.split("</section>", 1)[0]
    assert section.count("<tr") == 1 + 3
    assert "混管阳性" in section
    assert scene.people[3].id_masked not in section  # not in the positive pool


def test_the_grid_worker_sees_home_isolation_and_special_groups(client, db, scene):
    from bastion.core import clock
    from bastion.registry.enums import SpecialGroup
    from tests.integration.isolation.helpers import need, place
    from tests.support import factories

    with clock.frozen(START):
        place(db, need(db, reason="secondary_contact", destination="home", region=NANGUAN_GRID))
        place(db, need(db, reason="secondary_contact", destination="home", region=CHANGYI_GRID))
    alone = factories.person(db, region_code=NANGUAN_GRID)
    alone.special_groups = int(SpecialGroup.living_alone)
    db.commit()
    login(client, "grid_worker_grid")
    body = main_of(client.get("/grid").text)
    home = body.split('id="home-isolation"', 1)[1].split("</section>", 1)[0]
    assert home.count("<tr") == 1 + 1  # the header, then the one person at home in this grid
    groups = body.split('id="special-groups"', 1)[1].split("</section>", 1)[0]
    assert alone.id_masked in groups
    assert scene.people[1].id_masked not in groups
