"""Cases through the service: reporting, one open case per person, reclassification counted
once, discharge / release / death, future dates refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bastion.core import clock
from bastion.core.errors import Conflict, Forbidden, InvalidInput, InvalidTransition, NotFound
from bastion.tracing import service as tracing_service
from bastion.tracing.schemas import CaseCreate
from tests.integration.tracing.support import NOW, TODAY, case
from tests.support import factories
from tests.support.world import CHANGYI_GRID, MEIHEKOU_GRID


@pytest.fixture(autouse=True)
def _frozen():
    with clock.frozen(NOW):
        yield


def test_a_reported_case_carries_residence_city_and_report_day(db, principal):
    person = factories.person(db)
    made = tracing_service.create_case(
        db_session=db,
        principal=principal("investigator"),
        data=CaseCreate(
            person_id=person.id,
            classification="confirmed",
            clinical_type="mild",
            found_by="fever_clinic",
            onset_on=TODAY - timedelta(days=2),
        ),
    )
    assert made.status == "open"
    assert made.region_code == person.region_code
    assert made.reporting_city == "220100"
    assert made.reported_on == TODAY
    assert made.code.startswith("C")
    again = tracing_service.get_case(db_session=db, principal=principal("analyst"), ref=made.code)
    assert again.id == made.id


def test_a_province_run_city_reports_its_own_cases(db):
    person = factories.person(db, region_code=MEIHEKOU_GRID)
    assert case(db, person).reporting_city == "220581"


def test_a_second_open_case_for_the_same_person_is_refused(db):
    person = factories.person(db)
    first = case(db, person)
    with pytest.raises(Conflict) as caught:
        case(db, person)
    assert caught.value.params["case"] == first.code


def test_a_closed_case_lets_a_new_episode_open(db):
    person = factories.person(db)
    first = case(db, person)
    tracing_service.close_case(
        db_session=db, principal=principal_system(), ref=first.id, action="release"
    )
    assert case(db, person).id != first.id


def principal_system():
    from bastion.core.auth import system_principal

    return system_principal()


@pytest.mark.parametrize("field", ["onset_on", "sampled_on", "reported_on"])
def test_dates_in_the_future_are_refused(db, field):
    person = factories.person(db)
    with pytest.raises(InvalidInput) as caught:
        case(db, person, **{field: TODAY + timedelta(days=1)})
    assert caught.value.problems[0].field == field


def test_a_confirmed_case_needs_a_clinical_type(db):
    with pytest.raises(InvalidInput):
        case(db, factories.person(db), classification="confirmed")
    with pytest.raises(InvalidInput):
        case(db, factories.person(db), clinical_type="mild")


def test_reclassification_is_dated_and_happens_once(db):
    made = case(db, factories.person(db), reported_on=TODAY - timedelta(days=1))
    tracing_service.reclassify(
        db_session=db, principal=principal_system(), ref=made.id, clinical_type="ordinary"
    )
    assert (made.classification, made.clinical_type, made.reclassified_on) == (
        "confirmed",
        "ordinary",
        TODAY,
    )
    with pytest.raises(InvalidTransition):
        tracing_service.reclassify(
            db_session=db, principal=principal_system(), ref=made.id, clinical_type="severe"
        )


def test_discharge_is_for_confirmed_and_release_for_asymptomatic(db):
    made = case(db, factories.person(db))
    with pytest.raises(InvalidTransition):
        tracing_service.close_case(
            db_session=db, principal=principal_system(), ref=made.id, action="discharge"
        )
    tracing_service.close_case(
        db_session=db, principal=principal_system(), ref=made.id, action="release"
    )
    assert (made.status, made.closed_on) == ("released", TODAY)
    with pytest.raises(InvalidTransition):
        tracing_service.close_case(
            db_session=db, principal=principal_system(), ref=made.id, action="death"
        )


def test_a_death_closes_either_kind(db):
    made = case(db, factories.person(db), classification="confirmed", clinical_type="critical")
    tracing_service.close_case(
        db_session=db, principal=principal_system(), ref=made.id, action="death"
    )
    assert made.status == "died"


def test_a_case_outside_the_region_is_not_found_and_not_reportable(db, principal):
    outside = factories.person(db, region_code=CHANGYI_GRID)
    made = case(db, outside)
    with pytest.raises(NotFound):
        tracing_service.get_case(db_session=db, principal=principal("investigator"), ref=made.id)
    with pytest.raises((Forbidden, NotFound)):
        tracing_service.create_case(
            db_session=db,
            principal=principal("investigator"),
            data=CaseCreate(
                person_id=factories.person(db, region_code=CHANGYI_GRID).id,
                classification="asymptomatic",
            ),
        )


def test_readers_cannot_report(db, principal):
    with pytest.raises(Forbidden):
        tracing_service.create_case(
            db_session=db,
            principal=principal("analyst"),
            data=CaseCreate(person_id=factories.person(db).id, classification="asymptomatic"),
        )


def test_latest_case_day_is_per_region_subtree(db):
    assert tracing_service.latest_case_day(db_session=db, region_code="220100") is None
    case(db, factories.person(db), reported_on=TODAY - timedelta(days=3))
    case(db, factories.person(db, region_code=CHANGYI_GRID))
    assert tracing_service.latest_case_day(
        db_session=db, region_code="220100"
    ) == TODAY - timedelta(days=3)
    assert tracing_service.latest_case_day(db_session=db, region_code="220000") == TODAY


def test_a_hospital_in_another_city_reports_the_case(db):
    made = case(db, factories.person(db), reporting_city="220200")
    assert made.reporting_city == "220200"
    with pytest.raises(InvalidInput):
        case(db, factories.person(db), reporting_city="220102")
