"""Exposures, contacts and chains: close and secondary by the profile, one row per person,
links walked both ways, a contact of an unknown case refused, expansion set-based."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from bastion.audit.models import AuditEntry
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.protocols import service as protocol_service
from bastion.registry import service as registry_service
from bastion.registry.idnumber import make_resident_id
from bastion.registry.schemas import PersonCreate
from bastion.tracing import service as tracing_service
from bastion.tracing.models import Contact, ContactLink
from bastion.tracing.schemas import ExposureIn
from tests.integration.tracing.support import NOW, TODAY, case, expose
from tests.support import factories
from tests.support.world import NANGUAN_GRID


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def contact_of(db, person):
    return db.execute(
        select(Contact).where(Contact.person_id == person.id, Contact.status == "active")
    ).scalar_one_or_none()


def test_a_person_exposed_to_a_case_becomes_a_close_contact_linked_to_it(db):
    index, other = factories.person(db), factories.person(db)
    made = case(db, index)
    report = expose(db, made, other)
    assert report.accepted == 1
    contact = contact_of(db, other)
    assert (contact.level, contact.case_id, contact.identified_on) == ("close", made.id, TODAY)
    links = tracing_service.links_of(db, contact.id)
    assert [(link.case_id, link.via_contact_id) for link in links] == [(made.id, None)]


def test_a_close_contacts_contact_is_secondary_and_links_through_it(db):
    made = case(db, factories.person(db))
    close_person, second_person = factories.person(db), factories.person(db)
    expose(db, made, close_person)
    close = contact_of(db, close_person)
    expose(db, close.id, second_person)
    secondary = contact_of(db, second_person)
    assert secondary.level == "secondary"
    [link] = tracing_service.links_of(db, secondary.id)
    assert (link.via_contact_id, link.case_id, link.level) == (close.id, made.id, "secondary")


def test_one_person_linked_to_many_cases_stays_one_contact(db):
    a, b = case(db, factories.person(db)), case(db, factories.person(db))
    shared = factories.person(db)
    expose(db, a, shared)
    expose(db, b, shared, setting="workplace")
    rows = db.execute(select(func.count()).where(Contact.person_id == shared.id)).scalar_one()
    assert rows == 1
    contact = contact_of(db, shared)
    assert {link.case_id for link in tracing_service.links_of(db, contact.id)} == {a.id, b.id}


def test_a_contact_of_an_unknown_case_is_refused_by_row(db):
    known = case(db, factories.person(db))
    people = [factories.person(db) for _ in range(2)]
    report = tracing_service.record_exposures(
        db_session=db,
        principal=system_principal(),
        items=[
            ExposureIn(case="C99999999", person_id=people[0].id, exposed_on=TODAY, setting="other"),
            ExposureIn(case=known.code, person_id=people[1].id, exposed_on=TODAY, setting="school"),
        ],
    )
    assert (report.accepted, report.refused) == (1, 1)
    assert (report.problems[0].row, report.problems[0].reason) == (1, "exposure.case_unknown")
    assert contact_of(db, people[0]) is None


def test_an_exposure_in_the_future_is_refused(db):
    made = case(db, factories.person(db))
    report = expose(db, made, factories.person(db), day=TODAY + timedelta(days=1))
    assert report.refused == 1
    assert report.problems[0].reason == "tracing.date_in_future"


def test_an_exposure_before_the_lookback_counts_no_contact(db):
    made = case(db, factories.person(db), onset_on=TODAY - timedelta(days=1))
    early = factories.person(db)
    report = expose(db, made, early, day=TODAY - timedelta(days=6))
    assert (report.accepted, report.not_counted) == (1, 1)
    assert contact_of(db, early) is None


def test_a_profile_without_secondary_tracing_makes_none(db):
    protocol_service.choose(
        db_session=db,
        principal=system_principal(),
        profile="national-2022-11",
        effective_from=TODAY,
        reason="twenty measures",
    )
    made = case(db, factories.person(db))
    close_person, second_person = factories.person(db), factories.person(db)
    expose(db, made, close_person)
    report = expose(db, contact_of(db, close_person).id, second_person)
    assert report.not_counted == 1
    assert contact_of(db, second_person) is None


def test_expansion_walks_the_exposure_graph_two_hops_and_stores_once(db):
    # index — a (household) — b (workplace, after a's exposure); c met the index before lookback.
    index, a, b, c = (factories.person(db) for _ in range(4))
    first = case(db, index, onset_on=TODAY - timedelta(days=1))
    # Edges only (no contacts yet): record them from a throwaway case, then close it.
    helper_case = case(db, factories.person(db))
    del helper_case
    _edges(db, [(index.id, a.id, TODAY - timedelta(days=2)), (a.id, b.id, TODAY),
                (index.id, c.id, TODAY - timedelta(days=10))])  # fmt: skip
    result = tracing_service.expand(
        db_session=db, principal=system_principal(), case_refs=[first.code]
    )
    assert result.cases == 1
    assert contact_of(db, a).level == "close"
    assert contact_of(db, b).level == "secondary"
    assert contact_of(db, c) is None
    links = db.execute(select(func.count()).select_from(ContactLink)).scalar_one()
    again = tracing_service.expand(
        db_session=db, principal=system_principal(), case_refs=[first.code]
    )
    assert (again.close_ids, again.secondary_ids) == ([], [])
    assert db.execute(select(func.count()).select_from(ContactLink)).scalar_one() == links
    down = tracing_service.chain_down(db_session=db, principal=system_principal(), ref=first.id)
    kinds = sorted(kind for _, _, kind in down.edges)
    assert kinds == ["close", "secondary"]
    up = tracing_service.chain_up(db_session=db, principal=system_principal(), person_id=b.id)
    assert f"case:{first.id}" in up.nodes


def test_the_chain_follows_a_contact_who_became_a_case(db):
    first = case(db, factories.person(db))
    later_person = factories.person(db)
    expose(db, first, later_person)
    later = case(db, later_person)
    down = tracing_service.chain_down(db_session=db, principal=system_principal(), ref=first.id)
    assert (
        f"contact:{contact_of_any(db, later_person).id}",
        f"case:{later.id}",
        "became_case",
    ) in down.edges
    up = tracing_service.chain_up(db_session=db, principal=system_principal(), case=later.code)
    assert f"case:{first.id}" in up.nodes


def contact_of_any(db, person):
    return db.execute(select(Contact).where(Contact.person_id == person.id)).scalars().first()


def test_released_contacts_are_counted_in_the_figures(db):
    made = case(db, factories.person(db), classification="confirmed", clinical_type="mild")
    person = factories.person(db)
    expose(db, made, person)
    contact = contact_of(db, person)
    assert (
        tracing_service.release_contacts(
            db_session=db, principal=system_principal(), contact_ids=[contact.id]
        )
        == 1
    )
    figures = tracing_service.figures(db_session=db, day=TODAY, region_code="220000")
    assert (figures.close_cumulative, figures.close_released) == (1, 1)
    assert figures.new_confirmed_by_type == {"mild": 1}
    assert figures.new_confirmed_by_city == {"220100": 1}


def test_a_reclassified_case_is_counted_once(db):
    yesterday = TODAY - timedelta(days=1)
    made = case(db, factories.person(db), reported_on=yesterday)
    before = tracing_service.figures(db_session=db, day=yesterday, region_code="220100")
    tracing_service.reclassify(
        db_session=db, principal=system_principal(), ref=made.id, clinical_type="mild"
    )
    day1 = tracing_service.figures(db_session=db, day=yesterday, region_code="220100")
    day2 = tracing_service.figures(db_session=db, day=TODAY, region_code="220100")
    assert before.new_asymptomatic == day1.new_asymptomatic == 1
    assert day1.new_confirmed == 0
    assert (day2.new_confirmed, day2.reclassified, day2.new_asymptomatic) == (1, 1, 0)


def _edges(db, triples: list[tuple[int, int, date]]) -> None:
    from bastion.core.db import bulk_insert

    rows = []
    for a, b, d in triples:
        rows += [(a, b, d, "household"), (b, a, d, "household")]
    bulk_insert(db, "exposure_edges", ["person_id", "other_id", "exposed_on", "setting"], rows)


def test_investigators_name_the_exposed_by_id_number_and_the_lookup_is_audited(db):
    made = case(db, factories.person(db))
    number = make_resident_id("220102", date(1975, 2, 14), 731)
    neighbour = registry_service.create(
        db_session=db,
        principal=system_principal(),
        data=PersonCreate(name="李娜", id_number=number, region_code=NANGUAN_GRID),
    )
    unknown = make_resident_id("220102", date(1990, 7, 1), 733)
    malformed = number[:-1] + ("0" if number[-1] != "0" else "1")  # wrong check character
    before = db.execute(select(func.count()).select_from(AuditEntry)).scalar_one()

    def item(**who):
        return ExposureIn(case=made.code, exposed_on=TODAY, setting="household", **who)

    report = tracing_service.record_exposures(
        db_session=db,
        principal=system_principal(),
        items=[
            item(id_number=number),
            item(id_number=unknown),
            item(id_number=malformed),
            item(id_number=number, person_id=neighbour.id),
            item(),
        ],
    )
    assert report.accepted == 1
    assert contact_of(db, neighbour).level == "close"
    refused = [(p.row, p.field, p.reason) for p in report.problems]
    assert refused[0] == (2, "id_number", "person.not_found")
    assert refused[1][:2] == (3, "id_number")
    assert refused[2:] == [
        (4, "person_id", "exposure.one_person"),
        (5, "person_id", "exposure.one_person"),
    ]
    entries = db.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()[before:]
    [lookup] = [e for e in entries if e.action == "person.lookup"]
    assert json.loads(lookup.details) == {"purpose": "exposures", "numbers": 2, "found": 1}
    assert number not in lookup.details  # the numbers themselves are never written


def test_a_cases_household_is_traced_from_the_registry_without_recorded_exposures(db):
    index = factories.person(db, household="HH-TRACE-1")
    spouse = factories.person(db, household="HH-TRACE-1")
    child = factories.person(db, household="HH-TRACE-1")
    ill = factories.person(db, household="HH-TRACE-1")
    neighbour = factories.person(db, household="HH-TRACE-2")
    case(db, ill)  # already a case: not a contact of the other
    first = case(db, index)
    result = tracing_service.expand(
        db_session=db, principal=system_principal(), case_refs=[first.code]
    )
    assert {contact_of(db, p).level for p in (spouse, child)} == {"close"}
    assert contact_of(db, spouse).last_exposure_on == TODAY  # living together: up to today
    assert contact_of(db, ill) is None
    assert contact_of(db, neighbour) is None
    assert len(result.close_ids) == 2
    [link] = tracing_service.links_of(db, contact_of(db, spouse).id)
    assert (link.case_id, link.via_contact_id) == (first.id, None)
    again = tracing_service.expand(
        db_session=db, principal=system_principal(), case_refs=[first.code]
    )
    assert (again.close_ids, again.secondary_ids) == ([], [])
