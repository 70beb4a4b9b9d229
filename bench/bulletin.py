"""The daily bulletin on a province-sized record: how long one day's figures take.

Builds a throwaway PostgreSQL database (server-side ``INSERT … SELECT generate_series``: the
fastest bulk path for synthetic rows) holding, at BENCH_SCALE 1: 100,000 cases over 60 days,
1,000,000 close and secondary contacts, 200,000 placements, the persons behind them, one
round's coverage counters over ~13,000 grids and 30 days of hourly screening counters for every
district. Then times, for the last day:

* **bulletin.figures_province**: every section of the province's figures (target ≤ 1 s);
* **bulletin.figures_city**: Changchun's;
* **bulletin.render_zh**: computing and rendering the province's Markdown (a draft);
* **bulletin.publish**: publishing the day (figures, both texts, audit), once.

Prints one JSON line per figure (bench.common.emit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from bastion.bulletin import queries, sections
from bastion.bulletin import service as bulletin_service
from bastion.bulletin.place import place_of
from bastion.core import clock, migrate
from bastion.core.auth import system_principal
from bastion.core.db import make_engine
from bastion.regions import service as region_service
from bastion.tracing import counters as contact_counters
from bench.common import emit, note
from bench.support import pg_database

DAY = date(2022, 3, 25)
NOW = datetime(2022, 3, 26, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai on the 26th
GRIDS_PER_DISTRICT = 220

#: Persons living in the districts and cities of the base regions (by id modulo).
PERSONS = """
INSERT INTO persons (token, name, id_type, id_cipher, id_hash, id_masked, sex, birth_date,
                     region_code, address, special_groups, created_at, updated_at)
SELECT lpad(to_hex(i), 32, '0'), '测试', 'other', '\\x00'::bytea, lpad(i::text, 64, '0'),
       'X****X', 'F', DATE '1980-01-01' + (i % 20000),
       (CAST(:homes AS text[]))[1 + (i % cardinality(CAST(:homes AS text[])))], '', 0, :now, :now
FROM generate_series(1, :n) AS i
"""

#: Cases: 45 % confirmed, 55 % asymptomatic of which 15 % reclassified 1-3 days later; cases
#: older than ten days mostly closed.
CASES = """
INSERT INTO cases (person_id, region_code, reporting_city, classification, clinical_type,
                   origin, found_by, reported_on, reclassified_on, status, closed_on, note,
                   created_at)
SELECT p.id, p.region_code,
       CASE WHEN substr(p.region_code, 1, 6) = '220581' THEN '220581'
            ELSE substr(p.region_code, 1, 4) || '00' END,
       CASE WHEN g.kind = 'asymptomatic' THEN 'asymptomatic' ELSE 'confirmed' END,
       CASE WHEN g.kind = 'asymptomatic' THEN NULL
            WHEN g.r < 0.9 THEN 'mild' WHEN g.r < 0.98 THEN 'ordinary'
            WHEN g.r < 0.995 THEN 'severe' ELSE 'critical' END,
       'local', 'community_screening', g.reported_on,
       CASE WHEN g.kind = 'reclassified' THEN g.reclassified_on END,
       CASE WHEN NOT g.closed THEN 'open' WHEN g.kind = 'asymptomatic' THEN 'released'
            ELSE 'discharged' END,
       CASE WHEN g.closed THEN LEAST(g.reported_on + 7 + (g.i % 8), :day) END,
       '', :now
FROM (
    SELECT i, r, reported_on,
           LEAST(reported_on + 1 + (i % 3), :day) AS reclassified_on,
           CASE WHEN k < 0.45 THEN 'confirmed' WHEN k < 0.5325 THEN 'reclassified'
                ELSE 'asymptomatic' END AS kind,
           reported_on < :day - 10 AND c < 0.7 AS closed
    FROM (SELECT i, random() AS r, random() AS k, random() AS c,
                 :day - (floor(random() * 60))::int AS reported_on
          FROM generate_series(1, :n) AS i) s
) g JOIN persons p ON p.id = g.i
"""

CONTACTS = """
INSERT INTO contacts (person_id, region_code, level, case_id, identified_on, status,
                      released_on, created_at)
