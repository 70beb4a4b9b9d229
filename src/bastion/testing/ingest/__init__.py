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
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.db import bulk_insert, index_lookups, is_postgres
from bastion.core.errors import FieldProblem
from bastion.testing import coverage, pools
from bastion.testing.enums import TubeKind
from bastion.testing.ingest.feed import Caller, Chunk, Work, chunks, direct, threaded
from bastion.testing.ingest.resolve import open_resolver
from bastion.testing.ingest.rows import (
    MAX_REPORTED,
    VERDICTS,
    IngestReport,
    RawScan,
    RoundNow,
    ScanContext,
    SiteCache,
)
from bastion.testing.ingest.statements import (
    COPY_RESOLVED_IN,
    COUNT_MEMBERS,
    CREATE_TUBES,
    HOUSEHOLD_MIXED,
    INSERT_MEMBERS,
    LOCK_TUBES,
    OUTCOMES,
    PG_BULK_SETTINGS,
    PG_BULK_WRITE_TUBES,
    PG_CLASSIFY_BULK,
    PG_CLASSIFY_PLACED,
    PG_CLASSIFY_RESOLVED,
    PG_HOUSEHOLD_MIXED,
    PG_HOUSEHOLD_STEPS,
    PG_OPEN,
    PG_OUTCOMES_CLEARED,
    PG_RESOLVE_REST,
    PG_ROUNDS_KEPT,
    PG_WRITE_ALL,
    STAGE_COLUMNS,
    classify,
    clear_temp_tables,
    create_temp_tables,
    pg_index_lookups,
)
from bastion.testing.models import ScanBatch

CHUNK = 50_000
#: The first chunk of a stream read in a thread (the pipeline's fill).
FIRST_CHUNK = 10_000


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
    pipelined: bool = True,
) -> IngestReport:
    """Record a batch of scans under the idempotency ``key``; see the module docstring for what
    is refused. Runs in the caller's transaction; a concurrent writer touching the same tubes or
    people makes this raise IntegrityError, and the edge retries the whole batch once. The scans
    are read and checked in a thread of their own while the database judges the previous chunk
    (``pipelined``; the iterable must then not use the session)."""
    if isinstance(scans, Sequence) and len(scans) <= chunk:
        pipelined = False  # one chunk: nothing to overlap, no thread to start
    (report,) = ingest_batches(
        db_session=db_session,
        batches=[BatchIn(principal=principal, key=key, source=source, scans=scans)],
        chunk=chunk,
        pipelined=pipelined,
    )
    return report


def ingest_batches(
    *,
    db_session: Session,
    batches: Sequence[BatchIn],
    chunk: int = CHUNK,
    sites: SiteCache | None = None,
    pipelined: bool = False,
) -> list[IngestReport]:
    """Record several senders' batches in one transaction and one set of statements (the live
    API's group commit), each judged as if the batches had arrived one after another in order.
    Returns one report per batch, in order; a key seen before (or earlier in ``batches``)
    replays its first answer. ``sites`` keeps sites' pool sizes between calls (live API);
    ``pipelined`` checks the rows in a thread (large files, see ``feed``)."""
    for item in batches:
        item.principal.require(Perm.scans_write)
    keys = [b.key for b in batches]
    postgres = is_postgres(db_session)
    if postgres:
        # Settings, the batch ids and the keys already seen in one round trip (the live API
        # pays for every one); index lookups are forced from here (see _land_chunk).
        raw = db_session.connection().connection.driver_connection
        assert raw is not None
        kept_ids = sites.round_ids() if sites is not None else []
        # With the rounds the live API keeps, read as they stand now, in the same round trip
        # (and the BEGIN with them: a pipeline sends it too).
        with raw.pipeline():
            opened = raw.execute(PG_OPEN, {"n": len(batches), "keys": keys})
            kept_rounds = raw.execute(PG_ROUNDS_KEPT, {"ids": kept_ids}) if kept_ids else None
        row = opened.fetchone()
        new_ids: list[int] = list(row[-2])
        seen = set(row[-1] or ())
        rounds_now = {r[0]: RoundNow(*r) for r in kept_rounds.fetchall()} if kept_rounds else {}
    else:
        new_ids = []
        seen = set(keys)
        rounds_now = {}
    stored = (
        {
            b.key: b
            for b in db_session.execute(select(ScanBatch).where(ScanBatch.key.in_(seen))).scalars()
        }
        if seen
        else {}
    )
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
        ids = new_ids[: len(fresh)] if postgres else _batch_ids(db_session, len(fresh))
        by_id = {
            batch_id: report for batch_id, (report, _) in zip(ids, fresh.values(), strict=True)
        }
        create_temp_tables(db_session)
        round_of: dict[int, int] = {}
        work = [
            Work(batch_id, item.principal, item.scans)
            for batch_id, (_, item) in zip(ids, fresh.values(), strict=True)
        ]

        def make_context(principal: Principal, call: Caller) -> ScanContext:
            return ScanContext(db_session, principal, sites, call, rounds_now=rounds_now)

        # The coverage counters' statements, built once per round for the whole call (the live
        # API keeps them across calls with its sites).
        state = _Landing(
            kept=sites.statements if sites is not None else {},
            rounds_now=rounds_now,
        )
        # A large file's chunks have their people looked up on a second connection, in the
        # thread that checks the rows, while this one lands the chunk before (``resolve``).
        resolver = open_resolver(db_session) if pipelined and postgres and chunk >= SMALL else None
        # The database waits for the first chunk with nothing to do: a smaller one gets it going.
        first_size = FIRST_CHUNK if pipelined and chunk > FIRST_CHUNK else None

        def produce(call: Caller) -> Iterator[Chunk]:
            for part in chunks(work, make_context, chunk, call, first=first_size):
                if resolver is not None and len(part.rows) >= SMALL and not state.careful:
                    part.resolved = resolver.resolve(part.rows)
                yield part

        try:
            for part in threaded(produce) if pipelined else produce(direct):
                for batch_id, problem in part.problems:
                    by_id[batch_id].refuse(problem)
                for batch_id, round_id in part.rounds.items():
                    round_of.setdefault(batch_id, round_id)
                if part.rows:
                    _land_chunk(db_session, part, by_id, postgres=postgres, state=state)
                    state.forced = not postgres or len(part.rows) < SMALL
        finally:
            if resolver is not None:
                resolver.close()

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


