"""``bastion simulate round`` on a tiny demo province, on both databases: a whole round lands
through the bulk paths (scans, boxes, results, retests), its people come by household on a daily
curve, nothing is dated after the clock, running it again changes nothing, the same seed gives
the same tubes on another database, and the prevalence drives positives, holds and retests."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bastion.audit.models import AuditEntry
from bastion.cli import simulate_round as round_command
from bastion.core import clock, migrate
from bastion.core.auth import system_principal
from bastion.core.db import make_engine
from bastion.core.errors import Conflict, InvalidInput
from bastion.regions import service as region_service
from bastion.registry.models import Person
from bastion.simulate import round as sim
from bastion.simulate.province import build_province
from bastion.simulate.round import tubes as sim_tubes
from bastion.testing import coverage
from bastion.testing.models import (
    Box,
    BoxEvent,
    BoxScan,
    Lab,
    PoolHold,
    RetestTask,
    Round,
    RoundCoverage,
    ScanBatch,
    Site,
    SiteGrid,
    Tube,
    TubeMember,
)
from tests.support import databases

#: Changchun at this scale: about 2,700 people in a dozen communities.
SCALE = 0.0003
REGION = "220100"
PROVINCE_SEED = 7
BUILT = datetime(2022, 3, 20, 2, 0, tzinfo=UTC)
#: Local midnight (Asia/Shanghai) of 25 March 2022, and the clock three days later.
START = datetime(2022, 3, 24, 16, 0, tzinfo=UTC)
NOW = datetime(2022, 3, 28, 4, 0, tzinfo=UTC)
SEED = 5
PREVALENCE = 0.02


def _new_database(backend: str, directory: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        url, name = databases.sqlite_url(directory), None
    else:
        if databases.pg_reachable() is not None:
            pytest.skip("!!! PostgreSQL unreachable")
        name, url = databases.create_pg_database("bastion_round")
    migrate.upgrade(url)
    return url, name


def _province(backend: str, directory: Path) -> tuple[Engine, str | None]:
    url, name = _new_database(backend, directory)
    engine = make_engine(url)
    with clock.frozen(BUILT), Session(engine) as session, session.begin():
        build_province(db_session=session, scale=SCALE, seed=PROVINCE_SEED)
    return engine, name


def simulate(session: Session, **given: Any) -> sim.RoundSummary:
    """The round as the tests run it: Changchun, started on 25 March, the clock on the 28th."""
    args: dict[str, Any] = {
        "region_code": REGION,
        "prevalence": PREVALENCE,
        "seed": SEED,
        "start": START,
    }
    args.update(given)
    with clock.frozen(NOW):
        return sim.simulate_round(db_session=session, **args)


@pytest.fixture(scope="module")
def province(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A tiny province in a database of its own, holding one committed simulated round."""
    engine, name = _province(backend, tmp_path_factory.mktemp("round"))
    yield engine
    engine.dispose()
    if name:
        databases.drop_pg_database(name)


@pytest.fixture(scope="module")
def simulated(province: Engine) -> sim.RoundSummary:
    with Session(province) as session, session.begin():
        return simulate(session)


@pytest.fixture
def session(province: Engine, simulated: sim.RoundSummary) -> Iterator[Session]:
    """A session whose work is rolled back: each test starts from the province and its round."""
    with Session(province) as s:
        s.begin()
        yield s
        s.rollback()


def _round(session: Session, code: str) -> Round:
    return session.execute(select(Round).where(Round.code == code)).scalar_one()


def _count(session: Session, model: Any, *where: Any) -> int:
    return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def bindings(session: Session, code: str) -> dict[str, list[str]]:
    """Tube barcode → the tokens of its members in scan order, for a round."""
    out: dict[str, list[str]] = defaultdict(list)
    for barcode, token in session.execute(
        select(Tube.barcode, Person.token)
        .join(TubeMember, TubeMember.tube_id == Tube.id)
        .join(Person, Person.id == TubeMember.person_id)
        .where(Tube.round_id == _round(session, code).id)
        .order_by(Tube.barcode, TubeMember.position)
    ):
        out[barcode].append(token)
    return dict(out)


def _figures(summary: sim.RoundSummary) -> sim.RoundSummary:
    """The summary without what may differ between runs (wall-clock seconds, the round id)."""
    return replace(summary, seconds=0.0, round_id=0)


# The round ------------------------------------------------------------------------------------


