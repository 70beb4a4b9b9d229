"""A testing round in Changchun with a site, a lab and people, for the page tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bastion.core import clock
from bastion.registry.models import Person
from bastion.testing.models import Lab, Round, Site
from tests.integration.web.pages import NOW, START
from tests.support import factories
from tests.support.world import CHANGYI_GRID, NANGUAN_GRID


@dataclass
class Scene:
    round: Round
    site: Site
    lab: Lab
    people: list[Person]
    jilin_site: Site


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


@pytest.fixture
def scene(db) -> Scene:
    # People first: a round requires whoever is registered when it opens.
    people = [factories.person(db, region_code=NANGUAN_GRID) for _ in range(6)]
    rnd = factories.round_(db, code="R-WEB-1", region_code="220000", starts_at=START)
    site = factories.site(db, code="SITE-CC")
    jilin = factories.site(db, code="SITE-JL", region_code="220202001001", grids=[CHANGYI_GRID])
    lab = factories.lab(db, code="LAB-CC", capacity=100)
    db.commit()
    return Scene(round=rnd, site=site, lab=lab, people=people, jilin_site=jilin)
