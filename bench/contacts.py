"""Contact expansion: 2,500 new cases over 10 million contact edges, stored (target ≤ 1 s).

Builds a throwaway PostgreSQL database with 1,000,000 × BENCH_SCALE persons and an exposure
graph of about 10,000,000 × BENCH_SCALE directed edge rows (``exposure_edges``, one row per
direction, so about 5 M undirected pairs), generated in SQL with a realistic mix of settings:

- **households** of 1–6 people, mean ≈ 2.37 (Jilin 2020: 2.34), everyone in contact every day
  (≈ 2 edge rows per person);
- **workplaces**: 60 % of people in teams of 8 meeting on one day of the last two weeks
  (≈ 4.2 M rows);
- **sampling queues**: half the people, each next to the two before and after them in a queue on
  one day of the last week (≈ 2 M rows);
- **transport**: 15 % of people sharing a carriage of 12 on one day of the last two weeks
  (≈ 1.65 M rows).

Then 2,500 × min(1, BENCH_SCALE) random people become open cases (sampled yesterday) and we
time, in one transaction with its commit:

* **contacts.expand**: :func:`bastion.tracing.expansion.expand_cases` — first hop (close),
  second hop (secondary, the profile jilin-2022-03 traces them), contacts and links stored;
* **contacts.two_hop_select**: the limit — the plain two-hop join over the same cases and
  edges (``SELECT COUNT(*)``, nothing stored), measured in the same run, warm;

and report ms, edges, contacts created and the ratio expand / two-hop.

Index plan: the primary key (person_id, exposed_on, other_id, setting) is the only index on
the edge table; each hop is a range scan of it per person (index-only after VACUUM), so the
work follows the edges touched, not the 10 M rows. Contacts are unique per active person via a
partial unique index; the expansion stages each person reached once, with their active contact
or a new id drawn ahead of the insert, under its advisory lock, then writes every new contact
in one INSERT and every link in another (see bastion.tracing.expansion); an existing contact's
paths are checked by NOT EXISTS on the unique path index of links.

The breakdown (statements of 5 ms or more, in order) shows where the time goes; see
bench/README.md (contacts) for the recorded figures and what is left.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from bastion.core import clock, migrate
from bastion.core.db import bulk_insert, make_engine
from bastion.regions import service as region_service
from bench.common import bench_scale, emit, note
from bench.support import peak_rss_mb, pg_database

DAY = date(2022, 3, 25)
NOW = datetime(2022, 3, 25, 8, 0, tzinfo=UTC)
DISTRICTS = ["220102", "220103", "220104", "220105", "220106", "220202", "220203", "220204"]

#: Pseudo-random permutations of 0..P-1: i → i·a mod P (a prime not dividing P).
_PERMUTERS = {"workplace": 7919, "sampling_queue": 104729, "transport": 1299709}

_HOUSEHOLDS = """
CREATE TEMPORARY TABLE hh AS
SELECT h, size, SUM(size) OVER (ORDER BY h) - size AS start
FROM (SELECT h, CASE WHEN r < .30 THEN 1 WHEN r < .60 THEN 2 WHEN r < .82 THEN 3
                     WHEN r < .93 THEN 4 WHEN r < .98 THEN 5 ELSE 6 END AS size
      FROM (SELECT h, random() AS r FROM generate_series(1, :households) h) x) y
"""

_HOUSEHOLD_EDGES = """
INSERT INTO exposure_edges (person_id, other_id, exposed_on, setting)
SELECT :base + start + i, :base + start + j, CAST(:day AS date), 'household'
FROM hh, generate_series(0, size - 1) i, generate_series(0, size - 1) j
WHERE i <> j AND start + size <= :persons
"""

#: Groups of ``size`` over a permutation of the first ``members`` people; all pairs in a group.
_GROUP_EDGES = """
INSERT INTO exposure_edges (person_id, other_id, exposed_on, setting)
SELECT :base + ((g * :size + i)::bigint * :a) % :persons,
       :base + ((g * :size + j)::bigint * :a) % :persons,
       CAST(:day AS date) - (g % :days)::int, :setting
