"""The live sampling API under load: durable saves a second, with p99, against hello-world.

A sampler's scanner saves one tube's group (10 scans) per request and needs the answer only once
the scans are committed. wrk (C, on loopback, bounded in time) sends unique groups built by
bench/live_scans.lua to a server (granian and uvicorn in turn, two workers each) over a
throwaway PostgreSQL database holding enough people that every scan is accepted; the same
server's /api/v1/health is the hello-world limit measured in the same run. Also reported for
100-scan requests (10 groups). On a shared machine the rates follow the load; the CPU time the
server and PostgreSQL spend per request (read from /proc) does much less, and is reported too.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from bastion.accounts import service as account_service
from bastion.core import clock, migrate
from bastion.core.auth import system_principal
from bastion.core.db import make_engine
from bastion.testing import service as testing_service
from bastion.testing.schemas import RoundCreate
from bench import ingest as bulk
from bench.common import emit
from bench.support import pg_database

HERE = Path(__file__).parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each of ``pids`` so far (gone processes are left out)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


def _cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two readings (a process born in between started at 0)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _tree(root: int) -> list[int]:
    """``root`` and its descendants."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in task.read_text().split()]
    return found


def _backends(database: str) -> list[int]:
    """The PostgreSQL server processes serving ``database``."""
    import psycopg

    from bench.support import ADMIN_URL

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def _measured(
    server: subprocess.Popen[bytes], database: str, work: Callable[[], dict[str, float]]
) -> tuple[dict[str, float], float, float]:
    """Run ``work`` (a wrk run); its result and the CPU seconds the server (every worker) and
    the database's backends spent meanwhile."""
    server_before = _cpu_by_pid(_tree(server.pid))
    db_before = _cpu_by_pid(_backends(database))
    result = work()
    server_after = _cpu_by_pid(_tree(server.pid))
    db_after = _cpu_by_pid(_backends(database))
    return result, _cpu_spent(server_before, server_after), _cpu_spent(db_before, db_after)


def _wait_until_serving(url: str) -> None:
    """Until the server answers 200 ten times in a row (every worker up), for at most 120 s."""
    deadline = time.monotonic() + 120
    streak = 0
    while streak < 10:
        if time.monotonic() > deadline:
            sys.exit(f"the server never answered {url}")
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - loopback
                streak = streak + 1 if answer.status == 200 else 0
        except OSError:
            streak = 0
            time.sleep(0.3)
    time.sleep(1)


def _wrk(
    url: str, seconds: int, connections: int, script: Path | None, env: dict[str, str]
) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        cmd += ["-s", str(script)]
    done = subprocess.run(
        [*cmd, url], capture_output=True, text=True, env={**os.environ, **env}, check=True
    )
    out = done.stdout
    if os.environ.get("BENCH_DEBUG"):
        print(done.stderr[:2000], file=sys.stderr)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rate": rate,
        "p50": ms("50"),
        "p99": ms("99"),
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


