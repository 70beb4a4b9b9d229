"""The live sampling API under load: durable saves a second, with p99, against hello-world.

A sampler's scanner saves one tube's group (10 scans) per request and needs the answer only once
the scans are committed. wrk (C, on loopback, bounded in time) sends unique groups built by
bench/live_scans.lua to a uvicorn server with two workers over a throwaway PostgreSQL database
holding enough people that every scan is accepted; the same server's /api/v1/health is the
hello-world limit measured in the same run. Also reported for 100-scan requests (10 groups).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
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


def run(people: int, seconds: int, connections: int) -> None:
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
        port = _port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bastion.api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env={**os.environ, "BASTION_DATABASE_URL": url},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    subprocess.run(
                        ["wrk", "-t1", "-c1", "-d1s", f"{base}/api/v1/health"],
                        capture_output=True,
                        check=True,
                    )
                    break
                except subprocess.CalledProcessError:
                    time.sleep(0.3)
            hello = _wrk(f"{base}/api/v1/health", seconds, connections, None, {})
            emit(
                "live.hello_world",
                hello["rate"],
                "requests/s",
                p99_ms=hello["p99"],
                connections=connections,
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
                result = _wrk(
                    f"{base}/api/v1/scans/batches",
                    seconds,
                    connections,
                    HERE / "live_scans.lua",
                    env,
                )
                scans = result["rate"] * groups * 10
                emit(
                    f"live.scans_{groups * 10}_per_request",
                    scans,
                    "scans/s",
                    requests_per_s=round(result["rate"], 1),
                    p50_ms=result["p50"],
                    p99_ms=result["p99"],
                    non_2xx=int(result["non2xx"]),
                    limit=round(hello["rate"], 2),
                    limit_name="live.hello_world (requests/s)",
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
    parser.add_argument("--people", type=int, default=max(200_000, int(2_000_000 * scale)))
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    run(args.people, args.seconds, args.connections)


if __name__ == "__main__":
    main()
