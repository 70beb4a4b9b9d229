"""Population: building the demo province and importing a registry file, each against the raw
limit of the same rows written into the same table, on SQLite and on PostgreSQL.

For each backend, in a database of its own (a SQLite file in a temporary directory; a throwaway
PostgreSQL database, dropped afterwards):

* **population.build.<db>**: ``simulate.province.build_province`` of ``--persons`` people
  (1,000,000 × BENCH_SCALE), commit included, in a process of its own so its peak RSS is its own
  (the writing process's: a large build generates in a second process, whose memory is flat).
* **population.build_raw.<db>**: the limit: the persons rows that build wrote, dumped, the table
  emptied, and written again with no generation and no checks: binary ``COPY`` on PostgreSQL, a
  plain ``executemany`` on SQLite (same indexes, same connection settings, commit included).
  ``ratio`` on the build line is build seconds / raw seconds (the build also writes households,
  buildings and regions, which the raw figure does not).
* **population.import.<db>** and **population.import_raw.<db>**: ``registry.importer`` on a CSV
  of ``--import-rows`` of those people (100,000 × BENCH_SCALE) into an emptied registry (every
  check on, households created), against the raw write of the rows it landed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from bench.common import bench_scale, emit, note
from bench.support import pg_database

PERSONS = 1_000_000
IMPORT_ROWS = 100_000
PROVINCE = 24_073_453
COLUMNS = (
    "token, name, id_type, id_cipher, id_hash, id_masked, sex, birth_date, phone, region_code, "
    "household_id, address, special_groups, created_at, updated_at"
)
CHUNK = 50_000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    scale = bench_scale()
    parser.add_argument("--persons", type=int, default=max(1_000, int(PERSONS * scale)))
    parser.add_argument("--import-rows", type=int, default=max(100, int(IMPORT_ROWS * scale)))
    parser.add_argument("--backend", choices=("all", "sqlite", "postgresql"), default="all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", choices=("build", "import"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args)
        return
    backends = ("sqlite", "postgresql") if args.backend == "all" else (args.backend,)
    for backend in backends:
        with _database(backend) as url:
            _measure(backend, url, args.persons, min(args.import_rows, args.persons), args.seed)


@contextmanager
def _database(backend: str) -> Iterator[str]:
    if backend == "postgresql":
        with pg_database("bench_population") as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="bench-population-") as directory:
        yield f"sqlite:///{Path(directory) / 'bench.db'}"


def _measure(backend: str, url: str, persons: int, import_rows: int, seed: int) -> None:
    from bastion.core import migrate

    migrate.upgrade(url)
    scale = persons / PROVINCE
    note(f"{backend}: building the province at scale {scale:.5f} (~{persons:,} persons)")
    built = _in_child("build", url, f"--persons={persons}", f"--seed={seed}")
    note(f"{backend}: the raw limit (the same persons rows, no generation, no checks)")
    raw_s = _raw_rewrite(backend, url, cache_kib=_build_cache_kib())
    n = built["persons"]
    emit(
        f"population.build_raw.{backend}",
        n / raw_s,
        "persons/s",
        persons=n,
        seconds=round(raw_s, 2),
        method="binary COPY" if backend == "postgresql" else "executemany",
    )
    emit(
        f"population.build.{backend}",
        n / built["seconds"],
        "persons/s",
        limit=n / raw_s,
        ratio=built["seconds"] / raw_s,
        persons=n,
        households=built["households"],
        buildings=built["buildings"],
        seconds=round(built["seconds"], 2),
        peak_rss_mb=built["peak_rss_mb"],
        **({"target": "1,000,000 persons well under a minute"} if backend == "sqlite" else {}),
    )

    with tempfile.TemporaryDirectory(prefix="bench-import-") as directory:
        path = Path(directory) / "persons.csv"
        note(f"{backend}: exporting {import_rows:,} persons to CSV, emptying the registry")
        path.write_bytes(_export_csv(url, import_rows))
        _empty_registry(backend, url)
        note(f"{backend}: importing the CSV")
        imported = _in_child("import", url, f"--csv={path}")
    note(f"{backend}: the raw limit of the imported rows")
    raw_import_s = _raw_rewrite(backend, url, cache_kib=None)
    rows = imported["created"]
    emit(
        f"population.import_raw.{backend}",
        rows / raw_import_s,
        "persons/s",
        persons=rows,
        seconds=round(raw_import_s, 2),
        method="binary COPY" if backend == "postgresql" else "executemany",
    )
    emit(
        f"population.import.{backend}",
        rows / imported["seconds"],
        "persons/s",
        limit=rows / raw_import_s,
        ratio=imported["seconds"] / raw_import_s,
        persons=rows,
        seconds=round(imported["seconds"], 2),
        peak_rss_mb=imported["peak_rss_mb"],
    )


def _build_cache_kib() -> int:
    from bastion.simulate.province import SQLITE_BUILD_CACHE_KIB

    return SQLITE_BUILD_CACHE_KIB


# The measured work, each in a process of its own -------------------------------------------


def _in_child(kind: str, url: str, *args: str) -> dict[str, Any]:
    """Run ``--child kind`` in a new interpreter; returns the JSON object it prints."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.population", f"--child={kind}", f"--url={url}", *args],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux from VmHWM, which starts afresh at exec:
    ru_maxrss would also count the RSS of the parent this process was forked from."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _child(args: argparse.Namespace) -> None:
    from bastion.core.db import make_engine

    engine = make_engine(args.url)
    if args.child == "build":
        from bastion.simulate.province import build_province

        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            summary = build_province(
                db_session=session, scale=args.persons / PROVINCE, seed=args.seed
            )
        seconds = time.perf_counter() - started
        out: dict[str, Any] = {
            "persons": summary.persons,
            "households": summary.households,
            "buildings": summary.buildings,
        }
    else:
        from bastion.core.auth import system_principal
        from bastion.registry.importer import import_persons

        data = Path(args.csv).read_bytes()
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            result = import_persons(
                db_session=session, principal=system_principal(), filename="bench.csv", data=data
            )
        seconds = time.perf_counter() - started
        assert not result.problems, result.problems[:3]
        out = {"created": result.created}
    engine.dispose()
    out.update(seconds=seconds, peak_rss_mb=_peak_rss_mb())
    print(json.dumps(out), flush=True)


