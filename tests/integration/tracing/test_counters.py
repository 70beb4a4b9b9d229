"""The daily contact counters the bulletin sums stay equal to a recount of the contacts
through random expansions, recorded exposures (secondary contacts raised to close) and
releases, on both databases."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select

from bastion.bulletin.counters import rebuild_counters
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import bulk_insert
from bastion.tracing import expansion
from bastion.tracing import service as tracing_service
from bastion.tracing.models import Contact, ContactDayCount
from tests.integration.tracing.support import NOW, TODAY, case, expose
from tests.support import factories
from tests.support.world import CHANGYI_GRID, MEIHEKOU_GRID, NANGUAN_GRID

GRIDS = [NANGUAN_GRID, CHANGYI_GRID, MEIHEKOU_GRID]


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def counters(db) -> dict[tuple, tuple[int, int]]:
    rows = db.execute(select(ContactDayCount)).scalars()
    return {
        (r.day, r.district, r.level): (r.identified, r.released)
        for r in rows
        if r.identified or r.released
    }


def recount(db) -> dict[tuple, tuple[int, int]]:
    out: dict[tuple, list[int]] = {}
    # Rows, not ORM objects: set-based writers do not refresh objects already loaded.
    for c in db.execute(select(Contact.__table__)).all():
        out.setdefault((c.identified_on, c.region_code[:6], c.level), [0, 0])[0] += 1
        if c.status == "released":
            out.setdefault((c.released_on, c.region_code[:6], c.level), [0, 0])[1] += 1
    return {k: (i, r) for k, (i, r) in out.items() if i or r}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counters_equal_a_recount_after_random_operations(db, seed):
    rng = random.Random(seed)
    people = [factories.person(db, region_code=rng.choice(GRIDS)) for _ in range(30)]
    edges = set()
    for _ in range(90):
        a, b = rng.sample(people, 2)
        d = TODAY - timedelta(days=rng.randint(0, 9))
        edges |= {(a.id, b.id, d, "household"), (b.id, a.id, d, "household")}
    bulk_insert(db, "exposure_edges", ["person_id", "other_id", "exposed_on", "setting"], edges)
    cases = []
    for step in range(12):
        op = rng.choice(["case", "case", "expose", "release"])
        day = TODAY - timedelta(days=rng.randint(0, 4))
        contacts = db.execute(select(Contact).where(Contact.status == "active")).scalars().all()
        if op == "case":
            free = [p for p in people if p.id not in {c.person_id for c in cases}]
            made = case(db, rng.choice(free), onset_on=TODAY - timedelta(days=rng.randint(0, 5)))
            cases.append(made)
            expansion.expand_cases(db, [made.id], day=day)
        elif op == "expose" and cases:
            expose(db, rng.choice(cases), rng.choice(people), TODAY - timedelta(days=1))
        elif op == "release" and contacts:
            picked = rng.sample(contacts, k=rng.randint(1, len(contacts)))
            tracing_service.release_contacts(
                db_session=db,
                principal=system_principal(),
                contact_ids=[c.id for c in picked],
                day=TODAY - timedelta(days=rng.randint(0, 2)),
            )
        assert counters(db) == recount(db), f"step {step}: {op}"
    assert recount(db), "the operations stored contacts"
    kept = counters(db)
    rebuild_counters(db_session=db, principal=system_principal())
    assert counters(db) == kept
