"""The one bulk path for sampling scans: live API batches and file imports both land here.

A scan binds a person (personal token or ID number) to a tube barcode at a time. Scans are
checked in two stages:

1. row by row in Python, for what a row alone can tell (barcode shape, ID check character, time,
   round and site known and open, pool size allowed for the site's zone);
2. set-based in SQL, a chunk at a time, for what needs the record (the person exists, is not
   already sampled in this round, the tube belongs to this round and site, is open, and is not
   over its pool size).

Refused rows are reported with their row number, field and reason; good rows land; a batch
re-sent under the same idempotency key replays its first answer and changes nothing, and a scan
already recorded in the same tube counts as unchanged, so a re-imported file is harmless too.
Memory stays flat: scans stream through fixed-size chunks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import IO, Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bastion.core import clock, crypto
from bastion.core.auth import Perm, Principal
from bastion.core.db import bulk_insert, index_lookups, is_postgres
from bastion.core.errors import FieldProblem, NotFound
from bastion.registry.idnumber import IdNumberError, parse_resident_id
from bastion.testing import coverage, files, rules
from bastion.testing import service as testing_service
from bastion.testing.enums import TubeKind
from bastion.testing.models import Round, ScanBatch, Site, SiteGrid, TubeMember

TOKEN_RE = re.compile(r"^[0-9a-f]{24}$")
CLOCK_SKEW = timedelta(minutes=10)
CHUNK = 50_000
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
}


@dataclass(frozen=True)
class RawScan:
    """A scan as it arrived: every field still text (or a datetime from the API)."""

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

        return json.dumps(
            {
                "accepted": self.accepted,
                "unchanged": self.unchanged,
                "refused": self.refused,
                "flagged": self.flagged,
                "problems": dump(self.problems),
                "flags": dump(self.flags),
            },
            ensure_ascii=False,
            default=str,
        )

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


class SiteCache:
    """A site's pool size and grids per round, kept across batches for ``ttl`` seconds.

    The live API judges hundreds of small batches a second at the same few sites; looking up
    the site's zone (its ancestors' zones) for each would cost more than the scans. A zone
    designated or lifted reaches the live API's pool sizes within the TTL."""

    def __init__(self, ttl: float = 30.0) -> None:
        self.ttl = ttl
        self._items: dict[tuple[int, str], tuple[float, _SiteInRound]] = {}

    def get(self, key: tuple[int, str]) -> _SiteInRound | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, key: tuple[int, str], value: _SiteInRound) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl, value)


class _Context:
    """Rounds and sites met so far in a batch, looked up once each."""

    def __init__(
        self, db_session: Session, principal: Principal, cache: SiteCache | None = None
    ) -> None:
        self.db = db_session
        self.principal = principal
        self.cache = cache
        self.rounds: dict[str, Round | FieldProblem] = {}
        self.sites: dict[tuple[int, str], _SiteInRound | FieldProblem] = {}
        self.now = clock.now()

    def round(self, ref: str, row: int) -> Round | FieldProblem:
        if ref not in self.rounds:
            try:
                rnd = testing_service.get_round(
                    db_session=self.db, principal=self.principal, ref=ref
                )
            except NotFound:
                self.rounds[ref] = FieldProblem("round", "scan.unknown_round", {"value": ref})
            else:
                self.rounds[ref] = (
                    rnd
                    if rnd.status == "open"
                    else FieldProblem("round", "scan.round_closed", {"value": ref})
                )
        found = self.rounds[ref]
        return (
            found
            if isinstance(found, Round)
            else FieldProblem(found.field, found.reason, found.params, row)
        )

    def site(self, rnd: Round, code: str, row: int) -> _SiteInRound | FieldProblem:
        key = (rnd.id, code)
        cached = self.cache.get(key) if self.cache is not None else None
        if key not in self.sites and cached is not None:
            self.sites[key] = (
                cached
                if self.principal.scope.contains(cached.region_code)
                else FieldProblem("site", "error.region_outside", {"region": cached.region_code})
            )
        if key not in self.sites:
            site = self.db.execute(select(Site).where(Site.code == code)).scalar_one_or_none()
            if site is None or not site.active:
                self.sites[key] = FieldProblem("site", "scan.unknown_site", {"value": code})
            elif not self.principal.scope.contains(site.region_code):
                self.sites[key] = FieldProblem(
                    "site", "error.region_outside", {"region": site.region_code}
                )
            else:
                on = clock.to_local(max(rnd.starts_at, min(self.now, rnd.deadline_at))).date()
                capacity = testing_service.planned_capacity(
                    db_session=self.db, rnd=rnd, region_code=site.region_code, on=on
                )
                has_grids = (
                    self.db.execute(
                        select(SiteGrid.site_id).where(SiteGrid.site_id == site.id).limit(1)
                    ).first()
                    is not None
                )
                found_site = _SiteInRound(site.id, site.region_code, capacity, has_grids)
                self.sites[key] = found_site
                if self.cache is not None:
                    self.cache.put(key, found_site)
        found = self.sites[key]
        return (
            found
            if isinstance(found, _SiteInRound)
            else FieldProblem(found.field, found.reason, found.params, row)
        )


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