FROM generate_series(0, :groups - 1) g, generate_series(0, :size - 1) i,
     generate_series(0, :size - 1) j
WHERE i <> j
"""

#: Each person in a queue next to the two behind them (both directions).
_QUEUE_EDGES = """
INSERT INTO exposure_edges (person_id, other_id, exposed_on, setting)
SELECT :base + (a.q::bigint * :a) % :persons, :base + (b.q::bigint * :a) % :persons,
       CAST(:day AS date) - (a.q / 5000 % 7)::int, 'sampling_queue'
FROM generate_series(0, :members - 1) AS a(q)
JOIN LATERAL (VALUES (a.q + 1), (a.q + 2), (a.q - 1), (a.q - 2)) AS b(q) ON true
WHERE b.q BETWEEN 0 AND :members - 1 AND a.q / 5000 = b.q / 5000
"""


def build(session: Session, persons: int) -> dict[str, int]:
    """Persons and the edge graph; returns edge rows by setting."""
    columns = [
        "token", "name", "id_type", "id_cipher", "id_hash", "id_masked", "sex", "birth_date",
        "phone", "region_code", "household_id", "address", "special_groups", "created_at",
        "updated_at",
    ]  # fmt: skip
    born = date(1980, 1, 1)

    def rows() -> Any:
        for i in range(persons):
            yield (
                f"{i:024x}", "测试", "other", b"\x00", f"{i:064x}", "X****X", "F",
                born.replace(year=1930 + i % 90), None, DISTRICTS[i % len(DISTRICTS)], None,
                "", 0, NOW, NOW,
            )  # fmt: skip

    t0 = time.perf_counter()
    bulk_insert(session, "persons", columns, rows())
    base = int(session.execute(text("SELECT MIN(id) FROM persons")).scalar_one())
    note(f"  {persons:,} persons in {time.perf_counter() - t0:.1f}s")
    t0 = time.perf_counter()
    # Load without the key, then build it once (a sorted build beats 10 M index insertions).
    session.execute(text("ALTER TABLE exposure_edges DROP CONSTRAINT pk_exposure_edges"))
    common = {"base": base, "persons": persons, "day": DAY}
    session.execute(text(_HOUSEHOLDS), {"households": int(persons / 2.37)})
    session.execute(text(_HOUSEHOLD_EDGES), common)
    for setting, share, size, days in (("workplace", 0.6, 8, 14), ("transport", 0.15, 12, 14)):
        a = _PERMUTERS[setting]
        assert persons % a, "the permutation needs a multiplier prime to the population"
        groups = int(persons * share) // size
        session.execute(
            text(_GROUP_EDGES),
            {**common, "a": a, "size": size, "groups": groups, "days": days, "setting": setting},
        )
    a = _PERMUTERS["sampling_queue"]
    session.execute(text(_QUEUE_EDGES), {**common, "a": a, "members": persons // 2})
    session.execute(
        text(
            "ALTER TABLE exposure_edges ADD CONSTRAINT pk_exposure_edges "
            "PRIMARY KEY (person_id, exposed_on, other_id, setting)"
        )
    )
    counts = dict(
        session.execute(text("SELECT setting, COUNT(*) FROM exposure_edges GROUP BY setting")).all()
    )
    note(f"  {sum(counts.values()):,} edge rows in {time.perf_counter() - t0:.1f}s: {counts}")
    return {str(k): int(v) for k, v in counts.items()}


def make_cases(session: Session, persons: int, cases: int, seed: int) -> list[int]:
    base = int(session.execute(text("SELECT MIN(id) FROM persons")).scalar_one())
    picked = session.execute(
        text("SELECT DISTINCT :base + ((g * 2654435761) % :persons) FROM generate_series(1, :n) g"),
        {"base": base, "persons": persons, "n": cases + seed},
    ).scalars()
    people = sorted(int(p) for p in picked)[:cases]
    rows = [
        (p, DISTRICTS[p % len(DISTRICTS)], DISTRICTS[p % len(DISTRICTS)][:4] + "00",
         "asymptomatic", "local", "community_screening", DAY - timedelta(days=1), DAY, "open", "",
         NOW)
        for p in people
    ]  # fmt: skip
    bulk_insert(
        session,
        "cases",
        ["person_id", "region_code", "reporting_city", "classification", "origin", "found_by",
         "sampled_on", "reported_on", "status", "note", "created_at"],
        rows,
    )  # fmt: skip
    return [int(i) for i in session.execute(text("SELECT id FROM cases ORDER BY id")).scalars()]


def run(persons: int, cases: int) -> None:
    from bastion.tracing import expansion

    with pg_database("bench_contacts") as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        note(f"contacts: building {persons:,} persons and their exposure graph")
        with Session(engine) as session, session.begin():
            region_service.load_base_regions(db_session=session)
            edges = build(session, persons)
            case_ids = make_cases(session, persons, cases, seed=cases // 10)
        with engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            auto.exec_driver_sql("VACUUM ANALYZE")
            # The build wrote gigabytes of WAL: checkpoint now, so that the timed run never shares
            # the disk with the checkpoint the build set off (its timing depended on that).
            auto.exec_driver_sql("CHECKPOINT")
        with clock.frozen(NOW):
            with Session(engine) as session:
                expansion.two_hop_count(session, case_ids, day=DAY)  # warm the cache
                session.rollback()
            steps: list[tuple[float, str]] = []

            def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                conn.info["bench_t0"] = time.perf_counter()

            def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
                took = time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())
                steps.append((took, " ".join(statement.split())[:48]))

            event.listen(engine, "before_cursor_execute", before)
            event.listen(engine, "after_cursor_execute", after)
            with Session(engine) as session, session.begin():
                t0 = time.perf_counter()
                result = expansion.expand_cases(session, case_ids, day=DAY)
                t1 = time.perf_counter()
                session.commit()
                seconds = time.perf_counter() - t0
            commit = time.perf_counter() - t1
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
            # Each statement that took 5 ms or more, in the order run.
            breakdown = {
                f"{n:02d} {text_}": round(took * 1000)
                for n, (took, text_) in enumerate(steps)
                if took >= 0.005
            }
            breakdown["COMMIT"] = round(commit * 1000)
            with Session(engine) as session:
                t0 = time.perf_counter()
                pairs = expansion.two_hop_count(session, case_ids, day=DAY)
                limit = time.perf_counter() - t0
                session.rollback()
        total = sum(edges.values())
        emit(
            "contacts.two_hop_select.postgresql",
            limit * 1000,
            "ms",
            cases=cases,
            edges=total,
            two_hop_rows=pairs,
        )
        emit(
            "contacts.expand.postgresql",
            seconds * 1000,
            "ms",
            limit=limit * 1000,
            ratio=seconds / limit if limit else None,
            cases=result.cases,
            persons=persons,
            edges=total,
            edges_by_setting=edges,
            close_candidates=result.close_candidates,
            secondary_candidates=result.secondary_candidates,
            close_created=len(result.close_ids),
            secondary_created=len(result.secondary_ids),
            links_created=result.links_created,
            profile=result.profile,
            breakdown_ms=breakdown,
            target="<= 1000 ms for 2,500 cases over 10 M edge rows, stored, commit included",
            peak_rss_mb=peak_rss_mb(),
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    scale = bench_scale()
    parser.add_argument("--persons", type=int, default=max(int(1_000_000 * scale), 20_000))
    parser.add_argument("--cases", type=int, default=max(int(2_500 * min(scale, 1.0)), 25))
    args = parser.parse_args(argv)
    run(args.persons, args.cases)


if __name__ == "__main__":
    main()
