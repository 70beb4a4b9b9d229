"""``bastion simulate outbreak`` on a tiny demo province, on both databases: after a testing
round over Changchun, a few days of outbreak land through the tracing and isolation services —
cases (the round's positives among them), contacts linked to them, placements, transfer batches,
test days — consistently, nothing dated after its day; running again changes nothing; another
seed or start, or days reaching today, are refused; and the command runs through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bastion.audit.models import AuditEntry
from bastion.cli.main import app
from bastion.core import clock, migrate
from bastion.core.db import make_engine
from bastion.core.errors import Conflict, InvalidInput
from bastion.isolation.models import Placement, PlacementTest, TransferBatch, TransferTask
from bastion.simulate import outbreak as sim
from bastion.simulate.outbreak_summary import summarise
from bastion.simulate.province import build_province
from bastion.simulate.round import simulate_round
from bastion.tracing.models import Case, Contact, ContactLink, Exposure
from tests.support import databases

#: About 7,000 people in the province, 2,700 of them in Changchun.
SCALE = 0.0003
PROVINCE = "220000"
BUILT = datetime(2022, 3, 10, 2, 0, tzinfo=UTC)
#: The round starts at local midnight of 11 March; the outbreak runs 14–19 March.
ROUND_START = datetime(2022, 3, 10, 16, 0, tzinfo=UTC)
START = date(2022, 3, 14)
DAYS = 6
END = date(2022, 3, 19)
NOW = datetime(2022, 3, 25, 4, 0, tzinfo=UTC)
SEED = 3


@pytest.fixture(scope="module")
def province(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A tiny province with a committed round over Changchun and a committed outbreak."""
    if backend == "sqlite":
        url, name = databases.sqlite_url(tmp_path_factory.mktemp("outbreak")), None
    else:
        if databases.pg_reachable() is not None:
            pytest.skip("!!! PostgreSQL unreachable")
        name, url = databases.create_pg_database("bastion_outbreak")
    migrate.upgrade(url)
    engine = make_engine(url)
    with clock.frozen(BUILT), Session(engine) as session, session.begin():
        build_province(db_session=session, scale=SCALE, seed=7)
    with clock.frozen(NOW), Session(engine) as session, session.begin():
        simulate_round(
            db_session=session,
            region_code="220100",
            prevalence=0.01,
            seed=SEED,
            start=ROUND_START,
        )
    with clock.frozen(NOW), Session(engine) as session:
        with session.begin():
            run = sim.OutbreakRun(
                db_session=session, region_code=PROVINCE, seed=SEED, days=DAYS, start=START
            )
        for _ in range(DAYS):
            with session.begin():
                run.advance(session)
    yield engine
    engine.dispose()
    if name:
        databases.drop_pg_database(name)


@pytest.fixture
def session(province: Engine) -> Iterator[Session]:
    with Session(province) as s:
        s.begin()
        yield s
        s.rollback()


def _count(session: Session, model: Any, *where: Any) -> int:
    return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def _counts(session: Session) -> dict[str, int]:
    tables = (Case, Contact, ContactLink, Exposure, Placement, PlacementTest, TransferTask)
    out = {m.__tablename__: _count(session, m) for m in tables}
    out["batches"] = _count(session, TransferBatch)
    out["audit"] = _count(session, AuditEntry)
    return out


# What lands -------------------------------------------------------------------------------------


def test_cases_are_reported_every_day_of_the_outbreak_and_only_then(session):
    days = dict(
        session.execute(select(Case.reported_on, func.count()).group_by(Case.reported_on)).all()
    )
    assert days, "no cases"
    assert min(days) == START
    assert max(days) <= END
    assert sum(days.values()) >= 10
    types = dict(
        session.execute(
            select(Case.classification, func.count()).group_by(Case.classification)
        ).all()
    )
    assert types.get("asymptomatic", 0) > 0
    assert types.get("confirmed", 0) > 0
    kinds = set(
        session.execute(select(Case.clinical_type).where(Case.classification == "confirmed"))
        .scalars()
        .all()
    )
    assert kinds <= {"mild", "ordinary", "severe", "critical"}
    assert "mild" in kinds