SELECT p.id, p.region_code, CASE WHEN g.l < 0.48 THEN 'close' ELSE 'secondary' END,
       1 + (g.i % :cases), g.identified_on,
       CASE WHEN g.released THEN 'released' ELSE 'active' END,
       CASE WHEN g.released THEN LEAST(g.identified_on + 7 + (g.i % 8), :day) END, :now
FROM (SELECT i, l, identified_on, identified_on <= :day - 7 AND x < 0.6 AS released
      FROM (SELECT i, random() AS l, random() AS x,
                   :day - (floor(random() * 60))::int AS identified_on
            FROM generate_series(1, :n) AS i) s) g
JOIN persons p ON p.id = :offset + g.i
"""

PLACEMENTS = """
INSERT INTO placements (person_id, region_code, setting, reason, source_type, source_id,
                        profile, status, starts_on, planned_end_on, released_on, created_at)
SELECT p.id, p.region_code,
       CASE WHEN g.s < 0.2 THEN 'centralised' WHEN g.s < 0.9 THEN 'home'
            ELSE 'home_monitoring' END,
       'close_contact', 'contact', g.i, 'jilin-2022-03',
       CASE WHEN g.released THEN 'released' ELSE 'active' END,
       g.starts_on, g.starts_on + 14,
       CASE WHEN g.released THEN LEAST(g.starts_on + 7, :day) END, :now
FROM (SELECT i, s, starts_on, starts_on <= :day - 7 AND x < 0.3 AS released
      FROM (SELECT i, random() AS s, random() AS x,
                   :day - (floor(random() * 21))::int AS starts_on
            FROM generate_series(1, :n) AS i) s) g
JOIN persons p ON p.id = :offset + g.i
"""

ROUND = """
INSERT INTO test_rounds (code, name, region_code, starts_at, deadline_at, status, pool_policy,
                         exemptions, created_at)
VALUES ('BENCH-R1', '第十轮全员核酸检测', '220000', :starts, :deadline, 'open', '{}', '[]', :now)
RETURNING id
"""

COVERAGE = """
INSERT INTO round_coverage (round_id, region_code, required, sampled, sampled_required,
                            on_time, resulted, positive_people, positive_tubes)
SELECT :round_id, d || '001001' || lpad(g::text, 3, '0'), 700, 650, 640, 600, 500, 1, 0
FROM unnest(CAST(:homes AS text[])) AS d, generate_series(1, :grids) AS g
"""

HOURS = """
INSERT INTO round_screening_hours (round_id, district_code, hour, scans)
SELECT :round_id, d, h, 1000 + (random() * 9000)::int
FROM unnest(CAST(:homes AS text[])) AS d,
     generate_series(CAST(:first AS timestamptz), CAST(:last AS timestamptz),
                     interval '1 hour') AS h
"""


def timed(func: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(first, median, worst) seconds over ``repeat`` calls."""
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        seconds.append(time.perf_counter() - t0)
    return seconds[0], statistics.median(seconds), max(seconds)