def _person_key(raw: str, row: int) -> tuple[str | None, str | None] | FieldProblem:
    """(token, None) or (None, id_hash) for a person code; a problem if it is neither."""
    value = raw.strip()
    if TOKEN_RE.match(value):
        return value, None
    if len(value) == 18 and value[:17].isdigit():
        try:
            parsed = parse_resident_id(value, today=clock.today())
        except IdNumberError as err:
            return FieldProblem("person", err.reason, dict(err.params), row)
        return None, crypto.lookup_hash(parsed.number)
    return FieldProblem("person", "scan.bad_person_code", {}, row)


def _check_row(ctx: _Context, scan: RawScan) -> tuple[Any, ...] | FieldProblem:
    """The staging tuple for a scan, or the first problem a row alone shows."""
    rnd = ctx.round(str(scan.round).strip(), scan.row)
    if isinstance(rnd, FieldProblem):
        return rnd
    site = ctx.site(rnd, str(scan.site).strip(), scan.row)
    if isinstance(site, FieldProblem):
        return site
    barcode = rules.normalise_barcode(str(scan.tube))
    if not rules.is_valid_barcode(barcode):
        return FieldProblem("tube", "scan.bad_barcode", {"value": barcode[:40]}, scan.row)
    person = _person_key(str(scan.person), scan.row)
    if isinstance(person, FieldProblem):
        return person
    moment = _parse_time(scan.scanned_at)
    if moment is None:
        return FieldProblem(
            "scanned_at", "field.bad_datetime", {"value": str(scan.scanned_at)[:40]}, scan.row
        )
    if moment > ctx.now + CLOCK_SKEW:
        return FieldProblem("scanned_at", "scan.in_future", {}, scan.row)
    if moment < rnd.starts_at:
        return FieldProblem("scanned_at", "scan.before_round", {}, scan.row)
    kind = (scan.kind or TubeKind.pooled.value).strip().lower()
    if kind not in TubeKind.__members__:
        return FieldProblem("kind", "scan.bad_kind", {"value": kind}, scan.row)
    if kind in (TubeKind.single, TubeKind.retest):
        capacity = 1
    elif scan.capacity is None:
        capacity = site.capacity
    else:
        capacity = scan.capacity
        if not 1 <= capacity <= 20:
            return FieldProblem("capacity", "field.out_of_range", {"min": 1, "max": 20}, scan.row)
        if capacity > site.capacity:
            return FieldProblem("capacity", "scan.pool_too_large", {"max": site.capacity}, scan.row)
    if capacity == 1 and kind == TubeKind.pooled:
        kind = TubeKind.single.value
    token, id_hash = person
    return (
        scan.row,
        rnd.id,
        site.site_id,
        site.region_code,
        barcode,
        token,
        id_hash,
        moment,
        kind,
        capacity,
        kind == TubeKind.retest,
        site.has_grids,
    )


STAGE_COLUMNS = [
    "batch_id",
    "row_no",
    "round_id",
    "site_id",
    "site_region",
    "barcode",
    "person_token",
    "id_hash",
    "scanned_at",
    "kind",
    "capacity",
    "retest",
    "has_grids",
]


