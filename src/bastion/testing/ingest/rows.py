"""Row-by-row checks of scans: what a scan alone can tell, and the reports batches get."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bastion.core import clock, crypto
from bastion.core.auth import Principal
from bastion.core.errors import FieldProblem, NotFound
from bastion.healthcode import keys as health_keys
from bastion.healthcode import signing
from bastion.registry.idnumber import IdNumberError, parse_resident_id
from bastion.testing import pooling, recorders, rules
from bastion.testing import service as testing_service
from bastion.testing.enums import TubeKind
from bastion.testing.models import Round, ScanBatch, Site, SiteGrid

TOKEN_RE = re.compile(r"^[0-9a-f]{24}$")
CLOCK_SKEW = timedelta(minutes=10)
#: How long after a signing key's retirement its codes, scanned before it, may still arrive.
OFFLINE_WINDOW = timedelta(days=7)
MAX_REPORTED = 1_000

#: What each SQL verdict means for the sender: (field, message key), or None for accepted.
VERDICTS: dict[str, tuple[str, str] | None] = {
    "ok": None,
    "unchanged": None,
    "duplicate": None,
    "unknown_person": ("person", "scan.unknown_person"),
    "tube_other_round": ("tube", "scan.tube_other_round"),
    "tube_other_site": ("tube", "scan.tube_other_site"),
    "tube_closed": ("tube", "scan.tube_closed"),
    "already_sampled": ("person", "scan.already_sampled"),
    "person_twice": ("person", "scan.person_twice"),
    "tube_full": ("tube", "scan.tube_full"),
    "household_mixed": ("person", "scan.household_mixed"),
}


@dataclass(slots=True)
class RawScan:
    """A scan as it arrived: every field still text (or a datetime from the API). Not frozen: a
    frozen dataclass's constructor costs three times as much, and a round makes millions."""

    row: int
    round: str
    site: str
    tube: str
    person: str
    scanned_at: str | datetime
    kind: str = TubeKind.pooled.value
    capacity: int | None = None


@dataclass
class IngestReport:
    key: str
    accepted: int = 0
    unchanged: int = 0
    refused: int = 0
    flagged: int = 0
    replayed: bool = False
    problems: list[FieldProblem] = field(default_factory=list)
    flags: list[FieldProblem] = field(default_factory=list)

    def to_json(self) -> str:
        def dump(items: list[FieldProblem]) -> list[dict[str, Any]]:
            return [
                {"row": p.row, "field": p.field, "reason": p.reason, "params": p.params}
                for p in items
            ]

        # orjson: the live API stores one of these per request (stdlib json cost a tenth of
        # the request's CPU).
        return orjson.dumps(
            {
                "accepted": self.accepted,
                "unchanged": self.unchanged,
                "refused": self.refused,
                "flagged": self.flagged,
                "problems": dump(self.problems),
                "flags": dump(self.flags),
            },
            default=str,
        ).decode()

    @classmethod
    def from_batch(cls, batch: ScanBatch) -> IngestReport:
        data = json.loads(batch.report)

        def load(items: list[dict[str, Any]]) -> list[FieldProblem]:
            return [
                FieldProblem(i["field"], i["reason"], i.get("params") or {}, i["row"])
                for i in items
            ]

        return cls(
            key=batch.key,
            accepted=data["accepted"],
            unchanged=data["unchanged"],
            refused=data["refused"],
            flagged=data["flagged"],
            replayed=True,
            problems=load(data["problems"]),
            flags=load(data["flags"]),
        )

    def refuse(self, problem: FieldProblem) -> None:
        self.refused += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(problem)