def test_the_round_lands_through_the_bulk_paths(session, simulated):
    rnd = _round(session, simulated.round_code)
    assert rnd.code == f"SIM-{REGION}-{SEED}"
    assert simulated.refused_scans == simulated.refused_results == 0
    residents = _count(session, Person, Person.region_code.startswith("2201"))
    assert simulated.required == residents
    assert 0.9 * residents < simulated.sampled < 0.99 * residents
    members = TubeMember.round_id == rnd.id, TubeMember.retest.is_(False)
    # Every sampled person is bound once, and every binding came through a scan batch.
    assert _count(session, TubeMember, *members) == simulated.sampled
    assert (
        session.execute(
            select(func.count(func.distinct(TubeMember.person_id))).where(*members)
        ).scalar_one()
        == simulated.sampled
    )
    batches = session.execute(
        select(ScanBatch.key, ScanBatch.source, ScanBatch.accepted).where(
            ScanBatch.round_id == rnd.id
        )
    ).all()
    assert all(
        key.startswith(f"sim:{rnd.code}:") and source == "simulation" for key, source, _ in batches
    )
    assert sum(n for *_, n in batches) == simulated.sampled + simulated.retest_tubes
    assert (
        session.execute(
            select(func.count()).where(*members, TubeMember.batch_id.is_(None))
        ).scalar_one()
        == 0
    )
    # Tubes of at most ten in the default policy, every one boxed, received and resulted.
    tubes = session.execute(
        select(
            Tube.kind, Tube.capacity, Tube.member_count, Tube.state, Tube.box_id, Tube.result
        ).where(Tube.round_id == rnd.id)
    ).all()
    assert len(tubes) == simulated.tubes + simulated.retest_tubes
    assert {t.state for t in tubes} == {"resulted"}
    assert all(t.box_id is not None and t.result is not None for t in tubes)
    pooled = [t for t in tubes if t.kind != "retest"]
    assert {t.kind for t in pooled} == {"pooled"}
    assert all(t.capacity == 10 and 1 <= t.member_count <= 10 for t in pooled)
    assert sum(t.member_count for t in pooled) == simulated.sampled
    assert all(t.capacity == 1 and t.member_count == 1 for t in tubes if t.kind == "retest")
    # Boxes handed over three times, scanned in by the city's lab, reconciled.
    assert _count(session, Box, Box.round_id == rnd.id) == simulated.boxes
    assert (
        session.execute(
            select(func.count())
            .select_from(Box)
            .where(Box.round_id == rnd.id, Box.state != "received")
        ).scalar_one()
        == 0
    )
    events = Counter(
        session.execute(
            select(BoxEvent.event)
            .join(Box, Box.id == BoxEvent.box_id)
            .where(Box.round_id == rnd.id)
        ).scalars()
    )
    assert events == dict.fromkeys(("packed", "picked_up", "received"), simulated.boxes)
    assert _count(session, BoxScan) >= len(tubes)
    lab = session.execute(select(Lab).where(Lab.code == "SIMLAB-220100-1")).scalar_one()
    assert lab.name == "长春市第1检测实验室"
    assert (
        session.execute(
            select(func.count())
            .select_from(Tube)
            .where(Tube.round_id == rnd.id, Tube.lab_id != lab.id)
        ).scalar_one()
        == 0
    )
    assert simulated.labs == 1
    assert simulated.sites == _count(session, Site, Site.code.startswith("SIM-2201"))
    # The coverage counters were kept by the same path.
    status = coverage.round_status(db_session=session, principal=system_principal(), ref=rnd.code)
    assert status.totals.sampled == simulated.sampled
    assert status.totals.resulted == simulated.sampled
    assert status.totals.positive_tubes == simulated.positive_tubes


def test_sites_serve_their_community_and_a_few_people_come_off_grid(session, simulated):
    rnd = _round(session, simulated.round_code)
    served = defaultdict(set)
    for site_id, grid in session.execute(select(SiteGrid.site_id, SiteGrid.region_code)):
        served[site_id].add(grid)
    sites = session.execute(select(Site).where(Site.code.startswith("SIM-2201"))).scalars().all()
    for site in sites:
        assert all(grid.startswith(site.region_code) for grid in served[site.id]), site.code
        assert site.opens_at.hour == 7
        assert site.closes_at.hour == 22
    rows = session.execute(
        select(TubeMember.region_code, TubeMember.off_grid, Tube.site_id)
        .join(Tube, Tube.id == TubeMember.tube_id)
        .where(TubeMember.round_id == rnd.id, TubeMember.retest.is_(False))
    ).all()
    for home, off_grid, site_id in rows:
        assert off_grid == (home not in served[site_id])
    off = sum(1 for r in rows if r.off_grid)
    assert off == simulated.off_grid
    assert 0 < off < 0.05 * len(rows)


