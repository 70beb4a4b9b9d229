"""Results recorded through the results path move the round's coverage counters, and the
counters always agree with a rebuild from the record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.core import clock
from bastion.testing import coverage
from bastion.testing.models import RoundCoverage
from tests.support import factories, testing_factories
from tests.support.testing_factories import START


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(START + timedelta(hours=8)):
        yield


def counters(db, round_id):
    rows = db.execute(select(RoundCoverage).where(RoundCoverage.round_id == round_id)).scalars()
    return {
        r.region_code: (r.sampled, r.resulted, r.positive_people, r.positive_tubes) for r in rows
    }


def test_uploaded_results_are_counted_once_and_agree_with_a_rebuild(db):
    rnd = factories.round_(db, starts_at=START)
    site = factories.site(db)
    lab = factories.lab(db)
    testing_factories.in_lab(db, rnd, site, lab, ["TR00000001", "TR00000002"], people_per_tube=3)
    report = testing_factories.upload(
        db,
        [
            testing_factories.row(lab, "TR00000001", "negative", n=1),
            testing_factories.row(lab, "TR00000002", "positive", n=2, ct_orf1ab=24.5, ct_n=25.1),
        ],
    )
    assert report.refused == 0
    incremental = counters(db, rnd.id)
    grid = next(iter(incremental))
    assert incremental[grid] == (6, 6, 3, 1)
    # Sending the same results again changes nothing, counters included.
    testing_factories.upload(db, [testing_factories.row(lab, "TR00000001", "negative", n=1)])
    assert counters(db, rnd.id) == incremental
    coverage.rebuild(db_session=db, round_id=rnd.id)
    assert counters(db, rnd.id) == incremental