@dataclass(frozen=True)
class _SiteInRound:
    site_id: int
    region_code: str
    capacity: int
    has_grids: bool
    #: The round plans one tube per household here (a lockdown zone's policy): its pooled scans
    #: are household tubes.
    household: bool = False
    #: Users bound to the site (``testing.recorders``): they may always scan here.
    recorders: frozenset[int] = frozenset()
    #: Users met here who are not bound to it, by id → bound to no site at all (then the region
    #: alone decides). Filled as they are met; dropped with the cached entry (its TTL).
    unbound: dict[int, bool] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class RoundSeen:
    """What the row checks need of a round: never changed once the round exists, except the
    deadline (read for the pool size's day only) and the status, which is read afresh for every
    batch (:meth:`ScanContext.round`)."""

    id: int
    region_code: str
    starts_at: datetime
    deadline_at: datetime


@dataclass(frozen=True, slots=True)
class RoundNow:
    """A kept round as it stands in the writing transaction (``statements.PG_ROUNDS_KEPT``)."""

    id: int
    status: str
    closed_at: datetime | None
    region_code: str
    exemptions: str
    starts_at: datetime
    deadline_at: datetime


class SiteCache:
    """What the live API keeps across batches for ``ttl`` seconds: sites' pool sizes and grids
    per round, rounds by reference (their status is still read for every group), and the
    coverage counters' statements (``coverage.add_sampled_from_verdict``).

    The live API judges hundreds of small batches a second at the same few sites; looking up
    the site's zone (its ancestors' zones) for each would cost more than the scans. A zone
    designated or lifted reaches the live API's pool sizes within the TTL; a round closed is
    refused from the next group on."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._items: dict[tuple[int, str], tuple[float, _SiteInRound]] = {}
        self.rounds: dict[str, tuple[float, RoundSeen]] = {}
        self.statements: dict[tuple[Any, ...], tuple[float, Any]] = {}
        #: The health-code verifying keys (personal codes scanned instead of tokens).
        self.keys: tuple[float, dict[str, signing.PublicKey]] | None = None

    def round(self, ref: str) -> RoundSeen | None:
        item = self.rounds.get(ref)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def round_ids(self) -> list[int]:
        """The ids of the rounds kept now."""
        now = time.monotonic()
        return sorted({seen.id for expiry, seen in self.rounds.values() if expiry >= now})

    def put_round(self, ref: str, value: RoundSeen) -> None:
        if len(self.rounds) > 1_000:
            self.rounds.clear()
        self.rounds[ref] = (time.monotonic() + self.ttl, value)

    def get(self, key: tuple[int, str]) -> _SiteInRound | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, key: tuple[int, str], value: _SiteInRound) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl, value)


_T = TypeVar("_T")

_ROUND_STATUS = select(Round.status, Round.closed_at).where(Round.id == bindparam("id"))


def _direct(fn: Callable[[], _T]) -> _T:
    return fn()


#: Equal to no tube a scan can name (``ScanContext.last_tube`` before the first).
_NO_TUBE = object()


class ScanContext:
    """Rounds and sites met so far in a batch, looked up once each. ``call`` runs a lookup
    where the session lives (the rows may be checked in another thread, see ``feed``)."""

    def __init__(
        self,
        db_session: Session,
        principal: Principal,
        cache: SiteCache | None = None,
        call: Callable[[Callable[[], Any]], Any] = _direct,
        *,
        rounds_now: dict[int, RoundNow] | None = None,
    ) -> None:
        self.db = db_session
        #: Kept rounds already read in this transaction (their status is not read again).
        self.rounds_now = rounds_now or {}
        self.principal = principal
        self.cache = cache
        self.call = call
        self.rounds: dict[str, RoundSeen | FieldProblem] = {}
        #: When a closed round met in this batch was closed: scans made before still count.
        self.closed_at: dict[int, datetime] = {}
        self.sites: dict[tuple[int, str], _SiteInRound | FieldProblem] = {}
        self.keys: dict[str, signing.PublicKey] | None = None
        self.now = clock.now()
        #: The latest scan time accepted (a scanner's clock may run a little fast).
        self.latest = self.now + CLOCK_SKEW
        #: (round, site) as sent → what ``round`` and ``site`` found for them (``check_row``).
        self.pairs: dict[tuple[str, str], tuple[RoundSeen, _SiteInRound]] = {}
        #: The last tube as sent and its checked barcode: a file's scans come a tube at a time,
        #: so nine rows in ten name the tube of the row before (``check_row``).
        self.last_tube: tuple[object, str] = (_NO_TUBE, "")

    def round(self, ref: str, row: int) -> RoundSeen | FieldProblem:
        if ref not in self.rounds:
            self.call(lambda: self._look_up_round(ref))
        found = self.rounds[ref]
        return (
            found
            if isinstance(found, RoundSeen)
            else FieldProblem(found.field, found.reason, found.params, row)
        )

    def _look_up_round(self, ref: str) -> None:
        # A round the cache holds costs one indexed read of its status (the live API meets the
        # same round in every group; loading it whole each time was a tenth of its CPU).
        seen = self.cache.round(ref) if self.cache is not None and ref != "latest" else None
        status: str | None = None
        closed_at: datetime | None = None
        if seen is not None:
            now = self.rounds_now.get(seen.id)
            row = (
                (now.status, now.closed_at)
                if now is not None
                else self.db.connection().execute(_ROUND_STATUS, {"id": seen.id}).first()
            )
            if row is not None:
                status, closed_at = row
        if seen is None or status is None:
            try:
                rnd = testing_service.get_round(
                    db_session=self.db, principal=self.principal, ref=ref
                )
            except NotFound:
                self.rounds[ref] = FieldProblem("round", "scan.unknown_round", {"value": ref})
                return
            seen = RoundSeen(rnd.id, rnd.region_code, rnd.starts_at, rnd.deadline_at)
            status, closed_at = rnd.status, rnd.closed_at
            if self.cache is not None and ref != "latest":
                self.cache.put_round(ref, seen)
        elif not (
            # testing.service's rule for who sees a round (get_round applies it uncached).
            self.principal.scope.contains(seen.region_code)
            or seen.region_code in self.principal.ancestors
        ):
            self.rounds[ref] = FieldProblem("round", "scan.unknown_round", {"value": ref})
            return
        if status == "closed" and closed_at is not None:
            # Scanners work offline for hours: what was scanned before the round closed is
            # judged like any other scan (check_row refuses what was scanned after).
            self.closed_at[seen.id] = closed_at
            status = "open"
        self.rounds[ref] = (
            seen if status == "open" else FieldProblem("round", "scan.round_closed", {"value": ref})
        )

    def code_person(self, payload: str, moment: datetime, row: int) -> str | FieldProblem:
        """The person token of a signed personal code (a health code shown at the site),
        checked offline as a checkpoint does, at the moment it was scanned: forged, altered,
        unknown-key and expired codes are refused."""
        if self.keys is None:
            cached = self.cache.keys if self.cache is not None else None
            if cached is not None and cached[0] >= time.monotonic():
                self.keys = cached[1]
            else:
                self.call(self._look_up_keys)
        assert self.keys is not None
        verdict = signing.verify(payload, self.keys, now=moment)
        if verdict.claims is None or verdict.refusal == "malformed":
            return FieldProblem("person", "scan.bad_person_code", {}, row)
        if verdict.refusal == "expired":
            return FieldProblem("person", "scan.code_expired", {}, row)
        if verdict.refusal is not None:
            return FieldProblem("person", "scan.code_forged", {}, row)
        return verdict.claims.person

    def _look_up_keys(self) -> None:
        # Keys retired in the last week stay: a code scanned offline before its key's
        # retirement and sent afterwards is still good (verify checks the retirement against
        # the scan's time).
        self.keys = health_keys.public_keys(db_session=self.db, now=self.now - OFFLINE_WINDOW)
        if self.cache is not None:
            self.cache.keys = (time.monotonic() + self.cache.ttl, self.keys)

    def site(self, rnd: RoundSeen, code: str, row: int) -> _SiteInRound | FieldProblem:
        key = (rnd.id, code)
        if key not in self.sites:
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                self.sites[key] = (
                    cached
                    if self.principal.scope.contains(cached.region_code)
                    else FieldProblem(
                        "site", "error.region_outside", {"region": cached.region_code}
                    )
                )
            else:
                self.call(lambda: self._look_up_site(rnd, code))
            # The recorder binding, judged once per batch and site, cached or not: a user bound
            # to sites sends scans for those only (testing.recorders).
            seen = self.sites[key]
            user_id = self.principal.user_id
            if (
                isinstance(seen, _SiteInRound)
                and user_id is not None
                and user_id not in seen.recorders
            ):
                free = seen.unbound.get(user_id)
                if free is None:
                    free = not self.call(lambda: recorders.is_bound(self.db, user_id))
                    seen.unbound[user_id] = free
                if not free:
                    self.sites[key] = FieldProblem("site", "scan.site_not_bound", {"value": code})
        found = self.sites[key]
        return (
            found
            if isinstance(found, _SiteInRound)
            else FieldProblem(found.field, found.reason, found.params, row)
        )

    def _look_up_site(self, rnd: RoundSeen, code: str) -> None:
        key = (rnd.id, code)
        site = self.db.execute(select(Site).where(Site.code == code)).scalar_one_or_none()
        if site is None or not site.active:
            self.sites[key] = FieldProblem("site", "scan.unknown_site", {"value": code})
        elif not self.principal.scope.contains(site.region_code):
            self.sites[key] = FieldProblem(
                "site", "error.region_outside", {"region": site.region_code}
            )
        else:
            on = clock.to_local(max(rnd.starts_at, min(self.now, rnd.deadline_at))).date()
            round_row = self.db.get(Round, rnd.id)
            assert round_row is not None  # looked up in this transaction
            size = testing_service.planned_size(
                db_session=self.db, rnd=round_row, region_code=site.region_code, on=on
            )
            has_grids = (
                self.db.execute(
                    select(SiteGrid.site_id).where(SiteGrid.site_id == site.id).limit(1)
                ).first()
                is not None
            )
            # The site's bound users and whether the acting user is bound anywhere, in one
            # query (site() then needs none for this user).
            bindings = self.db.execute(
                recorders.BINDINGS_OF_SITE_AND_USER,
                {"site_id": site.id, "user_id": self.principal.user_id},
            ).all()
            found_site = _SiteInRound(
                site.id,
                site.region_code,
                pooling.capacity(size),
                has_grids,
                size == pooling.HOUSEHOLD,
                frozenset(u for s, u in bindings if s == site.id),
            )
            if self.principal.user_id is not None:
                found_site.unbound[self.principal.user_id] = not any(
                    u == self.principal.user_id for _, u in bindings
                )
            self.sites[key] = found_site
            if self.cache is not None:
                self.cache.put(key, found_site)


def _parse_time(value: str | datetime) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        # Scanners record local wall-clock time; an offset-less time is read in the deployment's
        # zone (Asia/Shanghai by default), as the people at the site meant it.
        moment = moment.replace(tzinfo=clock.local_tz())
    return moment


def _person_key(raw: str, row: int) -> tuple[str | None, str | None] | str | FieldProblem:
    """(token, None) or (None, id_hash) for a person code; the payload itself (a ``str``) for a
    signed personal code, checked once the scan's time is known; a problem if it is neither."""
    value = raw.strip()
    if TOKEN_RE.match(value):
        return value, None
    if value.startswith(signing.PREFIX):
        return value
    if len(value) == 18 and value[:17].isdigit():
        try:
            parsed = parse_resident_id(value, today=clock.today())
        except IdNumberError as err:
            return FieldProblem("person", err.reason, dict(err.params), row)
        return None, crypto.lookup_hash(parsed.number)
    return FieldProblem("person", "scan.bad_person_code", {}, row)