#: Where a staged row (in STAGE_COLUMNS order) says it is a retest, and its tube's kind.
_RETEST_OF = operator.itemgetter(STAGE_COLUMNS.index("retest"))
_KIND_OF = operator.itemgetter(STAGE_COLUMNS.index("kind"))
_ROUND_OF = operator.itemgetter(STAGE_COLUMNS.index("round_id"))

#: A chunk smaller than this (the live API's groups) is written in fewer, larger statements and
#: cleared by DELETE; a larger one (files) is judged by the bulk statements (with the reader's
#: help on PostgreSQL) and truncated.
SMALL = 5_000


def _write_bulk(raw: Any, classify_statement: str, *, household: bool) -> None:
    """Judge a large chunk with ``classify_statement`` (and the households of its household
    tubes, if it has any) and write its tubes and members."""
    raw.execute(classify_statement)
    if household:
        raw.execute(PG_HOUSEHOLD_MIXED)
    raw.execute(PG_BULK_WRITE_TUBES)
    # INSERT … SELECT costs the server what a COPY of the same rows does (the five indexes
    # dominate), and keeps the rows out of this process: read and written back through Python,
    # they cost a loop per row here, fighting the feed's thread for the interpreter while the
    # server waited.
    raw.execute(INSERT_MEMBERS)


@dataclass
class _Landing:
    """What one call's chunks share as they land."""

    #: The coverage counters' statements (``coverage.add_sampled_from_verdict``).
    kept: dict[tuple[Any, ...], tuple[float, Any]]
    #: The rounds read at the start (live API): their coverage statements' keys.
    rounds_now: dict[int, RoundNow] = dataclasses.field(default_factory=dict)
    #: Whether index lookups are forced already (PG_OPEN forces them).
    forced: bool = True
    #: Set once a resolved chunk had to be judged again (the file names people twice across
    #: chunks): the rest are judged whole at once, without the reader.
    careful: bool = False