def _create_temp_tables(db_session: Session) -> None:
    ts = "TIMESTAMP WITH TIME ZONE" if is_postgres(db_session) else "DATETIME"
    boolean = "BOOLEAN"
    for ddl in (
        f"""CREATE TEMPORARY TABLE IF NOT EXISTS scan_stage (
            batch_id BIGINT, row_no BIGINT, round_id INTEGER, site_id INTEGER,
            site_region VARCHAR(15), barcode VARCHAR(24), person_token VARCHAR(32),
            id_hash VARCHAR(64), scanned_at {ts}, kind VARCHAR(16), capacity SMALLINT,
            retest {boolean}, has_grids {boolean})""",
        f"""CREATE TEMPORARY TABLE IF NOT EXISTS scan_verdict (
            batch_id BIGINT, row_no BIGINT, round_id INTEGER, site_id INTEGER,
            site_region VARCHAR(15), barcode VARCHAR(24), kind VARCHAR(16), capacity SMALLINT,
            retest {boolean}, scanned_at {ts}, person_id BIGINT, home VARCHAR(15), tube_id BIGINT,
            position INTEGER, off_grid {boolean}, verdict VARCHAR(24))""",
    ):
        db_session.execute(text(ddl))


def _clear_temp_tables(db_session: Session) -> None:
    for table in ("scan_stage", "scan_verdict"):
        db_session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names


CLASSIFY = """
WITH resolved AS (
    SELECT s.*,
           COALESCE(pt.id, ph.id) AS person_id,
           COALESCE(pt.region_code, ph.region_code) AS home
    FROM scan_stage s
    LEFT JOIN persons pt ON s.person_token IS NOT NULL AND pt.token = s.person_token
    LEFT JOIN persons ph ON s.id_hash IS NOT NULL AND ph.id_hash = s.id_hash
),
tubed AS (
    SELECT r.*,
           t.id AS tube_id, t.round_id AS tube_round, t.site_id AS tube_site,
           t.state AS tube_state,
           COALESCE(t.capacity, r.capacity) AS cap,
           COALESCE(t.member_count, 0) AS filled,
           m.tube_id AS prior_tube,
           ROW_NUMBER() OVER (
               PARTITION BY r.round_id, r.person_id, r.retest
               ORDER BY r.scanned_at, r.batch_id, r.row_no
           ) AS person_rank,
           FIRST_VALUE(r.barcode) OVER (
               PARTITION BY r.round_id, r.person_id, r.retest
               ORDER BY r.scanned_at, r.batch_id, r.row_no
           ) AS first_barcode
    FROM resolved r
    LEFT JOIN tubes t ON t.barcode = r.barcode
    LEFT JOIN tube_members m
           ON NOT r.retest AND m.round_id = r.round_id AND m.person_id = r.person_id
          AND NOT m.retest
),
judged AS (
    SELECT tubed.*,
           CASE
               WHEN person_id IS NULL THEN 'unknown_person'
               WHEN tube_id IS NOT NULL AND tube_round <> round_id THEN 'tube_other_round'
               WHEN tube_id IS NOT NULL AND tube_site <> site_id THEN 'tube_other_site'
               WHEN prior_tube IS NOT NULL AND prior_tube = tube_id THEN 'unchanged'
               WHEN prior_tube IS NOT NULL THEN 'already_sampled'
               WHEN NOT retest AND person_rank > 1 AND first_barcode = barcode THEN 'duplicate'
               WHEN NOT retest AND person_rank > 1 THEN 'person_twice'
               WHEN tube_id IS NOT NULL AND tube_state <> 'open' THEN 'tube_closed'
               ELSE 'ok'
           END AS verdict0
    FROM tubed
),
placed AS (
    SELECT judged.*,
           filled + ROW_NUMBER() OVER (
               PARTITION BY barcode, verdict0 ORDER BY scanned_at, batch_id, row_no
           ) AS pos
    FROM judged
)
INSERT INTO scan_verdict (batch_id, row_no, round_id, site_id, site_region, barcode, kind, capacity,
                          retest, scanned_at, person_id, home, tube_id, position, off_grid,
                          verdict)
SELECT p.batch_id, p.row_no, p.round_id, p.site_id, p.site_region, p.barcode, p.kind, p.cap,
       p.retest, p.scanned_at, p.person_id, p.home, p.tube_id, p.pos,
       p.has_grids AND NOT EXISTS (
           SELECT 1 FROM sampling_site_grids g
           WHERE g.site_id = p.site_id AND g.region_code = p.home
       ),
       CASE WHEN p.verdict0 = 'ok' AND p.pos > p.cap THEN 'tube_full' ELSE p.verdict0 END
FROM placed p
"""

