"""Kill the server with SIGKILL in the middle of a live ingest, restart it, re-send what was not
acknowledged: every acknowledged scan is there exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from bastion.accounts import service as account_service
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import transaction
from bastion.regions import service as region_service
from bastion.testing.models import ScanBatch, TubeMember
from tests.support import factories
from tests.support.world import _tree

START = datetime.now(UTC) - timedelta(hours=2)
PEOPLE = 400
PER_TUBE = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(url: str, port: int) -> subprocess.Popen[bytes]:
    """``bastion serve`` as in production: on PostgreSQL two workers under the supervisor (each
    with its own group-commit writer), in a session of its own so that killing the server kills
    every one of its processes at once."""
    workers = "1" if url.startswith("sqlite") else "2"
    env = {**os.environ, "BASTION_DATABASE_URL": url}
    proc = subprocess.Popen(  # noqa: S603 - our own server, on loopback
        [
            sys.executable,
            "-m",
            "bastion.cli.main",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            workers,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("the server did not start")


@pytest.fixture
def world(cli_env, fresh_database_url):
    with transaction() as session:
        region_service.load_base_regions(db_session=session)
        session.add_all(_tree("220102"))
        session.flush()
        with clock.frozen(START):
            rnd = factories.round_(session, starts_at=START - timedelta(hours=1))
        site = factories.site(session)
        tokens = [factories.person(session).token for _ in range(PEOPLE)]
        user = account_service.create(
            db_session=session,
            principal=system_principal(),
            username="sampler_kill",
            password="long-enough-1",
            role="sampler",
            region_code="220100",
        )
        token, _ = account_service.issue_token(user)
        return fresh_database_url, rnd.code, site.code, tokens, token


def _batches(rnd: str, site: str, tokens: list[str]) -> list[dict]:
    at = (START + timedelta(minutes=30)).isoformat()
    return [
        {
            "key": f"kill-test-{i:05d}",
            "round": rnd,
            "site": site,
            "groups": [
                {
                    "tube": f"TK{i:08d}",
                    "people": tokens[i * PER_TUBE : (i + 1) * PER_TUBE],
                    "scanned_at": at,
                }
            ],
        }
        for i in range(len(tokens) // PER_TUBE)
    ]


def test_every_acknowledged_scan_survives_a_sigkill_exactly_once(world):
    url, rnd, site, tokens, token = world
    batches = _batches(rnd, site, tokens)
    headers = {"Authorization": f"Bearer {token}"}
    port = _free_port()
    acked: dict[str, int] = {}
    lock = threading.Lock()
    proc = _start(url, port)

    def sender(items: list[dict]) -> None:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10
        ) as client:
            for batch in items:
                try:
                    response = client.post("/api/v1/scans/batches", json=batch)
                except httpx.HTTPError:
                    return  # the server died under us
                if response.status_code == 200:
                    with lock:
                        acked[batch["key"]] = response.json()["accepted"]

    threads = [threading.Thread(target=sender, args=(batches[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    while len(acked) < len(batches) // 4:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the supervisor and every worker, mid-group
    proc.wait()
    for thread in threads:
        thread.join()
    assert 0 < len(acked) < len(batches), "the kill must land mid-ingest"

    proc = _start(url, port)
    try:
        # Re-send everything: the unacknowledged batches land now, the acknowledged ones (and any
        # that landed without their answer getting out) replay without changing anything.
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
        ) as client:
            for batch in batches:
                response = client.post("/api/v1/scans/batches", json=batch)
                assert response.status_code == 200, response.text
                if batch["key"] in acked:
                    assert response.json()["replayed"] is True
                    assert response.json()["accepted"] == acked[batch["key"]]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    with transaction() as session:
        total = session.execute(select(func.count()).select_from(TubeMember)).scalar_one()
        distinct = session.execute(
            select(func.count(func.distinct(TubeMember.person_id)))
        ).scalar_one()
        assert total == distinct == PEOPLE
        for key, accepted in acked.items():
            batch_id = session.execute(
                select(ScanBatch.id).where(ScanBatch.key == key)
            ).scalar_one()
            landed = session.execute(
                select(func.count()).select_from(TubeMember).where(TubeMember.batch_id == batch_id)
            ).scalar_one()
            assert landed == accepted == PER_TUBE