def _land_chunk(
    db_session: Session,
    part: Chunk,
    reports: dict[int, IngestReport],
    *,
    postgres: bool,
    state: _Landing,
) -> None:
    small = len(part.rows) < SMALL
    # Household tubes are checked only in chunks that hold some (lockdown zones).
    household = TubeKind.household in set(map(_KIND_OF, part.rows))
    raw: Any = db_session.connection().connection.driver_connection
    if part.resolved is not None:
        # The reader's binary rows go straight in (``resolve``).
        with raw.cursor() as cur, cur.copy(COPY_RESOLVED_IN) as into:
            into.write(part.resolved)
    else:
        # Binary COPY at every size: psycopg adapts each value in C, where one INSERT … unnest
        # of column arrays cost about 1 ms of Python per 150 rows (its array dumpers are
        # Python).
        bulk_insert(db_session, "scan_stage", STAGE_COLUMNS, part.rows)
    if postgres:
        # Every join of LOCK_TUBES and CLASSIFY is by a unique or leading index column, while
        # statistics on tubes and tube_members lag far behind a round's growth (a new round
        # starts them empty); the staging table is only ever read whole.
        # Lock the tubes this chunk touches: two sites' batches adding to one tube at once
        # would otherwise compute the same next positions (the unique (tube, position) index
        # would then refuse the second writer; SQLite's single writer needs no lock).
        if small:
            # Sent together, answered together: one round trip instead of four (the live API
            # waits for each, and on a busy machine each wait is a trip through the scheduler).
            # A failure stops the rest of the pipeline and is raised here.
            with raw.pipeline():
                if not state.forced:
                    raw.execute(pg_index_lookups(True))
                raw.execute(LOCK_TUBES)
                raw.execute(classify(db_session))
                if household:  # (one statement at a time: a pipeline takes no scripts)
                    for step in PG_HOUSEHOLD_STEPS:
                        raw.execute(step)
                raw.execute(PG_WRITE_ALL)
        else:
            # The bulk form of the same verdicts, which also locks the chunk's tubes: its
            # lookups in the record are index probes by construction, so it may hash-join the
            # chunk's own rows (statements.PG_CLASSIFY_BULK); WRITE_TUBES runs with hash joins
            # forbidden again.
            raw.execute(PG_BULK_SETTINGS)
            if part.resolved is None or state.careful:
                _write_bulk(raw, PG_CLASSIFY_BULK, household=household)
            else:
                # The reader judged against what is committed; a person this transaction has
                # already put in the round stops the members' COPY at the unique index, and
                # the chunk is judged again from the start, whole.
                # Positions as the reader counted them, unless the writer finds people it
                # could not see or a barcode came with several rounds or sites.
                (placed,) = raw.execute(PG_RESOLVE_REST).fetchone()
                judge = PG_CLASSIFY_PLACED if placed else PG_CLASSIFY_RESOLVED
                raw.execute("SAVEPOINT scan_chunk")
                try:
                    _write_bulk(raw, judge, household=household)
                except psycopg.errors.UniqueViolation as err:
                    if err.diag.constraint_name != "uq_tube_members_round_person":
                        raise
                    raw.execute("ROLLBACK TO SAVEPOINT scan_chunk")
                    state.careful = True
                    _write_bulk(raw, PG_CLASSIFY_BULK, household=household)
                raw.execute("RELEASE SAVEPOINT scan_chunk")
            # The coverage counters group the chunk by region: let the planner choose.
            raw.execute(pg_index_lookups(False))
    else:
        with index_lookups(db_session):
            db_session.execute(text(classify(db_session)))
        if household:
            for statement in HOUSEHOLD_MIXED:
                db_session.execute(text(statement))
        # New tubes are created already counted; only tubes that existed before are updated.
        db_session.execute(text(COUNT_MEMBERS))
        db_session.execute(text(CREATE_TUBES))
        db_session.execute(text(INSERT_MEMBERS))
    # Coverage counters (issue #3 part 8); the live API keeps their statements with its sites.
    coverage.add_sampled_from_verdict(
        db_session=db_session,
        kept=state.kept,
        rounds=set(map(_ROUND_OF, part.rows)),
        known=state.rounds_now,
    )
    unowed: list[tuple[int, int]] = []
    if any(map(_RETEST_OF, part.rows)):
        # The retest tasks these scans answer are "sampled" from now (issue #3 part 6); a
        # retest that answers none is accepted and flagged (retests escape the "twice in a
        # round" refusal, so a retest nobody owed is worth a look).
        pools.mark_retests_sampled_from_scans(db_session=db_session)
        unowed = pools.unowed_retest_scans(db_session=db_session)
    if postgres and small:
        outcomes = raw.execute(PG_OUTCOMES_CLEARED).fetchall()
    else:
        outcomes = db_session.execute(text(OUTCOMES)).all()
        clear_temp_tables(db_session)
    accepted = dict(part.staged)
    for batch_id, row_no, verdict, off_grid, capacity in outcomes:
        report = reports[batch_id]
        meaning = VERDICTS.get(verdict)
        if verdict != "ok":
            accepted[batch_id] -= 1
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
    off_grid_rows = {(b, r) for b, r, verdict, off, _ in outcomes if off and verdict == "ok"}
    for batch_id, row_no in unowed:
        report = reports[batch_id]
        if (batch_id, row_no) not in off_grid_rows:
            report.flagged += 1  # a row counts once, however many flags it has
        if len(report.flags) < MAX_REPORTED:
            report.flags.append(FieldProblem("kind", "scan.retest_not_owed", {}, row_no))
    for batch_id, count in accepted.items():
        reports[batch_id].accepted += count


from bastion.testing.ingest.imports import (  # noqa: E402 - they build on the above
    SCAN_FILE_COLUMNS,
    SCAN_FILE_REQUIRED,
    file_key,
    import_scans_file,
    scans_from_file,
)

__all__ = [
    "CHUNK",
    "SCAN_FILE_COLUMNS",
    "SCAN_FILE_REQUIRED",
    "BatchIn",
    "IngestReport",
    "RawScan",
    "SiteCache",
    "file_key",
    "import_scans_file",
    "ingest_batches",
    "ingest_scans",
    "scans_from_file",
]
