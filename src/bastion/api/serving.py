"""Running the production server: ``bastion serve``.

One worker is uvicorn as it comes. Several workers (one per core) each get a listening socket
of their own on the same port (``SO_REUSEPORT``), so the kernel spreads connections over them
evenly. With one socket shared by every worker (uvicorn's own ``--workers``), whichever worker
wakes first accepts a burst of new connections: measured with 64 scanner connections and two
workers, one worker held 54 of them, batched 32 requests a commit while the other idled at 4,
and the live sampling API's p99 rose past 200 ms (ADR 0008, revision of 30 November).

The supervisor starts the workers, starts again one that dies (after a pause, so a worker that
cannot start does not spin), and stops them all on SIGTERM or SIGINT. Each worker asks the
kernel to send it SIGTERM if the supervisor dies however it dies (``PR_SET_PDEATHSIG``), so a
killed supervisor leaves no orphan serving the port.

Where ``SO_REUSEPORT`` does not exist (not Linux), several workers fall back to uvicorn's own.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

log = logging.getLogger("bastion.serving")

APP = "bastion.healthcode.lookup_asgi:create_server"
#: A worker that dies sooner than this after its start is started again only after a pause.
MIN_UPTIME = 5.0
RESTART_PAUSE = 1.0
_PR_SET_PDEATHSIG = 1


class PortUnavailable(Exception):
    """The address cannot be listened on (taken, or not this machine's): said before starting."""


def reuse_port_available() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other workers may bind too (``SO_REUSEPORT``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the supervisor dies (Linux; elsewhere nothing)."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _config(host: str, port: int, log_level: str, access_log: bool) -> Any:
    import uvicorn

    return uvicorn.Config(
        APP,
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
    )


def worker(host: str, port: int, log_level: str, access_log: bool, parent: int) -> None:
    """One worker process: its own socket on the shared port, one uvicorn server on it."""
    import uvicorn

    _die_with_parent()
    if os.getppid() != parent:  # the supervisor died before the request above took effect
        return
    sock = listening_socket(host, port)
    uvicorn.Server(_config(host, port, log_level, access_log)).run(sockets=[sock])


class Supervisor:
    """Keeps ``workers`` worker processes serving until told to stop."""

    def __init__(
        self,
        host: str,
        port: int,
        workers: int,
        *,
        log_level: str = "info",
        access_log: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.count = workers
        self.log_level = log_level
        self.access_log = access_log
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[tuple[BaseProcess, float]] = []
        self.stopping = False

    def _start_one(self) -> tuple[BaseProcess, float]:
        process = self.context.Process(
            target=worker,
            args=(self.host, self.port, self.log_level, self.access_log, os.getpid()),
            name="bastion-worker",
        )
        process.start()
        return process, time.monotonic()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop)
        self.processes = [self._start_one() for _ in range(self.count)]
        try:
            while not self.stopping:
                time.sleep(0.2)
                for i, (process, started) in enumerate(self.processes):
                    if process.is_alive() or self.stopping:
                        continue
                    log.warning(
                        "worker %s exited (%s); starting another", process.pid, process.exitcode
                    )
                    if time.monotonic() - started < MIN_UPTIME:
                        time.sleep(RESTART_PAUSE)
                    self.processes[i] = self._start_one()
        finally:
            self.shutdown()

    def shutdown(self, grace: float = 30.0) -> None:
        for process, _ in self.processes:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process, _ in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def serve(
    host: str, port: int, workers: int, *, log_level: str = "info", access_log: bool = False
) -> None:
    """Serve the app: in this process for one worker, else under a :class:`Supervisor`.

    The address is tried first, so one that is taken (or not this machine's) fails at once with
    the reason (:class:`PortUnavailable`) instead of in every worker, again and again."""
    import uvicorn

    try:
        if workers > 1 and reuse_port_available():
            listening_socket(host, port).close()
        else:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.create_server((host, port), family=family):
                pass
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise PortUnavailable(f"{host}:{port}: {reason}") from err

    if workers <= 1:
        config = _config(host, port, log_level, access_log)
        uvicorn.Server(config).run()
        return
    if not reuse_port_available():
        uvicorn.run(
            APP,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
        )
        return
    Supervisor(host, port, workers, log_level=log_level, access_log=access_log).run()
