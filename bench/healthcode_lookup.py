"""Health-code lookups under load: lookups/s with p50/p99 against hello-world on the same server,
then overload (429 share, 5xx count) and recovery.

A throwaway PostgreSQL database holds N people (a tenth of them yellow or red in
``code_status``), resident accounts linked to people and grid workers over the whole district,
each with a real bearer token. The server (granian by default, or uvicorn; two workers) runs the
full app with one extra raw ASGI ``/hello`` in front of it: the hello-world limit of the same
server in the same run. wrk (C, loopback, bounded in time) drives, through
bench/healthcode_lookup.lua, which also counts the answers by status:

1. ``hello``: raw ASGI hello-world; ``health``: FastAPI's /api/v1/health (for reference);
2. ``mine``: residents' own codes (``GET /api/v1/codes/mine``: status, signed payload, reason);
3. ``lookup``: staff lookups (``GET /api/v1/codes/lookup?person=…``, permission + region);
4. ``overload``: the server restarted with its admission limit at a tenth of the rate measured
   in 2 (wrk shares the two cores, so it cannot offer 3× what the server sustains; with the
   limit lower the offered load is several times what is admitted: ``offered_over_admitted``),
   warmed, then driven with three times the connections. The excess must be 429 with
   Retry-After, never a 5xx; then ``recovery``: a gentle load, all answered 200.
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
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bastion.accounts import service as account_service
from bastion.accounts.models import User
from bastion.core import clock, migrate
from bastion.core.auth import hash_password
from bastion.core.db import bulk_insert, make_engine
from bastion.healthcode import keys
from bastion.healthcode.models import CodeStatus
from bench import ingest as people_bench
from bench.common import bench_scale, emit, note
from bench.support import pg_database

HERE = Path(__file__).parent
WORKERS = 2


def create_bench_app() -> Any:
    """The full app behind a raw ASGI /hello: the same server's hello-world limit."""
    from bastion.healthcode.lookup_asgi import create_server

    app = create_server()
    body = b'{"hello":"world"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"17")]

    async def with_hello(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/hello":
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return with_hello


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _populate(url: str, people: int, residents: int, staff: int, looked_up: int, out: Path) -> None:
    """People, statuses, accounts and their tokens (files the wrk script reads)."""
    engine = make_engine(url)
    now = people_bench.START
    with clock.frozen(now), Session(engine) as session, session.begin():
        people_bench.prepare(session, people)
        session.flush()
        ids = session.execute(text("SELECT id, token FROM persons ORDER BY id")).all()
        statuses = (
            (
                pid,
                ("yellow", "red")[i % 2],
                "bench:rule",
                "healthcode.reason.default",
                "bench",
                str(pid),
                None,
                None,
                1,
                now,
            )
            for i, (pid, _) in enumerate(ids[::10])
        )
        bulk_insert(
            session,
            CodeStatus,
            [
                "person_id",
                "colour",
                "rule",
                "reason_key",
                "evidence_type",
                "evidence_id",
                "popup",
                "valid_until",
                "version",
                "changed_at",
            ],
            statuses,
        )
        password = hash_password("bench-password-1")
        step = max(1, len(ids) // residents)
        rows = [
            User(
                username=f"bench_r{i}",
                display_name="r",
                password_hash=password,
                role="resident",
                region_code="220102",
                person_id=ids[i * step][0],
                active=True,
                token_version=0,
                created_at=now,
            )
            for i in range(residents)
        ] + [
            User(
                username=f"bench_s{i}",
                display_name="s",
                password_hash=password,
                role="grid_worker",
                region_code="220102",
                person_id=None,
                active=True,
                token_version=0,
                created_at=now,
            )
            for i in range(staff)
        ]
        session.add_all(rows)
        keys.ensure_active(db_session=session)
    # Tokens are issued now, not at the data's frozen time (they would have expired long ago).
    resident_tokens, staff_tokens = [], []
    with Session(engine) as session:
        users = session.execute(select(User).where(User.username.like("bench_%"))).scalars()
        for user in users:
            (resident_tokens if user.role == "resident" else staff_tokens).append(
                account_service.issue_token(user)[0]
            )
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    (out / "residents.txt").write_text("\n".join(resident_tokens) + "\n")
    (out / "staff.txt").write_text("\n".join(staff_tokens) + "\n")
    # The people staff look up: a working set spread over the whole population.
    (out / "people.txt").write_text("\n".join(t for _, t in ids[:: max(1, len(ids) // looked_up)]))


@contextmanager
def _server(kind: str, url: str, env: dict[str, str]) -> Iterator[str]:
    port = _port()
    target = "bench.healthcode_lookup:create_bench_app"
    if kind == "granian":
        cmd = [
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
            str(WORKERS),
            "--log-level",
            "warning",
            "--no-ws",
            target,
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(WORKERS),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    # A session of its own: the whole server (master and workers) stops together.
    server = subprocess.Popen(
        cmd,
        env={**os.environ, **env, "BASTION_DATABASE_URL": url},
        cwd=HERE.parent,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # importing the app is slow on a busy machine
        while True:
            try:
                with urllib.request.urlopen(f"{base}/hello", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the {kind} server did not come up")
            time.sleep(0.5)
        # Every worker answers (each imports the app on its own).
        for _ in range(20):
            with urllib.request.urlopen(f"{base}/hello", timeout=30) as answer:  # noqa: S310
                assert answer.status == 200
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _wrk(
    base: str, mode: str, seconds: int, connections: int, files: Path, **extra: str
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_MODE": mode,
        "BENCH_RESIDENTS": str(files / "residents.txt"),
        "BENCH_STAFF": str(files / "staff.txt"),
        "BENCH_PEOPLE": str(files / "people.txt"),
        **extra,
    }
    threads = min(2, connections)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(HERE / "healthcode_lookup.lua"),
        base,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or "Requests/sec" not in done.stdout:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    out = done.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return round(value / 1000 if unit == "us" else value * 1000 if unit == "s" else value, 2)

    statuses = {int(s): int(n) for s, n in re.findall(r"^status (\d+) (\d+)$", out, re.M)}
    errors = re.search(r"Socket errors: (.*)", out)
    total = sum(statuses.values()) or 1
    return {
        "rate": rate,
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "statuses": statuses,
        "ok_rate": rate * statuses.get(200, 0) / total,
        "share_429": round(statuses.get(429, 0) / total, 4),
        "count_5xx": sum(n for s, n in statuses.items() if s >= 500),
        "socket_errors": errors.group(1).strip() if errors else "",
    }


def run(
    people: int,
    seconds: int,
    connections: int,
    server: str,
    residents: int = 2000,
    looked_up: int = 5000,
    warmup: int = 15,
) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")
    with pg_database("bench_codes") as url, tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp)
        migrate.upgrade(url)
        note(f"healthcode_lookup: {people} people, statuses, accounts …")
        started = time.perf_counter()
        _populate(url, people, residents=residents, staff=50, looked_up=looked_up, out=files)
        note(f"  populated in {time.perf_counter() - started:.0f} s; starting {server}")
        measured: dict[str, dict[str, Any]] = {}
        with _server(server, url, {"BASTION_CODE_LOOKUP_RATE": "0"}) as base:
            for mode, extra in (("hello", {}), ("health", {"BENCH_PATH": "/api/v1/health"})):
                measured[mode] = _wrk(base, "hello", seconds, connections, files, **extra)
                note(f"  {mode}: {measured[mode]}")
            for mode in ("mine", "lookup"):
                # Warm up right before: every worker meets each resident or person once
                # (misses, read from the database); the measured run sees the steady state.
                _wrk(base, mode, warmup, connections, files)
                measured[mode] = _wrk(base, mode, seconds, connections, files)
                note(f"  {mode}: {measured[mode]}")
        hello = measured["hello"]["rate"]
        emit(
            "healthcode_lookup.hello_world",
            hello,
            "requests/s",
            p99_ms=measured["hello"]["p99_ms"],
            server=server,
            connections=connections,
            fastapi_health_rate=round(measured["health"]["rate"], 1),
        )
        for mode in ("mine", "lookup"):
            m = measured[mode]
            emit(
                f"healthcode_lookup.{mode}",
                m["rate"],
                "lookups/s",
                limit=hello,
                ratio=round(m["rate"] / hello, 3),
                limit_name="healthcode_lookup.hello_world (requests/s)",
                ratio_meaning="lookups/s over hello-world requests/s (1.0 = as fast as hello)",
                p50_ms=m["p50_ms"],
                p99_ms=m["p99_ms"],
                statuses=m["statuses"],
                count_5xx=m["count_5xx"],
                people=people,
                working_set=residents if mode == "mine" else looked_up,
                warmup_s=warmup,
                server=server,
                connections=connections,
                target=">= 10000 lookups/s, p99 <= 50 ms, >= 0.5 x hello-world",
            )
        sustainable = measured["mine"]["rate"]
        # The generator shares the two cores with the server: a closed loop cannot offer three
        # times what the server sustains. The limit goes to a tenth of it instead, so the offered
        # load is several times what is admitted (reported as offered_over_admitted).
        per_worker = max(1.0, sustainable / 10 / WORKERS)
        env = {"BASTION_CODE_LOOKUP_RATE": f"{per_worker:.0f}", "BASTION_CODE_LOOKUP_BURST": "50"}
        with _server(server, url, env) as base:
            # Warm this server's caches first (below the limit: every resident seen once), so
            # the overload meets the steady state, not a cold start.
            _wrk(base, "mine", warmup, 4, files)
            over = _wrk(base, "mine", seconds, connections * 3, files)
            note(f"  overload: {over}")
            time.sleep(1)
            calm = _wrk(base, "mine", max(3, seconds // 3), 2, files, BENCH_DELAY_MS="20")
            note(f"  recovery: {calm}")
        admitted = per_worker * WORKERS
        emit(
            "healthcode_lookup.overload",
            over["rate"],
            "requests/s",
            admitted_limit=round(admitted, 1),
            offered_over_admitted=round(over["rate"] / admitted, 2),
            ok_rate=round(over["ok_rate"], 1),
            share_429=over["share_429"],
            count_5xx=over["count_5xx"],
            statuses=over["statuses"],
            p50_ms=over["p50_ms"],
            p99_ms=over["p99_ms"],
            socket_errors=over["socket_errors"],
            server=server,
            connections=connections * 3,
            target="excess answered 429 + Retry-After, no 5xx, no crash",
        )
        emit(
            "healthcode_lookup.recovery",
            calm["rate"],
            "requests/s",
            share_429=calm["share_429"],
            count_5xx=calm["count_5xx"],
            statuses=calm["statuses"],
            p99_ms=calm["p99_ms"],
            server=server,
            target="after the overload, a load below the limit is answered 200",
        )


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwind: the server and the database are cleaned up


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=max(20_000, int(1_000_000 * bench_scale())))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    parser.add_argument("--residents", type=int, default=2000, help="resident accounts in use")
    parser.add_argument("--looked-up", type=int, default=5000, help="people staff look up")
    parser.add_argument("--warmup", type=int, default=15, help="seconds of warm-up per kind")
    args = parser.parse_args(argv)
    run(
        args.people,
        args.seconds,
        args.connections,
        args.server,
        args.residents,
        args.looked_up,
        args.warmup,
    )


if __name__ == "__main__":
    main()
