"""Admission control of the hot lookups (ADR 0007)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Limiter:
    """Admission control per process: a token bucket of ``rate`` lookups a second (burst
    ``burst``; rate 0 admits everything) and a cap on lookups waiting for the database.
    Excess is answered 429 + Retry-After at once, so the work admitted stays fast."""

    def __init__(
        self, rate: float, burst: int, max_pending: int, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self.max_pending = max_pending
        self._now = now
        self._tokens = self.burst
        self._stamp = now()
        self._pending = 0
        self._lock = threading.Lock()
        self.shed = 0

    def admit(self) -> bool:
        if self.rate <= 0:
            return True
        now = self._now()
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if tokens < 1.0:
            self._tokens = tokens
            self.shed += 1
            return False
        self._tokens = tokens - 1.0
        return True

    def enter_slow(self) -> bool:
        """Claim a place to wait on the database; False when all are taken."""
        with self._lock:
            if self._pending >= self.max_pending:
                self.shed += 1
                return False
            self._pending += 1
            return True

    def leave_slow(self) -> None:
        with self._lock:
            self._pending -= 1
