"""Round ingest at city scale: person-scans/s through the one bulk path, against a raw COPY.

Builds a throwaway PostgreSQL database with N persons (tokens known to the generator), opens a
round, then:

* **limit**: COPY the same N member rows straight into ``tube_members`` (same indexes) for a
  second round, i.e. what the disk and the indexes cost with no checks at all;
* **ingest**: streams N scans (10 to a tube) through ``bastion.testing.ingest.ingest_scans``,
  every check on, chunk by chunk, memory flat.

Prints one JSON line per figure (see bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from bastion.core import clock, migrate
from bastion.core.auth import system_principal
from bastion.core.db import bulk_insert, make_engine
from bastion.regions import service as region_service
from bastion.regions.models import Region
from bastion.registry.importer import PERSON_COLUMNS
from bastion.registry.models import Person
from bastion.testing import ingest
from bastion.testing import service as testing_service
from bastion.testing.ingest import statements as ingest_statements
from bastion.testing.models import Site, SiteGrid, Tube
from bastion.testing.schemas import RoundCreate
from bench.common import emit
from bench.support import peak_rss_mb, pg_database

START = datetime(2022, 4, 2, 0, 0, tzinfo=UTC)
PER_GRID = 700  # ~300 households of 2.34 people
#: The columns the limit writes straight into ``tubes`` and ``tube_members``.
RAW_TUBE_COLUMNS = [
    "barcode",
    "round_id",
    "site_id",
    "region_code",
    "kind",
    "capacity",
    "member_count",
    "state",
    "first_scan_at",
]
RAW_MEMBER_COLUMNS = [c for c in ingest_statements.MEMBER_COLUMNS if c != "batch_id"]


def token(i: int) -> str:
    return f"{i:024x}"


def _people(n: int, grids: list[str]) -> Iterator[tuple[object, ...]]:
    now = START
    for i in range(n):
        yield (
            token(i),
            "测试",
            "other",
            b"\x00",
            f"{i:064x}",
            "X****X",
            "M" if i % 2 else "F",
            date(1980, 1, 1),
            None,
            grids[i // PER_GRID],
            None,
            "",
            0,
            now,
            now,
        )


def prepare(session: Session, n: int) -> tuple[list[str], str]:
    region_service.load_base_regions(db_session=session)
    grids = []
    count = (n + PER_GRID - 1) // PER_GRID
    streets = (count + 99) // 100
    regions = []
    for s in range(streets):
        street = f"220102{s + 1:03d}"
        regions.append(
            Region(
                code=street, parent_code="220102", level="street", name_zh="街道", name_en="Street"
            )
        )
        community = f"{street}001"
        regions.append(
            Region(
                code=community,
                parent_code=street,
                level="community",
                name_zh="社区",
                name_en="Community",
            )
        )
        for g in range(min(100, count - s * 100)):
            grid = f"{community}{g + 1:03d}"
            regions.append(
                Region(
                    code=grid, parent_code=community, level="grid", name_zh="网格", name_en="Grid"
                )
            )
            grids.append(grid)
    session.add_all(regions)
    session.flush()
    bulk_insert(session, Person, PERSON_COLUMNS, _people(n, grids))
    site = Site(
        code="BENCH-SITE",
        name="site",
        region_code="220102",
        teams=50,
        opens_at=datetime.min.time(),
        closes_at=datetime.max.time().replace(microsecond=0),
        capacity_per_hour=100000,
        active=True,
    )
    session.add(site)
    session.flush()
    session.add_all(SiteGrid(site_id=site.id, region_code=g) for g in grids)
    return grids, site.code


def scans(n: int, round_code: str, site: str) -> Iterator[ingest.RawScan]:
    """A file's scans as a reader would hand them over: ten to a tube, 5 ms apart."""
    at = START + timedelta(hours=1)
    step = timedelta(milliseconds=5)
    scan = ingest.RawScan
    for i in range(n):
        yield scan(i + 2, round_code, site, f"BT{i // 10:010d}", f"{i:024x}", at)
        at += step


def _cpu(session: Session) -> tuple[float, dict[int, float]]:
    """CPU seconds so far of this process (every thread) and of each server process connected to
    the bench's database (the ingest's reading connection is one): on a shared machine wall
    time follows the load, the CPU a piece of work costs much less."""
    # The activity view is read once per transaction unless its snapshot is cleared.
    session.execute(text("SELECT pg_stat_clear_snapshot()"))
    pids = session.execute(
        text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    ).scalars()
    servers = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # gone since
        servers[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, servers


def _spent(
    before: tuple[float, dict[int, float]], after: tuple[float, dict[int, float]]
) -> tuple[float, float]:
    """(this process, the database's server processes) CPU seconds between two ``_cpu``."""
    servers = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items())
    return after[0] - before[0], servers