def test_households_come_together_on_a_daily_curve(session, simulated):
    rnd = _round(session, simulated.round_code)
    rows = session.execute(
        select(Person.household_id, TubeMember.scanned_at, Tube.site_id)
        .join(TubeMember, TubeMember.person_id == Person.id)
        .join(Tube, Tube.id == TubeMember.tube_id)
        .where(TubeMember.round_id == rnd.id, TubeMember.retest.is_(False))
    ).all()
    by_household = defaultdict(list)
    for household, scanned, site in rows:
        by_household[household].append((scanned, site))
    for visits in by_household.values():
        times = [t for t, _ in visits]
        assert len({s for _, s in visits}) == 1  # one site for the whole household
        assert max(times) - min(times) <= timedelta(minutes=5)
    hours = Counter(clock.to_local(t).hour for _, t, _ in rows)
    assert min(hours) >= 7
    assert max(hours) <= 22
    assert hours[8] > 2 * hours[12]  # morning peak over the lunch dip
    assert hours[18] + hours[19] > 2 * (hours[12] + hours[13])  # evening peak
    assert all(rnd.starts_at <= t < rnd.deadline_at for _, t, _ in rows)


def test_nothing_is_dated_after_the_clock_and_each_step_follows_the_last(session, simulated):
    rnd = _round(session, simulated.round_code)
    assert rnd.created_at < rnd.starts_at
    tubes = session.execute(
        select(
            Tube.first_scan_at,
            Box.packed_at,
            Box.picked_up_at,
            Box.received_at,
            Tube.received_at,
            Tube.tested_at,
            Tube.uploaded_at,
        )
        .join(Box, Box.id == Tube.box_id)
        .where(Tube.round_id == rnd.id)
    ).all()
    for row in tubes:
        assert rnd.starts_at <= row[0] < row[1] < row[2] < row[3] == row[4] < row[5] <= row[6]
        assert row[4] + timedelta(hours=1) <= row[5] <= row[4] + timedelta(hours=4)
        assert row[6] <= NOW
    last_scans = session.execute(
        select(func.max(TubeMember.scanned_at), Tube.box_id)
        .join(Tube, Tube.id == TubeMember.tube_id)
        .where(Tube.round_id == rnd.id)
        .group_by(Tube.box_id)
    ).all()
    packed = dict(session.execute(select(Box.id, Box.packed_at)).all())
    assert all(scanned < packed[box] for scanned, box in last_scans)
    for column in (
        ScanBatch.received_at,
        PoolHold.created_at,
        PoolHold.closed_at,
        RetestTask.created_at,
        RetestTask.closed_at,
        BoxEvent.at,
        TubeMember.scanned_at,
        AuditEntry.at,
    ):
        latest = session.execute(select(func.max(column))).scalar_one()
        assert latest is None or latest <= NOW, column
    assert simulated.last_upload_at is not None
    assert simulated.last_upload_at <= NOW
    assert simulated.span is not None
    assert timedelta(hours=24) < simulated.span < timedelta(hours=48)


def test_running_the_round_again_changes_nothing(session, simulated):
    tables = (Round, Site, SiteGrid, Lab, Tube, TubeMember, ScanBatch, Box, BoxEvent, BoxScan)
    more = (PoolHold, RetestTask, RoundCoverage, AuditEntry)
    before = {m.__name__: _count(session, m) for m in (*tables, *more)}
    uploads = session.execute(select(func.max(Tube.uploaded_at), func.count(Tube.result))).one()
    again = simulate(session)
    assert _figures(again) == _figures(simulated)
    assert {m.__name__: _count(session, m) for m in (*tables, *more)} == before
    assert (
        session.execute(select(func.max(Tube.uploaded_at), func.count(Tube.result))).one()
        == uploads
    )


def test_the_same_seed_binds_the_same_people_on_another_database(
    backend, tmp_path_factory, session, simulated
):
    engine, name = _province(backend, tmp_path_factory.mktemp("again"))
    try:
        with Session(engine) as other, other.begin():
            summary = simulate(other)
            assert bindings(other, simulated.round_code) == bindings(session, simulated.round_code)
            assert _figures(summary) == _figures(simulated)
            different = simulate(other, seed=SEED + 1)
            assert bindings(other, different.round_code) != bindings(other, summary.round_code)
    finally:
        engine.dispose()
        if name:
            databases.drop_pg_database(name)


