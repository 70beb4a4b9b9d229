"""Lab figures for a local day on a hand-built scenario with known numbers: load, turnaround,
positive, reversal and late rates, and the green / yellow / red ratings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import InvalidInput, NotFound
from bastion.testing import labs
from bastion.testing import service as testing_service
from bastion.testing.schemas import LabCreate
from tests.support import factories
from tests.support import testing_factories as tf
from tests.support.testing_factories import START

DAY = date(2022, 3, 25)
#: 09:00 in Changchun on DAY.
NINE = datetime(2022, 3, 25, 1, 0, tzinfo=UTC)
#: 08:00 in Changchun the next morning: 23 hours after NINE.
NOW = datetime(2022, 3, 26, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def scenario(db):
    rnd = factories.round_(db, starts_at=START - timedelta(days=2))
    site = factories.site(db)
    green = factories.lab(db, code="LAB-G", capacity=100)
    yellow = factories.lab(db, code="LAB-Y", capacity=5)
    red = factories.lab(db, code="LAB-R", capacity=100)
    outside = testing_service.create_lab(
        db_session=db,
        principal=system_principal(),
        data=LabCreate(
            code="LAB-OUT", name="吉林市实验室", region_code="220200", daily_capacity=50
        ),
    )
    n = iter(range(1, 1000))

    def tube(lab, received_at, after=None, result="negative", **kw):
        return tf.bare_tube(
            db,
            rnd,
            site,
            f"TL{next(n):08d}",
            lab=lab,
            received_at=received_at,
            uploaded_after=after,
            result=result,
            **kw,
        )

    # Green: 4 tubes back within 2 h, one positive pool confirmed by its retests.
    for hours in (1, 1, 2):
        tube(green, NINE, hours * H)
    tf.hold(db, tube(green, NINE, 2 * H, "positive"), "confirmed")
    # Yellow: 6 tubes against a capacity of 5 (load 1.2), all back in 3 h.
    for _ in range(6):
        tube(yellow, NINE + H, 3 * H)
    # Red: turnarounds 1, 2, 3, 4, 5 and 14 h; three positive pools (one reversed, one
    # confirmed, one still open); two tubes still pending 23 h after receipt; a tube received
    # ten minutes into the local day; tubes just before and just after the day.
    tf.hold(db, tube(red, NINE, 1 * H, "positive"), "reversed")
    tf.hold(db, tube(red, NINE, 2 * H, "positive"), "confirmed")
    tf.hold(db, tube(red, NINE, 3 * H, "positive"), None)
    for hours in (4, 5, 14):
        tube(red, NINE, hours * H)
    tube(red, NINE)
    tube(red, NINE)
    tube(red, datetime(2022, 3, 24, 16, 10, tzinfo=UTC), 1 * H)  # 00:10 local on DAY
    tube(red, datetime(2022, 3, 24, 15, 50, tzinfo=UTC), 1 * H)  # 23:50 local the day before
    tube(red, datetime(2022, 3, 25, 16, 10, tzinfo=UTC))  # 00:10 local the day after
    # A positive single tube is not a pool: no reversal figure.
    tube(green, NINE, 1 * H, "negative", kind="single", capacity=1, members=1)
    tube(outside, NINE, 1 * H)
    return {"green": green, "yellow": yellow, "red": red, "outside": outside}


def figures(principal=None, **kw):
    return {
        f.code: f
        for f in labs.lab_figures(
            db_session=kw.pop("db"), principal=principal or system_principal(), **kw
        )
    }


def test_a_labs_day_matches_the_numbers_built_by_hand(db, scenario):
    red = figures(db=db, day=DAY)["LAB-R"]
    assert (red.received, red.resulted, red.pending) == (9, 7, 2)
    assert red.load == pytest.approx(0.09)
    assert red.turnaround_median_hours == pytest.approx(3.0, abs=1e-3)
    assert red.turnaround_p90_hours == pytest.approx(14.0, abs=1e-3)
    assert (red.positive, red.positive_rate) == (3, pytest.approx(3 / 7))
    assert (red.pools_positive, red.pools_decided, red.pools_reversed) == (3, 2, 1)
    assert red.reversal_rate == pytest.approx(0.5)
    assert (red.late, red.late_share) == (3, pytest.approx(3 / 9))
    assert red.rating == "red"


def test_each_lab_gets_its_colour(db, scenario):
    got = figures(db=db, day=DAY)
    green, yellow = got["LAB-G"], got["LAB-Y"]
    assert (green.received, green.load, green.positive_rate) == (5, 0.05, pytest.approx(0.2))
    assert green.turnaround_median_hours == pytest.approx(1.0, abs=1e-3)
    assert green.turnaround_p90_hours == pytest.approx(2.0, abs=1e-3)
    assert (green.pools_positive, green.reversal_rate, green.late) == (1, 0.0, 0)
    assert (yellow.received, yellow.load, yellow.late_share) == (6, pytest.approx(1.2), 0.0)
    assert [got[c].rating for c in ("LAB-G", "LAB-Y", "LAB-R")] == ["green", "yellow", "red"]


def test_late_means_what_the_late_hours_parameter_says(db, scenario):
    red = figures(db=db, day=DAY, late_hours=24)["LAB-R"]
    assert (red.late, red.late_share) == (0, 0.0)
    red = figures(db=db, day=DAY, late_hours=4.5)["LAB-R"]
    # 5 h and 14 h uploads, and both tubes still pending.
    assert red.late == 4


def test_a_day_is_the_local_day(db, scenario):
    before = figures(db=db, day=DAY - timedelta(days=1))["LAB-R"]
    after = figures(db=db, day=DAY + timedelta(days=1))["LAB-R"]
    assert (before.received, after.received) == (1, 1)
    assert after.turnaround_median_hours is None
    assert after.rating == "green"


def test_today_is_the_default_day(db, scenario):
    assert figures(db=db)["LAB-R"].day == date(2022, 3, 26)


def test_labs_outside_the_users_region_are_not_shown(db, scenario, principal):
    seen = figures(principal("analyst"), db=db, day=DAY)
    assert sorted(seen) == ["LAB-G", "LAB-R", "LAB-Y"]
    assert "LAB-OUT" in figures(principal("analyst", "out"), db=db, day=DAY)
    with pytest.raises(NotFound):
        labs.lab_figures(db_session=db, principal=principal("analyst"), day=DAY, lab_code="LAB-OUT")


def test_one_lab_can_be_asked_for_and_a_bad_parameter_is_refused(db, scenario):
    (one,) = labs.lab_figures(
        db_session=db, principal=system_principal(), day=DAY, lab_code="LAB-Y"
    )
    assert one.code == "LAB-Y"
    with pytest.raises(NotFound):
        labs.lab_figures(db_session=db, principal=system_principal(), day=DAY, lab_code="LAB-\x00")
    with pytest.raises(InvalidInput) as err:
        labs.lab_figures(db_session=db, principal=system_principal(), day=DAY, late_hours=0)
    assert err.value.problems[0].field == "late_hours"


def test_the_api_serves_the_figures_of_a_day(client, headers, scenario):
    response = client.get("/api/v1/lab-figures?date=2022-03-25", headers=headers("analyst"))
    assert response.status_code == 200, response.text
    by_code = {f["code"]: f for f in response.json()}
    assert by_code["LAB-R"]["rating"] == "red"
    assert by_code["LAB-R"]["pools_reversed"] == 1
    assert "LAB-OUT" not in by_code
    for query, field in (
        ("date=2022-13-45", "date"),
        ("date=2022-03-25&late_hours=0", "late_hours"),
        ("date=2022-03-25&late_hours=nan", "late_hours"),
    ):
        bad = client.get(f"/api/v1/lab-figures?{query}", headers=headers("analyst"))
        assert bad.status_code == 422, query
        assert bad.json()["errors"][0]["field"] == field
    unknown = client.get("/api/v1/lab-figures?lab=NOPE", headers=headers("analyst"))
    assert unknown.status_code == 404
    assert client.get("/api/v1/lab-figures", headers=headers("resident")).status_code == 403
