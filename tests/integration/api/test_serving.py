"""``bastion serve --workers 2``: a supervisor and two workers, each listening on the port itself.

The real command in a process of its own (as an operator starts it), on a migrated SQLite file:
it serves; a worker killed is replaced; SIGTERM stops everything; a supervisor killed with
SIGKILL takes its workers with it (none is left holding the port); a port already taken is
refused at once with the reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from bastion.core import migrate
from bastion.core.db import dispose_engines

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT workers"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found |= {int(c) for c in task.read_text().split()}
        except OSError:
            continue
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _until(what, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what.__doc__ or what}")


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _workers(proc: subprocess.Popen[bytes]) -> set[int]:
    """The supervisor's worker processes (multiprocessing's resource tracker is not one)."""
    return {
        pid
        for pid in _children(proc.pid)
        if _alive(pid) and b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    }


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    migrate.upgrade(url)
    dispose_engines()
    return url


def _serve(url: str, port: int, *extra: str, stderr: int = subprocess.DEVNULL):
    return subprocess.Popen(  # noqa: S603 - our own server, on loopback
        [sys.executable, "-m", "bastion.cli.main", "serve", "--port", str(port), *extra],
        env={**os.environ, "BASTION_DATABASE_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )


@pytest.fixture
def server(database: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    proc = _serve(database, port, "--workers", "2")
    try:
        _until(lambda: _healthy(port) and len(_workers(proc)) == 2)
        yield proc, port
    finally:
        for pid in _children(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=30)


def test_two_workers_share_the_port_a_dead_one_is_replaced_sigterm_stops_all(server):
    proc, port = server
    workers = _workers(proc)
    assert len(workers) == 2
    # Each worker has a listening socket of its own on the port (not one inherited socket).
    listening = {pid: _listening_inodes(pid, port) for pid in workers}
    assert all(len(inodes) == 1 for inodes in listening.values()), listening
    assert len(set.union(*listening.values())) == 2
    # Connections are spread over both: of 24 kept open, each worker holds some (all 24 on
    # one worker would happen by chance once in eight million runs).
    clients = [httpx.Client() for _ in range(24)]
    try:
        for client in clients:
            assert client.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200
        assert all(_established(pid, port) for pid in workers)
    finally:
        for client in clients:
            client.close()

    # A worker killed is replaced; the port is served meanwhile by the other.
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    replaced = _until(lambda: (w := _workers(proc)) and len(w) == 2 and victim not in w and w)
    assert len(replaced & workers) == 1
    assert _until(lambda: _healthy(port))

    # SIGTERM stops the supervisor and its workers.
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not any(_alive(pid) for pid in replaced)
    assert not _healthy(port)


def test_a_supervisor_killed_outright_leaves_no_worker_behind(server):
    proc, port = server
    workers = _workers(proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    _until(lambda: not any(_alive(pid) for pid in workers), 60)
    assert not _healthy(port)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_refused_at_once(database, workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _serve(database, port, "--workers", workers, stderr=subprocess.PIPE)
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use".encode() in err
    assert b"Traceback" not in err


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _tcp_rows(pid: int) -> list[list[str]]:
    rows = []
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        rows += [line.split() for line in lines]
    return rows


def _listening_inodes(pid: int, port: int) -> set[str]:
    """Inodes of the sockets ``pid`` holds that listen on ``port`` (state 0A)."""
    mine = _socket_inodes(pid)
    return {
        row[9]
        for row in _tcp_rows(pid)
        if int(row[1].rsplit(":", 1)[1], 16) == port and row[3] == "0A" and row[9] in mine
    }


def _established(pid: int, port: int) -> bool:
    """Whether ``pid`` holds a connection accepted on ``port`` (states ESTABLISHED..CLOSE)."""
    mine = _socket_inodes(pid)
    return any(
        int(row[1].rsplit(":", 1)[1], 16) == port and row[3] != "0A" and row[9] in mine
        for row in _tcp_rows(pid)
    )
