"""The missed-round-test rule spares people under isolation control or with an open case during
the round (tested on their own schedule; ADR 0009), and only them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.healthcode import store
from bastion.healthcode.models import CodeStatus
from bastion.healthcode.rules import Kind
from bastion.healthcode.sources import gather
from bastion.isolation.models import Placement
from bastion.registry.models import Person
from tests.integration.healthcode import records
from tests.support import factories
from tests.support import pool_factories as pf

#: 08:00 on 25 March 2022 in Shanghai; the deadline is 08:00 on the 26th: the round's days are
#: the 25th and the 26th.
START = datetime(2022, 3, 25, 0, 0, tzinfo=UTC)
DAY_BEFORE = date(2022, 3, 24)
DAY_AFTER = date(2022, 3, 27)


def _placed(
    db: Session,
    person: Person,
    *,
    starts_on: date,
    status: str = "active",
    released_on: date | None = None,
    setting: str = "centralised",
) -> Placement:
    row = records.placement(
        db,
        person,
        reason="close_contact",
        source_type="contact",
        source_id=800_000 + person.id,
        setting=setting,
        status=status,
    )
    row.starts_on = starts_on
    row.planned_end_on = starts_on + timedelta(days=7)
    row.released_on = released_on
    db.flush()
    return row


def _colour(db: Session, person: Person) -> tuple[str, str | None]:
    """The colour and the rule that gave it; green (no row, or back to the default) as one."""
    s = db.get(CodeStatus, person.id)
    return ("green", None) if s is None or s.colour == "green" else (s.colour, s.rule.split(":")[1])


def test_people_under_control_during_the_round_do_not_miss_it(db: Session) -> None:
    with clock.frozen(START):
        rnd = factories.round_(db, code="R-HC-EXC", starts_at=START)
        site = factories.site(db)
        people = {
            name: factories.person(db)
            for name in (
                "neighbour",
                "sampled",
                "at_home",
                "monitored",
                "released_after",
                "case_closed_after",
                "released_before",
                "placed_after",
                "cancelled",
                "case_closed_before",
            )
        }
    p = people
    pf.tube(db, rnd, site, "TP00000071", [p["sampled"]], at=START + timedelta(hours=1))
    # Under control during the round, in every setting and state that counts.
    _placed(db, p["at_home"], starts_on=DAY_BEFORE, setting="home")
    _placed(db, p["monitored"], starts_on=START.date(), setting="home_monitoring")
    _placed(db, p["released_after"], starts_on=DAY_BEFORE, status="released", released_on=DAY_AFTER)
    with clock.frozen(START - timedelta(days=3)):
        case = records.case(db, p["case_closed_after"])
    case.status, case.closed_on = "discharged", DAY_AFTER
    # Not under control during the round: they were required like anyone else.
    _placed(
        db, p["released_before"], starts_on=date(2022, 3, 17), status="released",
        released_on=DAY_BEFORE,
    )  # fmt: skip
    _placed(db, p["placed_after"], starts_on=DAY_AFTER)
    _placed(db, p["cancelled"], starts_on=DAY_BEFORE, status="cancelled")
    with clock.frozen(START - timedelta(days=10)):
        early = records.case(db, p["case_closed_before"])
    early.status, early.closed_on = "discharged", DAY_BEFORE
    db.flush()

    now = rnd.deadline_at + timedelta(days=1)
    with clock.frozen(now):
        evidence = gather(
            db_session=db,
            rules=store.current_rules(db, now),
            person_ids=[x.id for x in p.values()],
            now=now,
        )
        store.recompute_region(db_session=db, region_code="220100")
    missed = {
        name
        for name, person in p.items()
        if any(
            e.kind == Kind.missed_round_test and e.record_id == rnd.id for e in evidence[person.id]
        )
    }
    assert missed == {
        "neighbour",
        "released_before",
        "placed_after",
        "cancelled",
        "case_closed_before",
    }
    # The untested neighbour turns yellow; the people spared keep the code their own records
    # give (green once released or discharged), not a missed test.
    assert _colour(db, p["neighbour"]) == ("yellow", "missed_round_test")
    assert _colour(db, p["released_before"]) == ("yellow", "missed_round_test")
    assert _colour(db, p["case_closed_before"]) == ("yellow", "missed_round_test")
    assert _colour(db, p["released_after"]) == ("green", None)
    assert _colour(db, p["case_closed_after"]) == ("green", None)
    assert _colour(db, p["sampled"]) == ("green", None)
    assert _colour(db, p["monitored"]) == ("yellow", "health_monitoring")
    assert _colour(db, p["at_home"]) == ("red", "placement_close")


def test_a_released_person_is_not_turned_yellow_by_a_round_spent_in_isolation(
    db: Session,
) -> None:
    """The code of an isolated person does not change when the round's deadline passes, nor
    when they are released afterwards; their untested neighbour's does."""
    with clock.frozen(START):
        rnd = factories.round_(db, code="R-HC-EXC-2", starts_at=START)
        neighbour, isolated = factories.person(db), factories.person(db)
    placement = _placed(db, isolated, starts_on=DAY_BEFORE, setting="home_monitoring")
    with clock.frozen(START + timedelta(hours=1)):
        store.recompute_region(db_session=db, region_code="220100")
    assert _colour(db, isolated) == ("yellow", "health_monitoring")
    assert _colour(db, neighbour) == ("green", None)

    after = rnd.deadline_at + timedelta(hours=1)
    with clock.frozen(after):
        store.recompute_people(db_session=db, person_ids=[neighbour.id, isolated.id])
    assert _colour(db, neighbour) == ("yellow", "missed_round_test")
    assert _colour(db, isolated) == ("yellow", "health_monitoring")

    placement.status, placement.released_on = "released", DAY_AFTER
    db.flush()
    with clock.frozen(after + timedelta(days=1)):
        store.recompute_people(db_session=db, person_ids=[neighbour.id, isolated.id])
    assert _colour(db, isolated) == ("green", None)
    assert _colour(db, neighbour) == ("yellow", "missed_round_test")
