"""Lab results for a whole round at city scale: the upload, and the positive pools it expands,
against a raw update of the same tubes.

Builds a throwaway PostgreSQL database with N persons sampled in one round (N / 10 pooled tubes,
every one received by one lab), written straight in (bench/ingest measures the scans), then:

* **limit** (``results_upload.raw_update``): the same results COPY'd into a temporary table and
  written onto the tubes by one UPDATE … FROM, no checks: what the disk and the tubes' indexes
  cost (rolled back, and vacuumed away, before the upload runs);
* **upload** (``results_upload.round``): one result per tube through
  ``bastion.testing.results.upload_results``, every check on (lab, receipt, times, conflicts),
  chunk by chunk, in one transaction; one tube in ``--positive-every`` (500 by default, 0.2 %) is
  positive, and every positive pool is expanded as it lands (its members held, a retest task
  each: ``pools.process_results``), which is timed on its own as
  ``results_upload.pool_expansion``; counting the results into the coverage figures, as
  ``results_upload.coverage_counters``.

Prints one JSON line per figure (see bench/README.md).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bastion.core import clock, migrate
from bastion.core.auth import system_principal
from bastion.core.db import bulk_insert, make_engine
from bastion.testing import results
from bastion.testing import service as testing_service
from bastion.testing.models import Box, PoolHold, RetestTask, Tube
from bastion.testing.results import upload as upload_module
from bastion.testing.schemas import LabCreate, RoundCreate
from bench import ingest as ingest_bench
from bench.common import emit
from bench.support import peak_rss_mb, pg_database

START = ingest_bench.START
SAMPLED = START + timedelta(hours=1)
RECEIVED = START + timedelta(hours=3)
TESTED = START + timedelta(hours=5)
LAB = "BENCH-LAB"


def _tubes(n_tubes: int, round_id: int, site_id: int, box_id: int, lab_id: int) -> Iterator[Any]:
    for t in range(n_tubes):
        yield (
            f"RT{t:010d}",
            round_id,
            site_id,
            "220102",
            "pooled",
            10,
            10,
            "received",
            SAMPLED,
            box_id,
            lab_id,
            RECEIVED,
        )


def _value(t: int, every: int) -> tuple[str, float | None, float | None]:
    return ("positive", 24.5, 26.0) if t % every == every - 1 else ("negative", None, None)


def _results(n_tubes: int, every: int) -> Iterator[results.RawResult]:
    raw = results.RawResult
    for t in range(n_tubes):
        result, ct_orf1ab, ct_n = _value(t, every)
        yield raw(t + 2, LAB, f"RT{t:010d}", result, TESTED, ct_orf1ab, ct_n)


def prepare(session: Session, n: int) -> int:
    """Persons, a round, a lab, one received box, the round's tubes and members; the tubes."""
    grids, _ = ingest_bench.prepare(session, n)
    principal = system_principal()
    rnd = testing_service.create_round(
        db_session=session,
        principal=principal,
        data=RoundCreate(code="ROUND-R", name="ROUND-R", region_code="220100", starts_at=START),
    )
    lab = testing_service.create_lab(
        db_session=session,
        principal=principal,
        data=LabCreate(code=LAB, name="lab", region_code="220102", daily_capacity=2_000_000),
    )
    site_id = session.execute(text("SELECT id FROM sampling_sites")).scalar_one()
    n_tubes = (n + 9) // 10
    box = Box(
        code="BOX-R",
        round_id=rnd.id,
        site_id=site_id,
        lab_id=lab.id,
        region_code="220102",
        state="received",
        declared_tubes=n_tubes,
        packed_at=SAMPLED,
        picked_up_at=SAMPLED,
        received_at=RECEIVED,
    )
    session.add(box)
    session.flush()
    bulk_insert(
        session,
        Tube,
        [*ingest_bench.RAW_TUBE_COLUMNS, "box_id", "lab_id", "received_at"],
        _tubes(n_tubes, rnd.id, site_id, box.id, lab.id),
    )
    first_tube = session.execute(select(func.min(Tube.id))).scalar_one()
    first_person = session.execute(text("SELECT min(id) FROM persons")).scalar_one()
    bulk_insert(
        session,
        "tube_members",
        ingest_bench.RAW_MEMBER_COLUMNS,
        (
            (
                rnd.id,
                first_tube + i // 10,
                first_person + i,
                i % 10 + 1,
                SAMPLED,
                grids[i // ingest_bench.PER_GRID],
                False,
                False,
            )
            for i in range(n)
        ),
    )
    return n_tubes


def _raw_update(engine: Any, n_tubes: int, every: int) -> tuple[float, tuple[float, float]]:
    """The limit: the results COPY'd in and written by one UPDATE, then rolled back."""
    with Session(engine) as session:
        session.begin()
        cpu0 = ingest_bench._cpu(session)
        t0 = time.perf_counter()
        session.execute(
            text(
                "CREATE TEMPORARY TABLE result_raw (barcode VARCHAR(24), result VARCHAR(16), "
                "ct_orf1ab FLOAT, ct_n FLOAT, tested_at TIMESTAMPTZ) ON COMMIT DROP"
            )
        )
        bulk_insert(
            session,
            "result_raw",
            ["barcode", "result", "ct_orf1ab", "ct_n", "tested_at"],
            ((f"RT{t:010d}", *_value(t, every), TESTED) for t in range(n_tubes)),
        )
        session.execute(
            text(
                "UPDATE tubes SET result = r.result, ct_orf1ab = r.ct_orf1ab, ct_n = r.ct_n, "
                "tested_at = r.tested_at, uploaded_at = now(), state = 'resulted' "
                "FROM result_raw r WHERE tubes.barcode = r.barcode"
            )
        )
        seconds = time.perf_counter() - t0
        cpu = ingest_bench._spent(cpu0, ingest_bench._cpu(session))
        session.rollback()
    return seconds, cpu


def run(n: int, every: int) -> None:
    with pg_database("bench_results") as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session, session.begin():
            n_tubes = prepare(session, n)
        ingest_bench._settle(engine)
        with clock.frozen(START + timedelta(hours=20)):
            limit_s, limit_cpu = _raw_update(engine, n_tubes, every)
            emit(
                "results_upload.raw_update",
                n_tubes / limit_s,
                "tubes/s",
                tubes=n_tubes,
                seconds=round(limit_s, 2),
                **ingest_bench.cpu_fields(limit_cpu),
            )
            ingest_bench._settle(engine)  # the rolled-back versions vacuumed away

            spent = {"coverage": 0.0, "pools": 0.0}
            real_counts = upload_module.coverage.add_results
            real_pools = upload_module.pools.process_results

            def timed(name: str, real: Any) -> Any:
                def call(**kwargs: Any) -> Any:
                    t = time.perf_counter()
                    try:
                        return real(**kwargs)
                    finally:
                        spent[name] += time.perf_counter() - t

                return call

            upload_module.coverage.add_results = timed("coverage", real_counts)
            upload_module.pools.process_results = timed("pools", real_pools)
            try:
                with Session(engine) as session, session.begin():
                    cpu0 = ingest_bench._cpu(session)
                    t0 = time.perf_counter()
                    report = results.upload_results(
                        db_session=session,
                        principal=system_principal(),
                        rows=_results(n_tubes, every),
                    )
                    upload_s = time.perf_counter() - t0
                    cpu = ingest_bench._spent(cpu0, ingest_bench._cpu(session))
                    holds = session.execute(select(func.count()).select_from(PoolHold)).scalar()
                    tasks = session.execute(select(func.count()).select_from(RetestTask)).scalar()
            finally:
                upload_module.coverage.add_results = real_counts
                upload_module.pools.process_results = real_pools
        assert report.accepted == n_tubes, (report.accepted, report.problems[:3])
        positive = n_tubes // every
        emit(
            "results_upload.round",
            n_tubes / upload_s,
            "tubes/s",
            tubes=n_tubes,
            people=n,
            seconds=round(upload_s, 2),
            limit=round(n_tubes / limit_s, 2),
            limit_name="results_upload.raw_update",
            ratio=round(upload_s / limit_s, 2),
            peak_rss_mb=peak_rss_mb(),
            **ingest_bench.cpu_fields(cpu),
            cpu_ratio=round(sum(cpu) / max(sum(limit_cpu), 1e-9), 2),
        )
        emit(
            "results_upload.pool_expansion",
            spent["pools"],
            "s",
            positive_tubes=positive,
            holds=holds,
            retest_tasks=tasks,
            note="inside results_upload.round: every positive pool's members held, a retest each",
        )
        emit(
            "results_upload.coverage_counters",
            spent["coverage"],
            "s",
            note="inside results_upload.round: results out and positives per home region",
        )
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--people", type=int, default=int(float(os.environ.get("BENCH_SCALE", "1")) * 9_000_000)
    )
    parser.add_argument("--positive-every", type=int, default=500)
    args = parser.parse_args(argv)
    run(args.people, args.positive_every)


if __name__ == "__main__":
    main()