LOCK_TUBES = """
SELECT t.id FROM tubes t
WHERE t.barcode IN (SELECT DISTINCT barcode FROM scan_stage)
ORDER BY t.id
FOR UPDATE
"""

CREATE_TUBES = """
INSERT INTO tubes (barcode, round_id, site_id, region_code, kind, capacity, member_count, state,
                   first_scan_at)
SELECT barcode, MIN(round_id), MIN(site_id), MIN(site_region), MIN(kind), MIN(capacity),
       COUNT(*), 'open', MIN(scanned_at)
FROM scan_verdict
WHERE verdict = 'ok' AND tube_id IS NULL
GROUP BY barcode
"""

MEMBER_COLUMNS = [
    "round_id",
    "tube_id",
    "person_id",
    "position",
    "scanned_at",
    "region_code",
    "off_grid",
    "retest",
    "batch_id",
]
NEW_MEMBERS = """
SELECT v.round_id, t.id, v.person_id, v.position, v.scanned_at, v.home, v.off_grid, v.retest,
       v.batch_id
FROM scan_verdict v
JOIN tubes t ON t.barcode = v.barcode
WHERE v.verdict = 'ok'
"""
INSERT_MEMBERS = f"INSERT INTO tube_members ({', '.join(MEMBER_COLUMNS)}) {NEW_MEMBERS}"

COUNT_MEMBERS = """
UPDATE tubes SET member_count = tubes.member_count + c.n
FROM (SELECT tube_id, COUNT(*) AS n FROM scan_verdict
      WHERE verdict = 'ok' AND tube_id IS NOT NULL GROUP BY tube_id) AS c
WHERE tubes.id = c.tube_id
"""

OUTCOMES = """
SELECT batch_id, row_no, verdict, off_grid, capacity
FROM scan_verdict
WHERE verdict <> 'ok' OR off_grid
ORDER BY batch_id, row_no
"""

ACCEPTED = """
SELECT batch_id, COUNT(*) FROM scan_verdict WHERE verdict = 'ok' GROUP BY batch_id
"""


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass(frozen=True)
class BatchIn:
    """One sender's batch: who sent it, under which idempotency key, and its scans."""

    principal: Principal
    key: str
    source: str
    scans: Iterable[RawScan]


def ingest_scans(
    *,
    db_session: Session,
    principal: Principal,
    key: str,
    source: str,
    scans: Iterable[RawScan],
    chunk: int = CHUNK,
) -> IngestReport:
    """Record a batch of scans under the idempotency ``key``; see the module docstring for what
    is refused. Runs in the caller's transaction; a concurrent writer touching the same tubes or
    people makes this raise IntegrityError, and the edge retries the whole batch once."""
    (report,) = ingest_batches(
        db_session=db_session,
        batches=[BatchIn(principal=principal, key=key, source=source, scans=scans)],
        chunk=chunk,
    )
    return report


