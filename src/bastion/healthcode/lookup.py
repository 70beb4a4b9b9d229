"""Fast health-code lookups: statuses held in memory and kept fresh by polling, pre-signed
payloads, a lean resident authentication path (ADR 0007).

Lookups never recompute: they read ``code_status`` (a person without a row is green). Each
server process holds every status row in memory (colour, reason, pop-up, valid-until, version),
loaded in full at the first poll and every ``full_reload_seconds``; every ``poll_seconds`` one
query reads the rows of the write batches after the last one seen (``seq`` > last seen: batch
numbers follow commit order, so a recompute that commits long after it started is not missed,
see :class:`bastion.healthcode.models.CodeBatch`). The people
asked about are held too (registry token, region, masked name: immutable or slow to change) for
``identity_ttl_seconds``. A signed code is reused for the same (person, version, colour, key)
while at least half its lifetime is left, so a hot resident costs no signature.

Everything here is synchronous and thread-safe; :mod:`bastion.healthcode.lookup_asgi` serves it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bastion.accounts import service as account_service
from bastion.accounts.models import User
from bastion.api.principals import TTL_SECONDS as PRINCIPAL_TTL
from bastion.core import clock, crypto
from bastion.core.errors import NotAuthenticated
from bastion.core.i18n import Language, t
from bastion.healthcode import keys, signing
from bastion.healthcode.lookup_limiter import Limiter
from bastion.healthcode.models import CodeStatus
from bastion.registry.idnumber import mask_name
from bastion.registry.models import Person

log = logging.getLogger("bastion.healthcode")

#: Reason shown to a person without a status row (green by default).
GREEN_REASON = "code.reason_none"
#: People held per process; past it the identities are dropped (statuses are all kept).
MAX_IDENTITIES = 1_000_000


@dataclass(frozen=True)
class Status:
    """One status row as lookups need it."""

    colour: str
    reason_key: str
    popup: str | None
    valid_until: datetime | None
    version: int


GREEN = Status("green", GREEN_REASON, None, None, 0)


@dataclass(frozen=True)
class Identity:
    """Who a person is for lookups: immutable token, slowly changing region and name."""

    person_id: int
    token: str
    region_code: str
    name_masked: str
    loaded: float


@dataclass(frozen=True)
class Entry:
    """One person as lookups see them."""

    person_id: int
    token: str
    region_code: str
    name_masked: str
    colour: str
    reason_key: str
    popup: str | None
    valid_until: datetime | None
    version: int

    @classmethod
    def of(cls, who: Identity, status: Status) -> Entry:
        return cls(
            who.person_id,
            who.token,
            who.region_code,
            who.name_masked,
            status.colour,
            status.reason_key,
            status.popup,
            status.valid_until,
            status.version,
        )

    def view(self, lang: Language) -> dict[str, Any]:
        """The status in words, for the person or staff."""
        return {
            "colour": self.colour,
            "reason_key": self.reason_key,
            "reason": t(self.reason_key, lang),
            "popup": self.popup,
            "popup_text": t(self.popup, lang) if self.popup else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "version": self.version,
        }


@dataclass(frozen=True)
class Signed:
    payload: str
    issued_at: datetime
    expires_at: datetime


class CodeLookup:
    """The per-process cache, signer and limiter behind every code lookup."""

    def __init__(
        self,
        factory: sessionmaker[Session] | Callable[[], Session],
        *,
        settings: keys.CodeSettings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.factory = factory
        self.settings = settings or keys.code_settings()
        s = self.settings
        self.limiter = Limiter(s.lookup_rate, s.lookup_burst, s.lookup_max_pending, monotonic)
        self._monotonic = monotonic
        self._statuses: dict[int, Status] = {}
        self._identities: dict[int, Identity] = {}
        self._by_token: dict[str, int] = {}
        #: bearer token → (checked until, role, person id, user id, token version, token
        #: expiry): the lean path of residents' own lookups.
        self._residents: dict[str, tuple[float, str, int | None, int, int, int]] = {}
        self._signed: dict[tuple[int, int, str, str], Signed] = {}
        #: Rendered answers: (person, version, colour, key, language) → (reuse until, token,
        #: JSON) for residents; (person, version, language) → (who, JSON) for staff.
        self._bodies: dict[tuple[int, int, str, str, str], tuple[datetime, str, bytes]] = {}
        self._staff_bodies: dict[tuple[int, int, str], tuple[tuple[str, str, str], bytes]] = {}
        self._lock = threading.Lock()
        #: The last write batch (code_status.seq) applied; None before the first full read.
        self._watermark: int | None = None
        self._next_poll = 0.0
        self._next_full = 0.0
        self._next_key_poll = 0.0
        self._polling = False
        self._signer: tuple[str, Ed25519PrivateKey] | None = None
        self._public: dict[str, signing.PublicKey] = {}

    # People ----------------------------------------------------------------------------------

    def _entry_of(self, who: Identity | None) -> Entry | None:
        if who is None or self._monotonic() - who.loaded > self.settings.identity_ttl_seconds:
            return None
        return Entry.of(who, self._statuses.get(who.person_id, GREEN))

    def cached(self, person_id: int) -> Entry | None:
        return self._entry_of(self._identities.get(person_id))

    def cached_token(self, token: str) -> Entry | None:
        person_id = self._by_token.get(token)
        return None if person_id is None else self.cached(person_id)

    def _remember(self, person_id: int, token: str, region_code: str, name: str) -> Identity:
        who = Identity(person_id, token, region_code, mask_name(name), self._monotonic())
        with self._lock:
            if len(self._identities) >= MAX_IDENTITIES:
                self._identities.clear()
                self._by_token.clear()
            self._identities[person_id] = who
            self._by_token[token] = person_id
        return who

    def load(self, *, person_id: int | None = None, token: str | None = None) -> Entry | None:
        """Read one person from the registry (a cache miss); their status is in memory."""
        stmt = select(Person.id, Person.token, Person.region_code, Person.name)
        stmt = stmt.where(Person.id == person_id) if person_id is not None else stmt
        stmt = stmt.where(Person.token == token) if token is not None else stmt
        with self.factory() as session:
            row = session.execute(stmt).first()
        if row is None:
            return None
        return self._entry_of(self._remember(row.id, row.token, row.region_code, row.name))

    def entry(self, *, person_id: int | None = None, token: str | None = None) -> Entry | None:
        """Cached or loaded (synchronous callers: the QR route, tests)."""
        if self.due():
            self.poll()
        hit = self.cached(person_id) if person_id is not None else None
        if token is not None:
            hit = self.cached_token(token)
        return hit or self.load(person_id=person_id, token=token)

    # Residents' own lookups ------------------------------------------------------------------

    def cached_resident(self, bearer: str) -> tuple[str, int | None] | None:
        """(role, person id) of a bearer token checked against the database less than the
        principal TTL ago (tokens in use are re-checked together at each poll)."""
        hit = self._residents.get(bearer)
        if hit is None or hit[0] < self._monotonic():
            return None
        return hit[1], hit[2]

    def _revalidate_residents(self, session: Session) -> None:
        """Re-check, in one query per 5,000 users, the tokens whose check is older than half the
        TTL: still valid ones are kept another TTL, revoked or expired ones are dropped. A token
        in use never waits for the database, and a revocation takes effect within the TTL."""
        now = self._monotonic()
        due = [(b, h) for b, h in list(self._residents.items()) if h[0] < now + PRINCIPAL_TTL / 2]
        if not due:
            return
        users = sorted({h[3] for _, h in due})
        state: dict[int, tuple[int, bool, str, int | None]] = {}
        for start in range(0, len(users), 5000):
            chunk = users[start : start + 5000]
            stmt = select(
                User.id, User.token_version, User.active, User.role, User.person_id
            ).where(User.id.in_(chunk))
            for uid, version, active, role, person_id in session.execute(stmt):
                state[uid] = (version, active, role, person_id)
        wall = clock.now().timestamp()
        with self._lock:
            for bearer, (expires, _, _, uid, version, token_exp) in due:
                known = state.get(uid)
                if (
                    known is None
                    or expires < now
                    or not known[1]
                    or known[0] != version
                    or token_exp <= wall
                ):
                    self._residents.pop(bearer, None)
                else:
                    self._residents[bearer] = (
                        now + PRINCIPAL_TTL,
                        known[2],
                        known[3],
                        uid,
                        version,
                        token_exp,
                    )

    def load_resident(self, bearer: str) -> tuple[str, int | None]:
        """Resolve a bearer token as the API does (signature, expiry, active user, token
        version) in one query that also reads the user's person: a resident's own lookup needs
        no region scope. Cached like the API's principals (ADR 0005)."""
        body = crypto.unsign(bearer, purpose=account_service.TOKEN_PURPOSE)
        if body is None or not isinstance(body.get("uid"), int):
            raise NotAuthenticated("auth.bad_token")
        stmt = (
            select(
                User.token_version,
                User.active,
                User.role,
                User.person_id,
                Person.token,
                Person.region_code,
                Person.name,
            )
            .outerjoin(Person, Person.id == User.person_id)
            .where(User.id == body["uid"])
        )
        with self.factory() as session:
            row = session.execute(stmt).first()
        if row is None or not row.active or row.token_version != body.get("ver"):
            raise NotAuthenticated("auth.bad_token")
        if row.person_id is not None and row.token is not None:
            self._remember(row.person_id, row.token, row.region_code, row.name)
        with self._lock:
            if len(self._residents) >= MAX_IDENTITIES:
                self._residents.clear()
            expires = self._monotonic() + PRINCIPAL_TTL
            self._residents[bearer] = (
                expires,
                row.role,
                row.person_id,
                body["uid"],
                row.token_version,
                body["exp"],
            )
        return row.role, row.person_id

    # Freshness -------------------------------------------------------------------------------

    def due(self) -> bool:
        return not self._polling and self._monotonic() >= self._next_poll

    def ready(self) -> bool:
        """Whether the statuses have been read once (until then a lookup waits for them)."""
        return self._watermark is not None

    def claim_poll(self) -> bool:
        """Take the next poll for the caller (True once per due poll)."""
        with self._lock:
            if self._polling or self._monotonic() < self._next_poll:
                return False
            self._polling = True
            return True

    def poll(self, *, claimed: bool = False) -> None:
        """Apply the status rows changed since the last poll (all of them on the first poll and
        every ``full_reload_seconds``); re-check the residents' tokens in use; reload the keys
        when their turn comes. Safe from any thread; one poll runs at a time (``claimed``: the
        caller already holds it, see :meth:`claim_poll`)."""
        if not claimed:
            with self._lock:
                if self._polling:
                    return
                self._polling = True
        try:
            now = self._monotonic()
            with self.factory() as session:
                self._poll_status(session, full=self._watermark is None or now >= self._next_full)
                self._revalidate_residents(session)
                if now >= self._next_key_poll:
                    self._load_keys(session)
                    self._next_key_poll = now + max(self.settings.poll_seconds * 10, 0.0)
        except SQLAlchemyError:
            # The database is unreachable or busy: keep answering from memory and try again at
            # the next poll.
            log.warning("health-code status poll failed", exc_info=True)
        finally:
            self._next_poll = self._monotonic() + self.settings.poll_seconds
            self._polling = False

    def keys_changed(self) -> None:
        """Reload the keys at the next poll (after a rotation in this process)."""
        self._next_key_poll = 0.0
        self._next_poll = 0.0

    def _poll_status(self, session: Session, *, full: bool) -> None:
        columns = (
            CodeStatus.person_id,
            CodeStatus.colour,
            CodeStatus.reason_key,
            CodeStatus.popup,
            CodeStatus.valid_until,
            CodeStatus.version,
            CodeStatus.seq,
        )
        stmt = select(*columns)
        if not full:
            assert self._watermark is not None
            stmt = stmt.where(CodeStatus.seq > self._watermark)
        rows = session.execute(stmt).all()
        latest = self._watermark or 0
        if full:
            fresh = {r[0]: Status(r[1], r[2], r[3], r[4], r[5]) for r in rows}
            for r in rows:
                latest = max(latest, r[6])
            with self._lock:
                self._statuses = fresh
                self._watermark = latest
            self._next_full = self._monotonic() + self.settings.full_reload_seconds
            return
        statuses = self._statuses
        for person_id, colour, reason, popup, valid_until, version, seq in rows:
            known = statuses.get(person_id)
            if known is None or known.version != version:
                statuses[person_id] = Status(colour, reason, popup, valid_until, version)
            if seq > latest:
                latest = seq
        self._watermark = latest

    def _load_keys(self, session: Session) -> None:
        row = keys.active(db_session=session)
        signer = (row.kid, keys.private_key(row)) if row is not None else None
        public = keys.public_keys(db_session=session)
        with self._lock:
            self._signer = signer
            self._public = public

    # Codes -----------------------------------------------------------------------------------

    def ensure_signer(self) -> None:
        """Load the signing key, creating the first one if there is none (committed)."""
        if self._signer is not None:
            return
        with self.factory() as session, session.begin():
            keys.ensure_active(db_session=session)
        with self.factory() as session:
            self._load_keys(session)

    def has_signer(self) -> bool:
        return self._signer is not None

    def public_keys(self) -> dict[str, signing.PublicKey]:
        return self._public

    def signed(self, entry: Entry) -> Signed:
        """The person's code: reused while at least half its lifetime is left."""
        assert self._signer is not None, "call ensure_signer() first"
        kid, private = self._signer
        now = clock.now()
        cache_key = (entry.person_id, entry.version, entry.colour, kid)
        hit = self._signed.get(cache_key)
        ttl = self.settings.ttl_seconds
        if hit is not None and now < hit.issued_at + timedelta(seconds=ttl / 2):
            return hit
        issued = now.replace(microsecond=0)
        expires = issued + timedelta(seconds=ttl)
        if entry.valid_until is not None and issued < entry.valid_until < expires:
            expires = entry.valid_until.replace(microsecond=0)
        claims = signing.Claims(
            kid=kid,
            colour=entry.colour,
            issued_at=int(issued.timestamp()),
            expires_at=int(expires.timestamp()),
            person=entry.token,
        )
        made = Signed(signing.sign(claims, private), issued, expires)
        with self._lock:
            if len(self._signed) >= MAX_IDENTITIES:
                self._signed.clear()
            self._signed[cache_key] = made
        return made

    def resident_view(self, entry: Entry, lang: Language) -> dict[str, Any]:
        """What the resident's phone shows: the payload, its times and the reason in words."""
        code = self.signed(entry)
        return {
            "payload": code.payload,
            "issued_at": code.issued_at.isoformat(),
            "expires_at": code.expires_at.isoformat(),
            "name": entry.name_masked,
            **entry.view(lang),
            "qr_svg": "/api/v1/codes/mine/qr?format=svg",
            "qr_png": "/api/v1/codes/mine/qr?format=png",
        }

    def resident_body(self, entry: Entry, lang: Language) -> bytes:
        """:meth:`resident_view` as JSON, kept as bytes for as long as its code is reused."""
        assert self._signer is not None, "call ensure_signer() first"
        key = (entry.person_id, entry.version, entry.colour, self._signer[0], lang)
        now = clock.now()
        hit = self._bodies.get(key)
        if hit is not None and now < hit[0] and hit[1] == entry.token:
            return hit[2]
        view = self.resident_view(entry, lang)
        body = orjson.dumps(view)
        issued = datetime.fromisoformat(view["issued_at"])
        reuse_until = min(
            issued + timedelta(seconds=self.settings.ttl_seconds / 2),
            datetime.fromisoformat(view["expires_at"]),
        )
        with self._lock:
            if len(self._bodies) >= MAX_IDENTITIES:
                self._bodies.clear()
            self._bodies[key] = (reuse_until, entry.token, body)
        return body

    def staff_body(self, entry: Entry, lang: Language) -> bytes:
        """:meth:`staff_view` as JSON, kept as bytes while the person and status stay."""
        key = (entry.person_id, entry.version, lang)
        hit = self._staff_bodies.get(key)
        if hit is not None and hit[0] == (entry.token, entry.region_code, entry.name_masked):
            return hit[1]
        body = orjson.dumps(self.staff_view(entry, lang))
        with self._lock:
            if len(self._staff_bodies) >= MAX_IDENTITIES:
                self._staff_bodies.clear()
            self._staff_bodies[key] = ((entry.token, entry.region_code, entry.name_masked), body)
        return body

    def staff_view(self, entry: Entry, lang: Language) -> dict[str, Any]:
        return {
            "person": signing.mask_person(entry.token),
            "name": entry.name_masked,
            "region_code": entry.region_code,
            **entry.view(lang),
        }

    def verdict(self, payload: str) -> signing.Verdict:
        return signing.verify(payload, self._public, now=clock.now())

    @staticmethod
    def verify_view(
        verdict: signing.Verdict, current: Entry | None, lang: Language
    ) -> dict[str, Any]:
        """A checkpoint's online check: the code's verdict and, when valid, the status now."""
        claims = verdict.claims
        return {
            "valid": verdict.ok,
            "refusal": verdict.refusal,
            "message": t(f"code.verdict_{verdict.refusal or 'valid'}", lang),
            "colour": claims.colour if claims else None,
            "expires_at": signing.expires_text(claims).isoformat() if claims else None,
            "person": signing.mask_person(claims.person) if claims else None,
            "current_colour": current.colour if current and verdict.ok else None,
        }
