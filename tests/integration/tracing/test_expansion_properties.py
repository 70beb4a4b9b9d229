"""Properties of contact expansion over random exposure graphs: a secondary contact always links
through an active close contact, every close contact was exposed to the case inside the
lookback window, no case is its own contact, one active row per person."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import bulk_insert
from bastion.tracing import service as tracing_service
from bastion.tracing.models import Contact, ContactLink
from tests.integration.tracing.support import NOW, TODAY, case
from tests.support import factories

PEOPLE = 8
LOOKBACK = 4  # the default profile, jilin-2022-03


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


edges = st.lists(
    st.tuples(st.integers(0, PEOPLE - 1), st.integers(0, PEOPLE - 1), st.integers(0, 9)).filter(
        lambda e: e[0] != e[1]
    ),
    max_size=20,
)


def test_expansion_keeps_its_invariants(db):
    people = [factories.person(db) for _ in range(PEOPLE)]

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(graph=edges, onset_days_ago=st.integers(0, 3))
    def check(graph, onset_days_ago):
        savepoint = db.begin_nested()
        try:
            index = people[0]
            onset = TODAY - timedelta(days=onset_days_ago)
            made = case(db, index, onset_on=onset)
            rows = {
                (people[a].id, people[b].id, TODAY - timedelta(days=ago), "other")
                for a, b, ago in graph
            }
            rows |= {(b, a, d, s) for a, b, d, s in rows}
            bulk_insert(
                db, "exposure_edges", ["person_id", "other_id", "exposed_on", "setting"], rows
            )
            tracing_service.expand(db_session=db, principal=system_principal(), case_refs=[made.id])
            contacts = {c.id: c for c in db.execute(select(Contact)).scalars()}
            links = db.execute(select(ContactLink)).scalars().all()
            since = onset - timedelta(days=LOOKBACK)
            assert all(c.person_id != index.id for c in contacts.values())
            assert max(Counter(c.person_id for c in contacts.values()).values(), default=1) == 1
            for c in contacts.values():
                mine = [link for link in links if link.contact_id == c.id]
                assert mine, "every contact is linked"
                if c.level == "close":
                    assert any(
                        link.case_id == made.id and link.via_contact_id is None for link in mine
                    )
                    assert (index.id, c.person_id) in {
                        (a, b) for a, b, d, _ in rows if since <= d <= TODAY
                    }
                else:
                    for link in mine:
                        via = contacts[link.via_contact_id]
                        assert (via.level, via.status) == ("close", "active")
                        assert (via.person_id, c.person_id) in {
                            (a, b) for a, b, d, _ in rows if d >= via.last_exposure_on
                        }
            exposed = {b for a, b, d, _ in rows if a == index.id and since <= d <= TODAY}
            assert {c.person_id for c in contacts.values() if c.level == "close"} == exposed
        finally:
            savepoint.rollback()

    check()
