"""A short-lived, per-app cache of who a bearer token names.

The live sampling and health-code paths take thousands of requests a second; resolving a token
costs a user lookup and a scope computation each time. A token's principal is kept for
``TTL_SECONDS``: logout in this process drops it at once; revocation made in another process
(another worker, the CLI) takes effect within the TTL (ADR 0005).
"""

from __future__ import annotations

import threading
import time

from bastion.core.auth import Principal

TTL_SECONDS = 10.0
MAX_ENTRIES = 50_000


class PrincipalCache:
    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._items: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        item = self._items.get(token)
        if item is None:
            return None
        expires, principal = item
        if expires < time.monotonic():
            with self._lock:
                self._items.pop(token, None)
            return None
        return principal

    def put(self, token: str, principal: Principal) -> None:
        with self._lock:
            if len(self._items) >= self.max_entries:
                now = time.monotonic()
                self._items = {k: v for k, v in self._items.items() if v[0] >= now}
                if len(self._items) >= self.max_entries:
                    self._items.clear()
            self._items[token] = (time.monotonic() + self.ttl, principal)

    def drop_user(self, user_id: int) -> None:
        """Forget every token of a user (logout, password change, role change)."""
        with self._lock:
            self._items = {k: v for k, v in self._items.items() if v[1].user_id != user_id}
