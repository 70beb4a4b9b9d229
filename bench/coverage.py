"""Coverage of a round at city scale: the city view, and what keeping the counters costs ingest.

Builds a throwaway PostgreSQL database holding Changchun's region tree down to ~13,000 grids
(``--grids``, scaled by BENCH_SCALE), a number of past rounds (``--rounds``) each with one
``round_coverage`` row per grid (what a full round of 9 M people leaves behind), then measures:

* **coverage.city_view**: ``coverage.view`` of Changchun for the latest round (target ≤ 1 s);
* **coverage.district_view** and **coverage.round_status**, for scale;
* **coverage.ingest_hook_by_site** / **_spread**: ``add_sampled_from_verdict`` on one ingest
  chunk of 50,000 accepted scans touching ~70 grids (a file ordered by site) or every grid (a
  city-wide file ordered by time): the price the ingest pays per chunk for live counters;
* **coverage.snapshot_required** (only with ``--people N``): the required snapshot at round
  creation over N registered persons.

Prints one JSON line per figure (bench.common.emit).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from bastion.core import clock, migrate
from bastion.core.auth import system_principal
from bastion.core.db import bulk_insert, make_engine
from bastion.regions import service as region_service
from bastion.testing import coverage
from bastion.testing import service as testing_service
from bastion.testing.ingest import statements as ingest_statements
from bastion.testing.schemas import RoundCreate
from bench.common import emit
from bench.support import pg_database

START = datetime(2022, 4, 2, 0, 0, tzinfo=UTC)
CITY = "220100"
DISTRICTS = [
    "220102", "220103", "220104", "220105", "220106", "220112",
    "220113", "220122", "220182", "220183", "220184",
]  # fmt: skip
GRIDS_PER_COMMUNITY = 10
COMMUNITIES_PER_STREET = 10
PEOPLE_PER_GRID = 700
CHUNK = 50_000


def region_rows(grids: int) -> tuple[list[tuple[Any, ...]], list[str]]:
    """Streets, communities and grids below Changchun's districts, ``grids`` grids in all."""
    rows: list[tuple[Any, ...]] = []
    codes: list[str] = []
    per_district = -(-grids // len(DISTRICTS))
    for district in DISTRICTS:
        made = 0
        street_no = 0
        while made < per_district and len(codes) < grids:
            street_no += 1
            street = f"{district}{street_no:03d}"
            rows.append((street, district, "street", "街道", "Street", None))
            for c in range(COMMUNITIES_PER_STREET):
                community = f"{street}{c + 1:03d}"
                rows.append((community, street, "community", "社区", "Community", None))
                for g in range(GRIDS_PER_COMMUNITY):
                    if made >= per_district or len(codes) >= grids:
                        break
                    grid = f"{community}{g + 1:03d}"
                    rows.append((grid, community, "grid", "网格", "Grid", None))
                    codes.append(grid)
                    made += 1
    return rows, codes


def coverage_rows(round_id: int, grids: list[str], rng: random.Random) -> Iterator[tuple[Any, ...]]:
    for grid in grids:
        required = rng.randint(PEOPLE_PER_GRID - 100, PEOPLE_PER_GRID + 100)
        sampled_required = rng.randint(required * 9 // 10, required)
        sampled = sampled_required + rng.randint(0, 20)
        on_time = rng.randint(sampled_required * 9 // 10, sampled_required)
        resulted = rng.randint(sampled * 8 // 10, sampled)
        positive_tubes = rng.randint(0, 2)
        yield (
            round_id,
            grid,
            required,
            sampled,
            sampled_required,
            on_time,
            resulted,
            positive_tubes * 10,
            positive_tubes,
        )


def timed(func: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(first, median, worst) seconds over ``repeat`` calls."""
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        seconds.append(time.perf_counter() - t0)
    return seconds[0], statistics.median(seconds), max(seconds)


def create_round(session: Session, code: str, starts_at: datetime) -> int:
    rnd = testing_service.create_round(
        db_session=session,
        principal=system_principal(),
        data=RoundCreate(code=code, name=code, region_code=CITY, starts_at=starts_at),
    )
    return rnd.id


def run(grid_count: int, rounds: int, repeat: int, people: int) -> None:
    rng = random.Random(20220402)
    with pg_database("bench_coverage") as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session, session.begin():
            region_service.load_base_regions(db_session=session)
            rows, grids = region_rows(grid_count)
            bulk_insert(
                session,
                "regions",
                ["code", "parent_code", "level", "name_zh", "name_en", "population"],
                rows,
            )
            round_ids = []
            for r in range(rounds):
                round_id = create_round(session, f"BENCH-R{r:03d}", START + timedelta(days=r))
                round_ids.append(round_id)
                bulk_insert(
                    session,
                    "round_coverage",
                    [
                        "round_id",
                        "region_code",
                        "required",
                        "sampled",
                        "sampled_required",
                        "on_time",
                        "resulted",
                        "positive_people",
                        "positive_tubes",
                    ],
                    coverage_rows(round_id, grids, rng),
                )
            latest = f"BENCH-R{rounds - 1:03d}"
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        facts = {"grids": len(grids), "rounds": rounds, "coverage_rows": len(grids) * rounds}
        system = system_principal()
        with clock.frozen(START + timedelta(days=rounds, hours=2)), Session(engine) as session:
            view = coverage.view(db_session=session, principal=system, ref=latest)
            assert len(view.rows) == len(DISTRICTS), len(view.rows)
            assert view.region.required > 0
            first, median, worst = timed(
                lambda: coverage.view(db_session=session, principal=system, ref=latest), repeat
            )
            emit(
                "coverage.city_view",
                median * 1000,
                "ms",
                first_ms=round(first * 1000, 1),
                worst_ms=round(worst * 1000, 1),
                repeat=repeat,
                target="<= 1000 ms",
                **facts,
            )
            first, median, worst = timed(
                lambda: coverage.view(
                    db_session=session, principal=system, ref=latest, region_code="220102"
                ),
                repeat,
            )
            emit("coverage.district_view", median * 1000, "ms", worst_ms=round(worst * 1000, 1))
            first, median, worst = timed(
                lambda: coverage.round_status(db_session=session, principal=system, ref=latest),
                repeat,
            )
            emit("coverage.round_status", median * 1000, "ms", worst_ms=round(worst * 1000, 1))
            session.rollback()
        bench_ingest_hook(engine, grids, round_ids[-1], rng, spread=False)
        bench_ingest_hook(engine, grids, round_ids[-1], rng, spread=True)
        if people:
            bench_snapshot(engine, grids, people)
        engine.dispose()


def bench_ingest_hook(
    engine: Any, grids: list[str], round_id: int, rng: random.Random, *, spread: bool
) -> None:
    """One chunk of accepted scans through the counters, as ingest._land_chunk calls it: spread
    over every grid (a city-wide file ordered by time), or over the ~70 grids a chunk of a file
    ordered by site touches."""
    base = START + timedelta(days=29, hours=1)
    columns = ["round_id", "home", "scanned_at", "person_id", "retest", "verdict"]
    rows = [
        (
            round_id,
            grids[i % len(grids)] if spread else grids[i // PEOPLE_PER_GRID % len(grids)],
            base + timedelta(seconds=rng.randint(0, 20 * 3600)),
            i + 1,
            False,
            "ok",
        )
        for i in range(CHUNK)
    ]
    seconds = []
    for _ in range(5):
        with Session(engine) as session:
            ingest_statements.create_temp_tables(session)
            bulk_insert(session, "scan_verdict", columns, rows)
            session.execute(text("ANALYZE scan_verdict"))
            t0 = time.perf_counter()
            coverage.add_sampled_from_verdict(db_session=session)
            seconds.append(time.perf_counter() - t0)
            session.rollback()
    median = statistics.median(seconds)
    emit(
        "coverage.ingest_hook_spread" if spread else "coverage.ingest_hook_by_site",
        median * 1000,
        "ms per chunk",
        chunk=CHUNK,
        grids_touched=len({row[1] for row in rows}),
        scans_per_s=round(CHUNK / median),
        note="add_sampled_from_verdict on one ingest chunk",
    )


def bench_snapshot(engine: Any, grids: list[str], people: int) -> None:
    """The required snapshot over ``people`` registered persons (once per round creation)."""
    columns = [
        "token", "name", "id_type", "id_cipher", "id_hash", "id_masked", "sex", "birth_date",
        "phone", "region_code", "household_id", "address", "special_groups", "created_at",
        "updated_at",
    ]  # fmt: skip
    born = date(1980, 1, 1)

    def persons() -> Iterator[tuple[Any, ...]]:
        for i in range(people):
            yield (
                f"{i:024x}", "测试", "other", b"\x00", f"{i:064x}", "X****X", "F",
                born.replace(year=1930 + i % 90), None, grids[i % len(grids)], None, "",
                i % 3, START, START,
            )  # fmt: skip

    with Session(engine) as session, session.begin():
        bulk_insert(session, "persons", columns, persons())
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    with Session(engine) as session:
        rnd = testing_service.create_round(
            db_session=session,
            principal=system_principal(),
            data=RoundCreate(
                code="BENCH-SNAPSHOT",
                name="snapshot",
                region_code=CITY,
                starts_at=START + timedelta(days=400),
                exemptions=[{"kind": "age_under", "years": 3}, {"kind": "age_over", "years": 80}],
            ),
        )
        t0 = time.perf_counter()
        coverage.snapshot_required(db_session=session, round_id=rnd.id)
        seconds = time.perf_counter() - t0
        session.rollback()
    emit(
        "coverage.snapshot_required",
        seconds,
        "s",
        people=people,
        persons_per_s=round(people / seconds),
        note="once per round creation; with age exemptions",
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    parser.add_argument("--grids", type=int, default=max(int(scale * 13_000), 50))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--people", type=int, default=0, help="also time the required snapshot")
    args = parser.parse_args(argv)
    run(args.grids, args.rounds, args.repeat, args.people)


if __name__ == "__main__":
    main()
