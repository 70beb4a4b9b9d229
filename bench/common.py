"""Shared by every benchmark: machine facts and the one-JSON-line-per-result emitter.

Every result is one JSON object on stdout: ``name``, ``value``, ``unit``, ``limit`` (the raw
limit it is compared with, measured in the same run, in the same unit; null when there is
none), ``ratio`` (how many times slower than that limit: our seconds / the limit's seconds),
any extra figures, and ``machine``. Progress notes go to stderr, so stdout stays a clean JSONL
file (``python -m bench.run > results.jsonl``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sqlite3
import sys
from functools import cache
from typing import Any

#: The PostgreSQL server the benchmarks use (its administrative database).
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN", "postgresql://root@127.0.0.1:5432/postgres")


def bench_scale() -> float:
    """BENCH_SCALE: 1 (the default) runs every benchmark at full size; 0.01 at a hundredth."""
    return float(os.environ.get("BENCH_SCALE", "1"))


@cache
def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gb = None
    with contextlib.suppress(ValueError, OSError):
        memory_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": postgres_version(),
        "platform": sys.platform,
    }


@cache
def postgres_version() -> str | None:
    """The server's version, or None when no server answers."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except Exception:  # noqa: BLE001 - no server is a fact to report, not a failure
        return None
    return str(row[0]) if row else None


def note(text: str) -> None:
    """A progress line for the person watching (stderr, never mixed into the results)."""
    print(text, file=sys.stderr, flush=True)


def emit(
    name: str,
    value: float,
    unit: str,
    *,
    limit: float | str | None = None,
    ratio: float | None = None,
    **extra: Any,
) -> None:
    """Print one result as a JSON line: name, value, unit, limit, ratio, any extras, and the
    machine."""
    record = {
        "name": name,
        "value": round(value, 2),
        "unit": unit,
        "limit": round(limit, 2) if isinstance(limit, float) else limit,
        "ratio": None if ratio is None else round(ratio, 2),
        **extra,
        # Other work on the machine skews timings: say how busy it was.
        "load_1min": round(os.getloadavg()[0], 2),
        "machine": machine(),
    }
    print(json.dumps(record, ensure_ascii=False), flush=True)