#: The tube kinds a scan may name, and those that hold one person.
_KINDS = frozenset(k.value for k in TubeKind)
_ONE_PERSON = frozenset((TubeKind.single.value, TubeKind.retest.value))
_POOLED = TubeKind.pooled.value
_RETEST = TubeKind.retest.value
_HOUSEHOLD = TubeKind.household.value


def check_row(ctx: ScanContext, scan: RawScan) -> tuple[Any, ...] | FieldProblem:
    """The staging tuple for a scan, or the first problem a row alone shows. Files run this
    millions of times: the round and site of a (round, site) pair met before are taken from
    ``ctx.pairs`` in one lookup."""
    row = scan.row
    pair = ctx.pairs.get((scan.round, scan.site))
    if pair is None:
        rnd = ctx.round(str(scan.round).strip(), row)
        if isinstance(rnd, FieldProblem):
            return rnd
        site = ctx.site(rnd, str(scan.site).strip(), row)
        if isinstance(site, FieldProblem):
            return site
        if isinstance(scan.round, str) and isinstance(scan.site, str):
            ctx.pairs[(scan.round, scan.site)] = (rnd, site)
    else:
        rnd, site = pair
    tube = scan.tube
    if tube == ctx.last_tube[0]:
        barcode = ctx.last_tube[1]
    else:
        barcode = rules.normalise_barcode(str(tube))
        if not rules.is_valid_barcode(barcode):
            return FieldProblem("tube", "scan.bad_barcode", {"value": barcode[:40]}, row)
        ctx.last_tube = (tube, barcode)
    person = _person_key(str(scan.person), row)
    if isinstance(person, FieldProblem):
        return person
    moment = _parse_time(scan.scanned_at)
    if moment is None:
        return FieldProblem(
            "scanned_at", "field.bad_datetime", {"value": str(scan.scanned_at)[:40]}, row
        )
    if moment > ctx.latest:
        return FieldProblem("scanned_at", "scan.in_future", {}, row)
    if moment < rnd.starts_at:
        return FieldProblem("scanned_at", "scan.before_round", {}, row)
    closed_at = ctx.closed_at.get(rnd.id)
    if closed_at is not None and moment > closed_at:
        return FieldProblem("round", "scan.round_closed", {"value": str(scan.round)[:40]}, row)
    if isinstance(person, str):
        signed = ctx.code_person(person, moment, row)
        if isinstance(signed, FieldProblem):
            return signed
        person = (signed, None)
    kind = scan.kind
    if kind != _POOLED:
        kind = (kind or _POOLED).strip().lower()
        if kind not in _KINDS:
            return FieldProblem("kind", "scan.bad_kind", {"value": kind}, row)
    if kind == _POOLED and site.household:
        kind = _HOUSEHOLD  # the zone pools by household: one household to a tube
    if kind in _ONE_PERSON:
        capacity = 1
    elif scan.capacity is None:
        capacity = pooling.MAX_POOL if kind == _HOUSEHOLD else site.capacity
    else:
        capacity = scan.capacity
        if not 1 <= capacity <= pooling.MAX_POOL:
            return FieldProblem(
                "capacity", "field.out_of_range", {"min": 1, "max": pooling.MAX_POOL}, row
            )
        # A household's tube mixes no households, whatever the zone's pool size (lockdown:
        # "single tube or one tube per household"); other pools keep to the zone's size.
        if kind != _HOUSEHOLD and capacity > site.capacity:
            return FieldProblem("capacity", "scan.pool_too_large", {"max": site.capacity}, row)
    if capacity == 1 and kind == _POOLED:
        kind = TubeKind.single.value
    token, id_hash = person
    return (
        row,
        rnd.id,
        site.site_id,
        site.region_code,
        barcode,
        token,
        id_hash,
        moment,
        kind,
        capacity,
        kind == _RETEST,
        site.has_grids,
    )