def ingest_batches(
    *,
    db_session: Session,
    batches: Sequence[BatchIn],
    chunk: int = CHUNK,
    sites: SiteCache | None = None,
) -> list[IngestReport]:
    """Record several senders' batches in one transaction and one set of statements (the live
    API's group commit), each judged as if the batches had arrived one after another in order.
    Returns one report per batch, in order; a key seen before (or earlier in ``batches``)
    replays its first answer. ``sites`` keeps sites' pool sizes between calls (live API)."""
    for item in batches:
        item.principal.require(Perm.scans_write)
    if is_postgres(db_session):
        # Chunks sort and hash tens of thousands of rows: give them memory instead of disk, and
        # skip JIT compilation, which costs more than it saves on statements this size.
        db_session.execute(text("SET LOCAL work_mem = '128MB'"))
        db_session.execute(text("SET LOCAL jit = off"))
    keys = [b.key for b in batches]
    stored = {
        b.key: b
        for b in db_session.execute(select(ScanBatch).where(ScanBatch.key.in_(set(keys)))).scalars()
    }
    reports: list[IngestReport] = []
    fresh: dict[str, tuple[IngestReport, BatchIn]] = {}
    repeated: list[tuple[int, str]] = []
    for item in batches:
        if item.key in stored:
            reports.append(IngestReport.from_batch(stored[item.key]))
        elif item.key in fresh:
            # The same key twice in one group: answered like a re-send, once the first is judged.
            repeated.append((len(reports), item.key))
            reports.append(IngestReport(key=item.key))
        else:
            fresh[item.key] = (IngestReport(key=item.key), item)
            reports.append(fresh[item.key][0])
    if fresh:
        ids = _batch_ids(db_session, len(fresh))
        by_id = {
            batch_id: report for batch_id, (report, _) in zip(ids, fresh.values(), strict=True)
        }
        _create_temp_tables(db_session)
        contexts: dict[str, _Context] = {}
        postgres = is_postgres(db_session)
        round_of: dict[int, int] = {}
        staged: list[tuple[Any, ...]] = []
        for batch_id, (report, item) in zip(ids, fresh.values(), strict=True):
            ctx = contexts.setdefault(
                item.principal.username, _Context(db_session, item.principal, sites)
            )
            for scan in item.scans:
                checked = _check_row(ctx, scan)
                if isinstance(checked, FieldProblem):
                    report.refuse(checked)
                    continue
                staged.append((batch_id, *checked))
                round_of.setdefault(batch_id, checked[1])
                if len(staged) >= chunk:
                    _land_chunk(db_session, staged, by_id, postgres=postgres)
                    staged = []
        if staged:
            _land_chunk(db_session, staged, by_id, postgres=postgres)
        received_at = clock.now()
        rows = []
        for batch_id, (report, item) in zip(ids, fresh.values(), strict=True):
            report.problems.sort(key=lambda p: p.row or 0)
            rows.append(
                (
                    batch_id,
                    item.key,
                    round_of.get(batch_id),
                    item.source,
                    item.principal.username,
                    received_at,
                    report.accepted,
                    report.refused,
                    report.flagged,
                    report.to_json(),
                )
            )
        # One write of every batch's record, with its final answer (a concurrent sender of the
        # same key meets the unique index here, and the edge retries: it then replays).
        bulk_insert(db_session, ScanBatch, BATCH_COLUMNS, rows)
    for index, key in repeated:
        first = fresh[key][0]
        reports[index] = dataclasses.replace(
            first, problems=list(first.problems), flags=list(first.flags), replayed=True
        )
    return reports


BATCH_COLUMNS = [
    "id",
    "key",
    "round_id",
    "source",
    "actor",
    "received_at",
    "accepted",
    "refused",
    "flagged",
    "report",
]


def _batch_ids(db_session: Session, count: int) -> list[int]:
    """Ids for ``count`` new scan batches, taken before their rows are written (members refer to
    them; the batch records are written once, with their final answers)."""
    if is_postgres(db_session):
        return list(
            db_session.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('scan_batches', 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"n": count},
            ).scalars()
        )
    # SQLite has one writer at a time; a second process racing for the same ids fails on the
    # primary key at commit and its edge retries.
    top = db_session.execute(text("SELECT COALESCE(MAX(id), 0) FROM scan_batches")).scalar_one()
    return list(range(top + 1, top + 1 + count))