# Prevalence -----------------------------------------------------------------------------------


def test_prevalence_zero_gives_no_positive_tube(session):
    summary = simulate(session, prevalence=0.0, seed=21)
    rnd = _round(session, summary.round_code)
    assert summary.sampled > 0
    assert summary.positive_tubes == summary.positive_people == summary.infected_sampled == 0
    assert summary.holds == 0
    assert _count(session, Tube, Tube.round_id == rnd.id, Tube.result == "positive") == 0
    # Invalid tubes (rare) send their members to retests, all negative.
    assert summary.retest_tasks_open == 0
    assert summary.retest_tubes == summary.retest_tasks
    assert summary.refused_scans == summary.refused_results == 0


def test_a_high_prevalence_holds_pools_and_the_retests_close_them(session):
    summary = simulate(session, prevalence=0.05, seed=22)
    rnd = _round(session, summary.round_code)
    assert summary.refused_scans == summary.refused_results == 0
    assert summary.holds > 0
    assert summary.holds == summary.positive_tubes
    assert summary.holds_confirmed > 0
    assert summary.holds_open == 0
    assert summary.retest_tasks >= summary.people_in_positive_tubes > summary.holds
    assert summary.retest_tasks_open == 0
    # Every infected person sampled is found, by their own retest.
    assert summary.positive_people == summary.infected_sampled > 0
    infected_share = summary.infected_sampled / summary.sampled
    assert 0.02 < infected_share < 0.1
    tasks = session.execute(
        select(
            RetestTask.state, RetestTask.tube_id, RetestTask.closed_at, RetestTask.created_at
        ).where(RetestTask.round_id == rnd.id)
    ).all()
    assert {t.state for t in tasks} <= {"negative", "positive"}
    assert all(t.tube_id is not None and t.created_at < t.closed_at <= NOW for t in tasks)
    retests = session.execute(
        select(Tube.result, Tube.ct_orf1ab, Tube.ct_n).where(
            Tube.round_id == rnd.id, Tube.kind == "retest"
        )
    ).all()
    assert len(retests) == summary.retest_tubes == summary.retest_tasks
    positives = [r for r in retests if r.result == "positive"]
    assert len(positives) == summary.positive_people
    assert all(18 <= r.ct_orf1ab <= 35 and 18 <= r.ct_n <= 35 for r in positives)
    negatives = session.execute(
        select(Tube.ct_orf1ab, Tube.ct_n).where(Tube.round_id == rnd.id, Tube.result == "negative")
    ).all()
    assert all(r == (None, None) for r in negatives)
    # A confirmed hold has a positive member; nobody is held any more.
    for hold_id, outcome in session.execute(
        select(PoolHold.id, PoolHold.outcome).where(PoolHold.round_id == rnd.id)
    ):
        states = set(
            session.execute(select(RetestTask.state).where(RetestTask.hold_id == hold_id)).scalars()
        )
        assert outcome == ("confirmed" if "positive" in states else "reversed")


def test_false_positive_pools_are_reversed_by_their_retests(session, monkeypatch):
    monkeypatch.setattr(sim_tubes, "FALSE_POSITIVE", 0.2)
    summary = simulate(session, prevalence=0.001, seed=23)
    assert summary.holds_reversed > 0
    assert summary.holds == summary.holds_confirmed + summary.holds_reversed
    assert summary.holds_open == summary.retest_tasks_open == 0
    rnd = _round(session, summary.round_code)
    reversed_holds = session.execute(
        select(PoolHold.id).where(PoolHold.round_id == rnd.id, PoolHold.outcome == "reversed")
    ).scalars()
    for hold_id in reversed_holds:
        states = set(
            session.execute(select(RetestTask.state).where(RetestTask.hold_id == hold_id)).scalars()
        )
        assert states == {"negative"}