def server_command(name: str, port: int, workers: int) -> list[str]:
    """The command line of one of the servers compared (``bastion serve`` uses uvicorn)."""
    if name == "granian":
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-ws",
            "bastion.healthcode.lookup_asgi:create_server",
        ]
    # uvicorn as `bastion serve` runs it: one socket per worker (SO_REUSEPORT), a supervisor.
    return [
        sys.executable,
        "-m",
        "bastion.cli.main",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def run(
    people: int, seconds: int, connections: int, server_name: str, workers: int, warmup: int
) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    with pg_database("bench_live") as url:
        migrate.upgrade(url)
        engine = make_engine(url)
        with Session(engine) as session, session.begin():
            _, site = bulk.prepare(session, people)
            with clock.frozen(bulk.START):
                testing_service.create_round(
                    db_session=session,
                    principal=system_principal(),
                    data=RoundCreate(
                        code="LIVE",
                        name="live",
                        region_code="220100",
                        starts_at=bulk.START - timedelta(days=1),
                        deadline_at=bulk.START + timedelta(days=3650),
                    ),
                )
            user = account_service.create(
                db_session=session,
                principal=system_principal(),
                username="bench_sampler",
                password="bench-password-1",  # noqa: S106 - a throwaway benchmark user
                role="sampler",
                region_code="220100",
            )
            token, _ = account_service.issue_token(user)
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
        engine.dispose()
        database = url.rsplit("/", 1)[1]
        port = _port()
        server = subprocess.Popen(
            server_command(server_name, port, workers),
            env={**os.environ, "BASTION_DATABASE_URL": url},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_until_serving(f"{base}/api/v1/health")
            hello, hello_cpu, _ = _measured(
                server,
                database,
                lambda: _wrk(f"{base}/api/v1/health", seconds, connections, None, {}),
            )
            emit(
                f"live.hello_world.{server_name}",
                hello["rate"],
                "requests/s",
                p99_ms=hello["p99"],
                connections=connections,
                server_cpu_ms_per_request=round(
                    hello_cpu * 1000 / max(1.0, hello["rate"] * seconds), 3
                ),
            )
            offset = 0
            for groups in (1, 10):
                env = {
                    "BENCH_TOKEN": token,
                    "BENCH_SITE": site,
                    "BENCH_ROUND": "LIVE",
                    "BENCH_GROUPS": str(groups),
                    "BENCH_OFFSET": str(offset),
                    "BENCH_PEOPLE": str(people),
                    "BENCH_START": (bulk.START + timedelta(hours=1)).isoformat(),
                }
                if groups == 1 and warmup > 0:
                    # Sustained rates: the first second of a fresh server (connections opened,
                    # statements prepared, caches filled, plans made on empty tables) is slow
                    # for every connection at once, and alone it made up most of the 1% tail.
                    warm = _wrk(
                        f"{base}/api/v1/scans/batches",
                        warmup,
                        connections,
                        HERE / "live_scans.lua",
                        env,
                    )
                    emit(
                        f"live.warmup_10_per_request.{server_name}",
                        warm["rate"] * 10,
                        "scans/s",
                        p50_ms=warm["p50"],
                        p99_ms=warm["p99"],
                        non_2xx=int(warm["non2xx"]),
                        seconds=warmup,
                        note="a fresh server's first seconds, not timed for the target",
                    )
                    offset += int(warm["rate"] * warmup * 10 * 1.5) + 100_000
                    env["BENCH_OFFSET"] = str(offset)
                result, server_cpu, db_cpu = _measured(
                    server,
                    database,
                    functools.partial(
                        _wrk,
                        f"{base}/api/v1/scans/batches",
                        seconds,
                        connections,
                        HERE / "live_scans.lua",
                        env,
                    ),
                )
                requests = max(1.0, result["rate"] * seconds)
                server_ms = server_cpu * 1000 / requests
                pg_ms = db_cpu * 1000 / requests
                scans = result["rate"] * groups * 10
                emit(
                    f"live.scans_{groups * 10}_per_request.{server_name}",
                    scans,
                    "scans/s",
                    requests_per_s=round(result["rate"], 1),
                    p50_ms=result["p50"],
                    p99_ms=result["p99"],
                    non_2xx=int(result["non2xx"]),
                    server_cpu_ms_per_request=round(server_ms, 3),
                    postgres_cpu_ms_per_request=round(pg_ms, 3),
                    limit=round(hello["rate"], 2),
                    limit_name=f"live.hello_world.{server_name} (requests/s)",
                    server=server_name,
                    workers=workers,
                    connections=connections,
                    warmup_s=warmup,
                    # Here the ratio is requests/s over hello-world's: 1.0 would be as fast as
                    # the bare HTTP stack of the same server.
                    ratio=round(result["rate"] / hello["rate"], 3),
                    target=">= 20000 scans/s as 10-scan requests, p99 <= 200 ms",
                )
                offset += int(result["rate"] * seconds * groups * 10 * 1.5) + 100_000
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    parser.add_argument("--people", type=int, default=max(300_000, int(3_000_000 * scale)))
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of scans before timing")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server", choices=["granian", "uvicorn", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    for name in ("granian", "uvicorn") if args.server == "both" else (args.server,):
        run(args.people, args.seconds, args.connections, name, args.workers, args.warmup)


if __name__ == "__main__":
    main()