def test_the_rounds_positives_open_the_outbreak_on_day_one(session):
    first = session.execute(
        select(Case.found_by, Case.source_task_id).where(Case.reported_on == START)
    ).all()
    screened = [f for f in first if f.found_by == "community_screening"]
    assert screened
    # The flow from positive results links a case to the retest task that made it positive.
    assert any(f.source_task_id is not None for f in screened)
    later = set(
        session.execute(select(Case.found_by).where(Case.reported_on > START)).scalars().all()
    )
    assert later & {"isolation", "fever_clinic", "community_screening"}


def test_every_contact_is_linked_to_a_case_and_placed(session):
    contacts = session.execute(select(Contact.id, Contact.level, Contact.identified_on)).all()
    levels = {c.level for c in contacts}
    assert levels == {"close", "secondary"}
    assert all(START <= c.identified_on <= END for c in contacts)
    unlinked = session.execute(
        select(func.count())
        .select_from(Contact)
        .where(~select(ContactLink.id).where(ContactLink.contact_id == Contact.id).exists())
    ).scalar_one()
    assert unlinked == 0
    placed = set(
        session.execute(
            select(Placement.source_id).where(Placement.source_type == "contact")
        ).scalars()
    )
    assert {c.id for c in contacts} <= placed
    # Secondary contacts come through a close contact.
    vias = session.execute(
        select(ContactLink.via_contact_id).where(ContactLink.level == "secondary")
    ).scalars()
    assert all(v is not None for v in vias)


def test_cases_are_placed_for_treatment_and_contacts_for_isolation(session):
    settings = dict(
        session.execute(select(Placement.reason, func.count()).group_by(Placement.reason)).all()
    )
    assert settings.get("case", 0) > 0
    assert settings.get("close_contact", 0) > 0
    case_settings = set(
        session.execute(select(Placement.setting).where(Placement.reason == "case")).scalars()
    )
    assert case_settings <= {"hospital", "makeshift"}
    assert all(p.starts_on <= END for p in session.execute(select(Placement)).scalars())


def test_transfers_go_in_batches_mostly_arrive_and_some_wait(session):
    batches = dict(
        session.execute(
            select(TransferBatch.status, func.count()).group_by(TransferBatch.status)
        ).all()
    )
    assert batches.get("arrived", 0) > 0
    assert set(batches) <= {"arrived", "failed"}
    tasks = dict(
        session.execute(
            select(TransferTask.status, func.count()).group_by(TransferTask.status)
        ).all()
    )
    assert tasks.get("arrived", 0) > tasks.get("pending", 0) + tasks.get("failed", 0)
    # Some transfers wait past the day (the daily closure's red flags from the next day on).
    assert tasks.get("pending", 0) > 0
    # Arrival made every arrived person's placement start (or they have moved on since).
    stuck = session.execute(
        select(func.count())
        .select_from(TransferTask)
        .join(Placement, Placement.id == TransferTask.placement_id)
        .where(TransferTask.status == "arrived", Placement.status == "pending")
    ).scalar_one()
    assert stuck == 0
    failed = session.execute(
        select(TransferBatch.failure_reason).where(TransferBatch.status == "failed")
    ).scalars()
    assert all(reason for reason in failed)


def test_test_days_are_recorded_negative_on_or_after_their_day(session):
    rows = session.execute(
        select(PlacementTest.due_on, PlacementTest.tested_on, PlacementTest.result).where(
            PlacementTest.result.is_not(None)
        )
    ).all()
    assert rows
    assert {r.result for r in rows} == {"negative"}
    assert all(r.due_on <= r.tested_on <= END for r in rows)