def _land_chunk(
    db_session: Session,
    staged: list[tuple[Any, ...]],
    reports: dict[int, IngestReport],
    *,
    postgres: bool,
) -> None:
    bulk_insert(db_session, "scan_stage", STAGE_COLUMNS, staged)
    if postgres:
        # Temporary tables are never auto-analysed; without statistics the planner walks the
        # indexes row by row instead of hashing the chunk against persons and tubes.
        db_session.execute(text("ANALYZE scan_stage"))
        # Lock the tubes this chunk touches: two sites' batches adding to one tube at once would
        # otherwise compute the same next positions (the unique (tube, position) index would then
        # refuse the second writer; SQLite's single writer needs no lock).
        db_session.execute(text(LOCK_TUBES))
    # Every join here is by a unique or leading index column, while statistics on tubes and
    # tube_members lag far behind a round's growth (a new round starts them empty).
    with index_lookups(db_session):
        db_session.execute(text(CLASSIFY))
    # New tubes are created already counted; only tubes that existed before are updated.
    db_session.execute(text(COUNT_MEMBERS))
    db_session.execute(text(CREATE_TUBES))
    if postgres:
        # COPY writes the heap and indexes in bulk; INSERT … SELECT goes row by row and costs
        # about twice as much here, so the new members make a round trip through the client.
        raw = db_session.connection().connection.driver_connection
        assert raw is not None
        with raw.cursor(binary=True) as cur:
            cur.execute(NEW_MEMBERS)
            bulk_insert(db_session, TubeMember, MEMBER_COLUMNS, cur)
    else:
        db_session.execute(text(INSERT_MEMBERS))
    for batch_id, accepted in db_session.execute(text(ACCEPTED)):
        reports[batch_id].accepted += accepted
    coverage.add_sampled_from_verdict(db_session=db_session)  # coverage counters (issue #3 part 8)
    for batch_id, row_no, verdict, off_grid, capacity in db_session.execute(text(OUTCOMES)):
        report = reports[batch_id]
        meaning = VERDICTS.get(verdict)
        if verdict in ("unchanged", "duplicate"):
            report.unchanged += 1
        elif meaning is not None:
            params = {"max": capacity} if verdict == "tube_full" else {}
            report.refuse(FieldProblem(meaning[0], meaning[1], params, row_no))
            continue
        if off_grid and verdict == "ok":
            report.flagged += 1
            if len(report.flags) < MAX_REPORTED:
                report.flags.append(FieldProblem("person", "scan.off_grid", {}, row_no))
    _clear_temp_tables(db_session)


SCAN_FILE_COLUMNS = ["round", "site", "tube", "person", "scanned_at", "kind", "capacity"]
SCAN_FILE_REQUIRED = ["round", "site", "tube", "person", "scanned_at"]


def file_key(binary: IO[bytes]) -> str:
    """The idempotency key of a scan file: its SHA-256, so the same file sent twice is one batch."""
    digest = hashlib.sha256()
    for block in iter(lambda: binary.read(1 << 20), b""):
        digest.update(block)
    binary.seek(0)
    return f"file:{digest.hexdigest()}"


def scans_from_file(binary: IO[bytes]) -> Iterator[RawScan | FieldProblem]:
    """Scans read from a CSV file (columns round, site, tube, person, scanned_at, and optionally
    kind and capacity), streamed; a row whose capacity is not a number comes back as a problem."""
    for row_number, values in files.read_csv_rows(
        binary, required=SCAN_FILE_REQUIRED, known=SCAN_FILE_COLUMNS
    ):
        raw_capacity = values.get("capacity", "")
        capacity: int | None = None
        if raw_capacity:
            if not raw_capacity.isdigit() or len(raw_capacity) > 2:
                yield FieldProblem(
                    "capacity", "field.out_of_range", {"min": 1, "max": 20}, row_number
                )
                continue
            capacity = int(raw_capacity)
        yield RawScan(
            row=row_number,
            round=values["round"],
            site=values["site"],
            tube=values["tube"],
            person=values["person"],
            scanned_at=values["scanned_at"],
            kind=values.get("kind") or TubeKind.pooled.value,
            capacity=capacity,
        )


def import_scans_file(
    *,
    db_session: Session,
    principal: Principal,
    binary: IO[bytes],
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Import a scan file through the same bulk path as the live API (one batch keyed by the
    file's hash). Refuses a file it cannot read at all; otherwise reports each bad row."""
    key = file_key(binary)
    early: list[FieldProblem] = []

    def rows() -> Iterator[RawScan]:
        for count, item in enumerate(scans_from_file(binary), start=1):
            if on_progress is not None and count % 10_000 == 0:
                on_progress(count)
            if isinstance(item, FieldProblem):
                early.append(item)
            else:
                yield item

    report = ingest_scans(
        db_session=db_session, principal=principal, key=key, source="file", scans=rows()
    )
    if early and not report.replayed:
        for problem in early:
            report.refuse(problem)
        report.problems.sort(key=lambda p: p.row or 0)
        stored = db_session.execute(select(ScanBatch).where(ScanBatch.key == key)).scalar_one()
        stored.refused = report.refused
        stored.report = report.to_json()
        db_session.flush()
    return report