def build(session: Session, cases: int, contacts: int, placements: int) -> dict[str, int]:
    region_service.load_base_regions(db_session=session)
    homes = list(
        session.execute(
            text(
                "SELECT code FROM regions WHERE level = 'district' OR (level = 'city' AND "
                "NOT EXISTS (SELECT 1 FROM regions c WHERE c.parent_code = regions.code))"
            )
        ).scalars()
    )
    persons = cases + contacts + placements
    params = {"now": NOW, "day": DAY, "homes": homes}
    steps = (
        ("persons", PERSONS, {"n": persons}),
        ("cases", CASES, {"n": cases}),
        ("contacts", CONTACTS, {"n": contacts, "cases": cases, "offset": cases}),
        ("placements", PLACEMENTS, {"n": placements, "offset": cases + contacts}),
    )
    for name, sql, extra in steps:
        t0 = time.perf_counter()
        session.execute(text(sql), {**params, **extra})
        note(f"  {name}: {extra['n']:,} rows in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    # The contacts came in by INSERT … SELECT, past the tracing writers that keep the counters.
    counter_rows = contact_counters.rebuild(session)
    note(f"  contact counters: {counter_rows:,} rows in {time.perf_counter() - t0:.1f} s")
    start = datetime(2022, 3, 24, 0, 0, tzinfo=UTC)
    round_id = session.execute(
        text(ROUND), {"starts": start, "deadline": start + timedelta(days=3), "now": NOW}
    ).scalar_one()
    session.execute(
        text(COVERAGE), {"round_id": round_id, "homes": homes, "grids": GRIDS_PER_DISTRICT}
    )
    session.execute(
        text(HOURS),
        {
            "round_id": round_id,
            "homes": homes,
            "first": datetime(2022, 2, 24, 16, 0, tzinfo=UTC),
            "last": datetime(2022, 3, 25, 15, 0, tzinfo=UTC),
        },
    )
    return {
        "persons": persons,
        "cases": cases,
        "contacts": contacts,
        "placements": placements,
        "grids": len(homes) * GRIDS_PER_DISTRICT,
    }


def run(cases: int, contacts: int, placements: int, repeat: int) -> None:
    with pg_database("bench_bulletin") as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        t0 = time.perf_counter()
        with Session(engine) as session, session.begin():
            facts = build(session, cases, contacts, placements)
        note(f"built in {time.perf_counter() - t0:.0f} s")
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        system = system_principal()
        with clock.frozen(NOW), Session(engine) as session:

            def province() -> object:
                return bulletin_service.get(
                    db_session=session, principal=system, day=DAY, region_code="220000"
                )

            got = province()
            figures = got.figures.sections  # type: ignore[attr-defined]
            assert figures["cases"]["confirmed"] > 0
            assert figures["contacts"]["close"] > 0
            note(f"  confirmed {figures['cases']['confirmed']}, isolation {figures['isolation']}")
            first, median, worst = timed(province, repeat)
            emit(
                "bulletin.figures_province.postgresql",
                median * 1000,
                "ms",
                first_ms=round(first * 1000, 1),
                worst_ms=round(worst * 1000, 1),
                repeat=repeat,
                target="<= 1000 ms",
                **facts,
            )
            place = place_of(db_session=session, code="220000")
            by_scan = queries.contacts_by_scan(session, place, DAY)
            assert queries.contacts_from_counters(session, place, DAY) == by_scan
            _, median, worst = timed(lambda: queries.contacts_by_scan(session, place, DAY), repeat)
            emit(
                "bulletin.contacts_by_scan.postgresql",
                median * 1000,
                "ms",
                worst_ms=round(worst * 1000, 1),
                note="the contact figures by one pass over the contacts (before the counters)",
            )
            for section in sections.available(session):
                _, median, worst = timed(lambda s=section: s.compute(session, place, DAY), repeat)
                emit(
                    f"bulletin.section_{section.key}.postgresql",
                    median * 1000,
                    "ms",
                    worst_ms=round(worst * 1000, 1),
                    note="one section of the province's figures",
                )
            first, median, worst = timed(
                lambda: bulletin_service.get(
                    db_session=session, principal=system, day=DAY, region_code="220100"
                ),
                repeat,
            )
            emit(
                "bulletin.figures_city.postgresql",
                median * 1000,
                "ms",
                worst_ms=round(worst * 1000, 1),
            )
            first, median, worst = timed(
                lambda: bulletin_service.render(
                    db_session=session,
                    principal=system,
                    day=DAY,
                    lang="zh-CN",
                    fmt="md",
                    region_code="220000",
                ),
                repeat,
            )
            emit(
                "bulletin.render_zh.postgresql",
                median * 1000,
                "ms",
                worst_ms=round(worst * 1000, 1),
            )
            t0 = time.perf_counter()
            bulletin_service.publish(
                db_session=session, principal=system, day=DAY, region_code="220000"
            )
            session.flush()
            emit("bulletin.publish.postgresql", (time.perf_counter() - t0) * 1000, "ms")
            session.rollback()
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    parser.add_argument("--cases", type=int, default=max(int(scale * 100_000), 1_000))
    parser.add_argument("--contacts", type=int, default=max(int(scale * 1_000_000), 10_000))
    parser.add_argument("--placements", type=int, default=max(int(scale * 200_000), 2_000))
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args(argv)
    run(args.cases, args.contacts, args.placements, args.repeat)


if __name__ == "__main__":
    main()