def cpu_fields(cpu: tuple[float, float]) -> dict[str, float]:
    """A figure's CPU seconds, as its JSON line names them: this process, the database's."""
    return {"python_cpu_s": round(cpu[0], 2), "postgres_cpu_s": round(cpu[1], 2)}


def _settle(engine: Engine) -> None:
    """Vacuum and analyze what was just written, then checkpoint: no background vacuum or
    checkpoint of earlier work shares the machine with the next timed run."""
    with engine.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        auto.exec_driver_sql("VACUUM ANALYZE")
        auto.exec_driver_sql("CHECKPOINT")


def run(n: int) -> None:
    with pg_database("bench_ingest") as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session, session.begin():
            _, site = prepare(session, n)
            for code in ("ROUND-LIMIT", "ROUND-INGEST"):
                testing_service.create_round(
                    db_session=session,
                    principal=system_principal(),
                    data=RoundCreate(code=code, name=code, region_code="220100", starts_at=START),
                )
        _settle(engine)
        with clock.frozen(START + timedelta(hours=20)):
            # Limit: tubes and members straight in, no checks.
            with Session(engine) as session, session.begin():
                round_id = session.execute(
                    text("SELECT id FROM test_rounds WHERE code='ROUND-LIMIT'")
                ).scalar_one()
                site_id = session.execute(text("SELECT id FROM sampling_sites")).scalar_one()
                first_person = session.execute(text("SELECT min(id) FROM persons")).scalar_one()
                cpu0 = _cpu(session)
                t0 = time.perf_counter()
                bulk_insert(
                    session,
                    Tube,
                    RAW_TUBE_COLUMNS,
                    (
                        (
                            f"LT{t:010d}",
                            round_id,
                            site_id,
                            "220102",
                            "pooled",
                            10,
                            10,
                            "open",
                            START,
                        )
                        for t in range((n + 9) // 10)
                    ),
                )
                first_tube = session.execute(text("SELECT min(id) FROM tubes")).scalar_one()
                bulk_insert(
                    session,
                    "tube_members",
                    RAW_MEMBER_COLUMNS,
                    (
                        (
                            round_id,
                            first_tube + i // 10,
                            first_person + i,
                            i % 10 + 1,
                            START + timedelta(hours=1),
                            "220102001001001",
                            False,
                            False,
                        )
                        for i in range(n)
                    ),
                )
                limit_s = time.perf_counter() - t0
                cpu1 = _cpu(session)
            limit_cpu = _spent(cpu0, cpu1)
            emit(
                "ingest.raw_copy",
                n / limit_s,
                "rows/s",
                rows=n,
                seconds=round(limit_s, 2),
                **cpu_fields(limit_cpu),
            )
            # Both timed runs start from the same state: the limit's rows are taken out again
            # (so the ingest writes into tables and indexes as empty as the limit found them),
            # and nothing of the limit is left for the autovacuum daemon or a checkpoint to do
            # while the ingest runs.
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "TRUNCATE tube_members, tubes CASCADE"
                )
            _settle(engine)
            with Session(engine) as session, session.begin():
                cpu0 = _cpu(session)
                t0 = time.perf_counter()
                report = ingest.ingest_scans(
                    db_session=session,
                    principal=system_principal(),
                    key="bench-file",
                    source="file",
                    scans=scans(n, "ROUND-INGEST", site),
                )
                ingest_s = time.perf_counter() - t0
                cpu1 = _cpu(session)
            ingest_cpu = _spent(cpu0, cpu1)
            assert report.accepted == n, (report.accepted, report.problems[:3])
            emit(
                "ingest.round",
                n / ingest_s,
                "person-scans/s",
                rows=n,
                seconds=round(ingest_s, 2),
                limit=round(n / limit_s, 2),
                limit_name="ingest.raw_copy",
                ratio=round(ingest_s / limit_s, 2),
                target=">= 150000/s and ratio <= 2",
                peak_rss_mb=peak_rss_mb(),
                **cpu_fields(ingest_cpu),
                # The same comparison in CPU seconds (this process + its server process), which
                # the machine's load skews far less than wall time.
                cpu_ratio=round(sum(ingest_cpu) / max(sum(limit_cpu), 1e-9), 2),
            )
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--people", type=int, default=int(float(os.environ.get("BENCH_SCALE", "1")) * 9_000_000)
    )
    args = parser.parse_args(argv)
    run(args.people)


if __name__ == "__main__":
    main()