# Export, empty, and the raw limit ------------------------------------------------------------


def _export_csv(url: str, rows: int) -> bytes:
    """The first ``rows`` persons as a registry file (plain ID numbers, household numbers,
    special groups by name), as a person would upload it."""
    from bastion.core import crypto
    from bastion.core.db import make_engine
    from bastion.registry.enums import SpecialGroup
    from bastion.registry.models import Household, Person

    engine = make_engine(url)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["姓名", "身份证号", "性别", "出生日期", "手机号", "区划代码", "住址", "户号", "特殊人群"]
    )
    with Session(engine) as session:
        query = (
            select(
                Person.name,
                Person.id_cipher,
                Person.sex,
                Person.birth_date,
                Person.phone,
                Person.region_code,
                Person.address,
                Household.household_no,
                Person.special_groups,
            )
            .join(Household, Household.id == Person.household_id)
            .order_by(Person.id)
            .limit(rows)
        )
        for name, cipher, sex, born, phone, region, address, household, groups in session.execute(
            query
        ):
            writer.writerow(
                [
                    name,
                    crypto.decrypt(cipher),
                    "男" if sex == "M" else "女",
                    born.isoformat(),
                    phone or "",
                    region,
                    address,
                    household,
                    ";".join(SpecialGroup.names(groups)),
                ]
            )
    engine.dispose()
    return out.getvalue().encode("utf-8")


def _empty_registry(backend: str, url: str) -> None:
    """No persons, households or buildings left (regions stay): the import starts from scratch."""
    if backend == "postgresql":
        with psycopg.connect(_pg_conninfo(url), autocommit=True) as conn:
            # CASCADE: tables pointing at persons (users, tube members …) are empty here.
            conn.execute("TRUNCATE persons, households, buildings CASCADE")
        return
    conn = sqlite3.connect(_sqlite_path(url), isolation_level=None)
    for table in ("persons", "households", "buildings"):
        conn.execute(f"DELETE FROM {table}")  # noqa: S608 - our table names
    conn.execute("VACUUM")
    conn.close()


def _raw_rewrite(backend: str, url: str, *, cache_kib: int | None) -> float:
    """Dump the persons rows, empty the table, and time writing them back with nothing but
    the database's own bulk path. Returns the seconds, commit included."""
    if backend == "postgresql":
        return _pg_raw_rewrite(url)
    return _sqlite_raw_rewrite(url, cache_kib)


def _pg_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _sqlite_path(url: str) -> str:
    database = make_url(url).database
    assert database, url
    return database


def _pg_raw_rewrite(url: str) -> float:
    with tempfile.TemporaryFile() as dump:
        with psycopg.connect(_pg_conninfo(url), autocommit=True) as conn:
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY persons ({COLUMNS}) TO STDOUT (FORMAT BINARY)") as copy,
            ):
                for block in copy:
                    dump.write(block)
            conn.execute("TRUNCATE persons CASCADE")
        dump.seek(0)
        with psycopg.connect(_pg_conninfo(url)) as conn:
            started = time.perf_counter()
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY persons ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                while block := dump.read(1 << 20):
                    copy.write(block)
            conn.commit()
            return time.perf_counter() - started


def _sqlite_raw_rewrite(url: str, cache_kib: int | None) -> float:
    path = _sqlite_path(url)
    with tempfile.TemporaryDirectory(prefix="bench-dump-") as directory:
        dump_path = str(Path(directory) / "dump.db")
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("ATTACH DATABASE ? AS dump", (dump_path,))
        conn.execute(f"CREATE TABLE dump.p AS SELECT {COLUMNS} FROM persons ORDER BY id")  # noqa: S608
        conn.execute("DETACH DATABASE dump")
        conn.execute("DELETE FROM persons")
        conn.execute("VACUUM")
        # The application's connection settings (core.db), and the build's page cache.
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA synchronous=NORMAL")
        if cache_kib:
            conn.execute(f"PRAGMA cache_size=-{cache_kib}")
        source = sqlite3.connect(dump_path)
        rows = source.execute(f"SELECT {COLUMNS} FROM p")  # noqa: S608
        placeholders = ", ".join("?" for _ in COLUMNS.split(","))
        sql = f"INSERT INTO persons ({COLUMNS}) VALUES ({placeholders})"  # noqa: S608
        # Only the writes are timed: reading the dump back is not the database's limit.
        seconds = 0.0
        conn.execute("BEGIN")
        while batch := rows.fetchmany(CHUNK):
            started = time.perf_counter()
            conn.executemany(sql, batch)
            seconds += time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("COMMIT")
        seconds += time.perf_counter() - started
        source.close()
        conn.close()
    return seconds


if __name__ == "__main__":
    main(sys.argv[1:])