def test_each_day_leaves_one_marker_and_the_summary_reads_back_the_record(session):
    marked = sim.markers(session)
    assert list(marked) == [PROVINCE]
    assert [m.day for m in marked[PROVINCE]] == [date(2022, 3, d) for d in range(14, 20)]
    assert {(m.seed, m.start) for m in marked[PROVINCE]} == {(SEED, START)}
    summary = summarise(db_session=session, region_code=PROVINCE, start=START, end=END)
    assert summary.cases == _count(session, Case)
    assert sum(c + a for _, c, a in summary.curve) == summary.cases
    assert sum(c + a for _, _, c, a in summary.cases_by_city) == summary.cases
    assert summary.contacts.get("close", 0) == _count(session, Contact, Contact.level == "close")
    assert summary.batches == _count(session, TransferBatch)


# Running again ----------------------------------------------------------------------------------


def test_running_the_same_days_again_changes_nothing(session):
    before = _counts(session)
    with clock.frozen(NOW):
        written = sim.simulate_outbreak(
            db_session=session, region_code=PROVINCE, seed=SEED, days=DAYS, start=START
        )
    assert written == [None] * DAYS
    assert _counts(session) == before


def test_continuing_without_a_start_takes_the_running_outbreaks_first_day(session):
    with clock.frozen(NOW):
        run = sim.OutbreakRun(db_session=session, region_code=PROVINCE, seed=SEED, days=DAYS)
    assert run.start == START
    assert run.pending_days() == []


@pytest.mark.parametrize(
    ("given", "error", "key"),
    [
        ({"seed": SEED + 1, "start": START}, Conflict, "sim.outbreak_differs"),
        ({"seed": SEED, "start": date(2022, 3, 13)}, Conflict, "sim.outbreak_differs"),
        ({"seed": SEED, "start": date(2022, 3, 22)}, InvalidInput, None),
        ({"seed": SEED, "start": START, "days": 0}, InvalidInput, None),
        (
            {"seed": SEED, "start": START, "region_code": "220200"},
            Conflict,
            "sim.outbreak_elsewhere",
        ),
        ({"seed": SEED, "start": START, "region_code": "999999"}, InvalidInput, None),
    ],
)
def test_it_refuses_another_seed_start_region_or_days_reaching_today(session, given, error, key):
    args: dict[str, Any] = {"region_code": PROVINCE, "days": DAYS} | given
    before = _counts(session)
    with clock.frozen(NOW), pytest.raises(error) as refused:
        sim.OutbreakRun(db_session=session, **args)
    if key is not None:
        assert refused.value.key == key
    assert _counts(session) == before


# The command ------------------------------------------------------------------------------------


def _run(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output, result.output
    return result


def test_the_command_grows_an_outbreak_and_a_second_run_changes_nothing(cli_env, tmp_path: Path):
    built = _run("simulate", "province", "--scale", "0.0002", "--seed", "2")
    assert built.exit_code == 0, built.output
    first = _run("simulate", "outbreak", "--days", "3", "--seed", "4", "--lang", "en")
    assert first.exit_code == 0, first.output
    flat = " ".join(first.output.split())
    assert "Simulated outbreak" in flat
    assert "3 day(s) simulated" in flat
    assert "contacts traced" in flat
    assert "transfers" in flat
    engine = make_engine(cli_env["BASTION_DATABASE_URL"])
    with Session(engine) as s:
        before = _counts(s)
    again = _run("simulate", "outbreak", "--days", "3", "--seed", "4")
    assert again.exit_code == 0, again.output
    assert "0 day(s) simulated, 3 already" in " ".join(again.output.split())
    with Session(engine) as s:
        assert _counts(s) == before
    other = _run("simulate", "outbreak", "--days", "3", "--seed", "5")
    assert other.exit_code == 1
    assert "--seed 4" in " ".join(other.output.split())
    engine.dispose()