def test_zones_set_the_tubes_household_tubes_in_lockdown(session, simulated):
    communities = sorted(
        {
            site.region_code
            for site in session.execute(
                select(Site).where(Site.code.startswith("SIM-2201"))
            ).scalars()
        }
    )
    lockdown, control = communities[0], communities[1]
    on = clock.to_local(START).date() - timedelta(days=1)
    with clock.frozen(NOW):
        for code, kind in ((lockdown, "lockdown"), (control, "control")):
            region_service.designate_zone(
                db_session=session,
                principal=system_principal(),
                region_code=code,
                kind=kind,
                starts_on=on,
                reason="simulation test",
            )
    summary = simulate(session, seed=24, pool_policy={"lockdown": "household"})
    assert summary.refused_scans == 0
    rnd = _round(session, summary.round_code)
    rows = session.execute(
        select(Tube.barcode, Tube.kind, Tube.capacity, Tube.member_count, Site.region_code)
        .join(Site, Site.id == Tube.site_id)
        .where(Tube.round_id == rnd.id, Tube.kind != "retest")
    ).all()
    households = defaultdict(set)
    for barcode, household in session.execute(
        select(Tube.barcode, Person.household_id)
        .join(TubeMember, TubeMember.tube_id == Tube.id)
        .join(Person, Person.id == TubeMember.person_id)
        .where(Tube.round_id == rnd.id)
    ):
        households[barcode].add(household)
    by_zone = defaultdict(set)
    for barcode, kind, capacity, members, community in rows:
        if community == lockdown:
            by_zone["lockdown"].add(kind)
            assert len(households[barcode]) == 1
            assert capacity == members
        elif community == control:
            by_zone["control"].add((kind, capacity))
        else:
            by_zone["elsewhere"].add((kind, capacity))
    assert by_zone["lockdown"] == {"household"}
    assert by_zone["control"] == {("pooled", 5)}
    assert by_zone["elsewhere"] == {("pooled", 10)}


def test_what_cannot_be_simulated_is_refused(session, simulated):
    for prevalence in (-0.1, 1.5, float("nan")):
        with pytest.raises(InvalidInput) as err:
            simulate(session, prevalence=prevalence, seed=30)
        assert err.value.problems[0].reason == "simulate.bad_prevalence"
    with pytest.raises(InvalidInput) as err:
        simulate(session, region_code="229900")
    assert err.value.problems[0].reason == "error.region_unknown"
    with pytest.raises(InvalidInput) as err:
        simulate(session, start=NOW - timedelta(hours=30), seed=31)
    assert err.value.problems[0].reason == "simulate.start_too_recent"
    with pytest.raises(InvalidInput) as err:
        simulate(session, start=datetime(2022, 3, 25), seed=32)
    assert err.value.problems[0].reason == "field.needs_timezone"
    with pytest.raises(InvalidInput) as err:
        simulate(session, seed=33, pool_policy={"elsewhere": 7})
    assert err.value.problems[0].field == "pool_policy.elsewhere"
    # The round's code names this simulation: another prevalence, start or policy under it is
    # another round.
    for other in ({"prevalence": 0.5}, {"start": START - timedelta(days=1)}):
        with pytest.raises(Conflict):
            simulate(session, **other)
    assert _count(session, Round, Round.code.startswith("SIM-")) == 1


# The command ----------------------------------------------------------------------------------


def _cli() -> typer.Typer:
    app = typer.Typer()
    group = typer.Typer()
    round_command.register(group)
    app.add_typer(group, name="simulate")

    @app.callback()
    def main() -> None:
        """bastion"""

    return app


def test_the_command_runs_a_round_end_to_end(cli_env):
    engine = make_engine(cli_env["BASTION_DATABASE_URL"])
    with Session(engine) as session, session.begin():
        build_province(db_session=session, scale=SCALE, seed=PROVINCE_SEED)
    runner = CliRunner()
    args = ["simulate", "round", "--region", "220102", "--prevalence", "0.02", "--seed", "3"]
    first = runner.invoke(_cli(), args)
    assert first.exit_code == 0, first.output
    text = " ".join(first.output.split())
    assert "SIM-220102-3" in text
    assert "people sampled" in text
    assert "positive tubes" in text
    again = runner.invoke(_cli(), args)
    assert again.exit_code == 0, again.output

    def figures(output: str) -> list[str]:
        return [line for line in output.splitlines() if "│" in line]

    assert figures(again.output) == figures(first.output)
    with Session(engine) as session:
        rnd = _round(session, "SIM-220102-3")
        assert rnd.starts_at == sim.default_start().astimezone(UTC)
        sampled = _count(
            session, TubeMember, TubeMember.round_id == rnd.id, TubeMember.retest.is_(False)
        )
        assert f"{sampled:,}" in text
    refused = runner.invoke(_cli(), [*args[:4], "--prevalence", "2", "--seed", "3"])
    assert refused.exit_code == 1
    assert "simulate.bad_prevalence" not in refused.output
    assert "between 0 and 1" in " ".join(refused.output.split())
    other = runner.invoke(_cli(), [*args, "--start", "2022-03-25T00:00"])
    assert other.exit_code == 1
    assert "SIM-220102-3" in " ".join(other.output.split())
    engine.dispose()
