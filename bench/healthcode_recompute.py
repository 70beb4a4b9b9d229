"""Health-code recompute at province scale: 9 million people, a round's worth of changes.

Builds a throwaway PostgreSQL database with Changchun's grids, ``--people`` persons (9 M at
BENCH_SCALE=1, built with generate_series, not the ORM), and one testing round whose deadline
has passed: 90 % of the people were sampled in it (8.1 M tube members in 810 k tubes), 10 % were
not. Then, with the clock after the deadline, measures:

* **healthcode.recompute_region**: ``recompute_region`` of Changchun (everyone): ~900 k people
  turn yellow (missed required round test); written set-based with history and the audit seal
  (target ≤ 20 s for 9 M);
* **healthcode.recompute_noop**: the same recompute again, nothing changed;
* the limit both are compared with: a plain ``UPDATE code_status`` of the changed rows, in the
  same run (``ratio`` = recompute seconds / update seconds).

Prints one JSON line per figure (bench.common.emit).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bastion.core import clock, migrate
from bastion.core.auth import system_principal
from bastion.core.db import bulk_insert, make_engine
from bastion.healthcode import store
from bastion.healthcode.models import CodeHistory
from bastion.regions import service as region_service
from bastion.testing import service as testing_service
from bastion.testing.schemas import RoundCreate
from bench.common import bench_scale, emit, note
from bench.coverage import region_rows
from bench.support import pg_database

START = datetime(2022, 4, 2, 0, 0, tzinfo=UTC)
CITY = "220100"
PEOPLE_PER_GRID = 700


def _without_indexes(session: Session, tables: tuple[str, ...]) -> list[str]:
    """Drop the secondary indexes (and unique constraints) of ``tables`` so the bulk load
    builds each index once afterwards; returns the statements that recreate them (as plain
    indexes: the database is thrown away after the run)."""
    rows = session.execute(
        text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(:t) "
            "AND indexname NOT LIKE 'pk_%'"
        ),
        {"t": list(tables)},
    ).all()
    for name, _ in rows:
        table = session.execute(
            text("SELECT conrelid::regclass::text FROM pg_constraint WHERE conname = :n"),
            {"n": name},
        ).scalar_one_or_none()
        if table:
            session.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
        else:
            session.execute(text(f'DROP INDEX "{name}"'))
    return [definition for _, definition in rows]


def build(session: Session, people: int) -> int:
    """Regions, persons, a round with 90 % sampled; returns the round's id."""
    region_service.load_base_regions(db_session=session)
    rows, grids = region_rows(max(people // PEOPLE_PER_GRID, 10))
    bulk_insert(
        session,
        "regions",
        ["code", "parent_code", "level", "name_zh", "name_en", "population"],
        rows,
    )
    session.execute(text("SET LOCAL synchronous_commit = off"))
    session.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
    recreate = _without_indexes(session, ("persons", "tube_members", "tubes"))
    t0 = time.perf_counter()
    # Grid n (0-based) of the list; person g lives in grid g % n (a join, not an array
    # subscript: a parameter array would be detoasted for every row).
    session.execute(text("CREATE TEMPORARY TABLE bench_grids (n INTEGER PRIMARY KEY, code TEXT)"))
    bulk_insert(session, "bench_grids", ["n", "code"], enumerate(grids))
    session.execute(
        text(
            """INSERT INTO persons (id, token, name, id_type, id_cipher, id_hash, id_masked, sex,
                    birth_date, region_code, address, special_groups, created_at, updated_at)
               SELECT g, 'T' || g, '张三', 'resident_id', '\\x00'::bytea, md5(g::text),
                    '2****************X', CASE WHEN g % 2 = 0 THEN 'M' ELSE 'F' END,
                    date '1950-01-01' + (g % 25000), bg.code, '', 0, :at, :at
               FROM generate_series(1, :people) AS g JOIN bench_grids bg ON bg.n = g % :n"""
        ),
        {"n": len(grids), "people": people, "at": START},
    )
    session.execute(text("SELECT setval('persons_id_seq', :n)"), {"n": people})
    note(f"{people:,} persons in {time.perf_counter() - t0:.1f} s")
    rnd = testing_service.create_round(
        db_session=session,
        principal=system_principal(),
        data=RoundCreate(code="BENCH-HC-1", name="bench", region_code=CITY, starts_at=START),
    )
    sampled = people - people // 10
    tubes = -(-sampled // 10)
    t0 = time.perf_counter()
    session.execute(
        text(
            """INSERT INTO tubes (id, barcode, round_id, region_code, kind, capacity,
                    member_count, state, first_scan_at, result)
               SELECT t, 'B' || t, :round, :grid, 'pooled', 10, 10, 'resulted', :at, 'negative'
               FROM generate_series(1, :tubes) AS t"""
        ),
        {"round": rnd.id, "grid": grids[0], "tubes": tubes, "at": START + timedelta(hours=1)},
    )
    session.execute(text("SELECT setval('tubes_id_seq', :n)"), {"n": tubes})
    # Person g is sampled unless g is a multiple of 10; k = g - g/10 - 1 numbers the sampled
    # people from 0, ten to a tube.
    session.execute(
        text(
            """INSERT INTO tube_members (round_id, tube_id, person_id, position, scanned_at,
                    region_code, off_grid, retest)
               SELECT :round, (g - g / 10 - 1) / 10 + 1, g, (g - g / 10 - 1) % 10 + 1, :at,
                    bg.code, false, false
               FROM generate_series(1, :people) AS g JOIN bench_grids bg ON bg.n = g % :n
               WHERE g % 10 <> 0"""
        ),
        {"round": rnd.id, "people": people, "n": len(grids), "at": START + timedelta(hours=1)},
    )
    t0 = time.perf_counter()
    for statement in recreate:
        session.execute(text(statement))
    note(
        f"{sampled:,} tube members; {len(recreate)} indexes rebuilt in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    return rnd.id


def run(people: int) -> None:
    with pg_database("bench_healthcode") as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session, session.begin():
            round_id = build(session, people)
            deadline = session.execute(
                text("SELECT deadline_at FROM test_rounds WHERE id = :r"), {"r": round_id}
            ).scalar_one()
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        facts = {"people": people, "not_tested": people // 10}
        with clock.frozen(deadline + timedelta(hours=2)):
            t0 = time.perf_counter()
            with Session(engine) as session, session.begin():
                result = store.recompute_region(db_session=session, region_code=CITY)
            recompute_s = time.perf_counter() - t0
            with Session(engine) as session:
                history_rows = session.execute(
                    select(func.count()).select_from(CodeHistory)
                ).scalar_one()
            note(f"recompute: {result.changed:,} changed in {recompute_s:.1f} s")
            t0 = time.perf_counter()
            with Session(engine) as session, session.begin():
                again = store.recompute_region(db_session=session, region_code=CITY)
            noop_s = time.perf_counter() - t0
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE code_status"
            )
        t0 = time.perf_counter()
        with Session(engine) as session, session.begin():
            updated = session.execute(
                text(
                    "UPDATE code_status SET version = version + 1, changed_at = now() "
                    "WHERE colour <> 'green'"
                )
            ).rowcount  # type: ignore[attr-defined]
        update_s = time.perf_counter() - t0
        note(f"plain UPDATE of {updated:,} rows: {update_s:.1f} s")
        emit(
            "healthcode.recompute_region",
            recompute_s,
            "s",
            limit=update_s,
            ratio=recompute_s / update_s if update_s else None,
            changed=result.changed,
            history_rows=history_rows,
            target="<= 20 s for 9 M people",
            **facts,
        )
        emit(
            "healthcode.recompute_noop",
            noop_s,
            "s",
            limit=update_s,
            ratio=noop_s / update_s if update_s else None,
            changed=again.changed,
            **facts,
        )
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=max(int(bench_scale() * 9_000_000), 10_000))
    args = parser.parse_args(argv)
    run(args.people)


if __name__ == "__main__":
    main()
