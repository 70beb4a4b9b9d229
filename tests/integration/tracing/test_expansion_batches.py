"""Expansion over batches that meet what earlier batches stored: an active contact reached again
gains a link (not a second row) and its later exposure, a secondary contact reached as close is
raised, the ids returned are what was created, and edges naming no registered person make no
contact and no link."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import bulk_insert
from bastion.tracing import service as tracing_service
from bastion.tracing.models import Contact, ContactDayCount, ContactLink
from tests.integration.tracing.support import NOW, TODAY, case
from tests.support import factories


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def _edges(db, triples: list[tuple[int, int, date]]) -> None:
    rows = set()
    for a, b, d in triples:
        rows |= {(a, b, d, "household"), (b, a, d, "household")}
    bulk_insert(db, "exposure_edges", ["person_id", "other_id", "exposed_on", "setting"], rows)


def _expand(db, *cases):
    return tracing_service.expand(
        db_session=db, principal=system_principal(), case_refs=[c.id for c in cases]
    )


def _active(db, person) -> Contact:
    return db.execute(
        select(Contact).where(Contact.person_id == person.id, Contact.status == "active")
    ).scalar_one()


def _paths(db, contact: Contact) -> set[tuple[int, int | None, str]]:
    links = db.execute(select(ContactLink).where(ContactLink.contact_id == contact.id)).scalars()
    return {(link.case_id, link.via_contact_id, link.level) for link in links}


def _identified(db) -> dict[str, int]:
    rows = db.execute(
        select(ContactDayCount.level, func.sum(ContactDayCount.identified)).group_by(
            ContactDayCount.level
        )
    ).all()
    return {level: int(n) for level, n in rows if n}


def test_a_contact_reached_by_a_later_batch_gains_a_link_and_its_later_exposure(db):
    first_index, second_index, shared = (factories.person(db) for _ in range(3))
    first = case(db, first_index, onset_on=TODAY - timedelta(days=2))
    _edges(db, [(first_index.id, shared.id, TODAY - timedelta(days=3))])
    made = _expand(db, first)
    contact = _active(db, shared)
    assert made.close_ids == [contact.id]
    assert contact.last_exposure_on == TODAY - timedelta(days=3)

    second = case(db, second_index, onset_on=TODAY - timedelta(days=1))
    _edges(db, [(second_index.id, shared.id, TODAY - timedelta(days=1))])
    again = _expand(db, second)
    assert (again.close_ids, again.secondary_ids) == ([], [])
    db.expire_all()
    assert _active(db, shared).id == contact.id
    assert _active(db, shared).last_exposure_on == TODAY - timedelta(days=1)
    assert _paths(db, contact) == {(first.id, None, "close"), (second.id, None, "close")}
    assert _identified(db) == {"close": 1}


def test_a_secondary_contact_reached_as_close_is_raised_and_keeps_its_path(db):
    first_index, middle, far, second_index = (factories.person(db) for _ in range(4))
    first = case(db, first_index, onset_on=TODAY - timedelta(days=2))
    _edges(db, [(first_index.id, middle.id, TODAY - timedelta(days=2)), (middle.id, far.id, TODAY)])
    made = _expand(db, first)
    close, secondary = _active(db, middle), _active(db, far)
    assert (made.close_ids, made.secondary_ids) == ([close.id], [secondary.id])
    assert _identified(db) == {"close": 1, "secondary": 1}

    second = case(db, second_index, onset_on=TODAY - timedelta(days=1))
    _edges(db, [(second_index.id, far.id, TODAY)])
    raised = _expand(db, second)
    assert (raised.close_ids, raised.secondary_ids) == ([secondary.id], [])
    db.expire_all()
    assert _active(db, far).level == "close"
    assert _paths(db, secondary) == {
        (first.id, close.id, "secondary"),
        (second.id, None, "close"),
    }
    assert _identified(db) == {"close": 2}
    assert db.execute(select(func.count()).select_from(Contact)).scalar_one() == 2


def test_one_batch_of_cases_sharing_people_stores_each_person_once_and_each_path_once(db):
    a_index, b_index, shared, beyond = (factories.person(db) for _ in range(4))
    a, b = case(db, a_index), case(db, b_index)
    _edges(db, [(a_index.id, shared.id, TODAY), (b_index.id, shared.id, TODAY),
                (shared.id, beyond.id, TODAY)])  # fmt: skip
    made = _expand(db, a, b)
    close, secondary = _active(db, shared), _active(db, beyond)
    assert (made.close_ids, made.secondary_ids) == ([close.id], [secondary.id])
    assert made.links_created == 4
    assert _paths(db, close) == {(a.id, None, "close"), (b.id, None, "close")}
    assert _paths(db, secondary) == {(a.id, close.id, "secondary"), (b.id, close.id, "secondary")}
    assert secondary.case_id == min(a.id, b.id)


def test_edges_naming_no_registered_person_make_no_contact(db):
    index, known = factories.person(db), factories.person(db)
    made = case(db, index)
    unknown = 10**12
    _edges(db, [(index.id, unknown, TODAY), (index.id, known.id, TODAY),
                (known.id, unknown + 1, TODAY)])  # fmt: skip
    result = _expand(db, made)
    assert (len(result.close_ids), result.secondary_ids, result.links_created) == (1, [], 1)
    people = set(db.execute(select(Contact.person_id)).scalars())
    assert people == {known.id}
    assert db.execute(select(func.count()).select_from(ContactLink)).scalar_one() == 1
