"""The set-based upload path: temporary tables, the chunked upload and its SQL."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import IO, Any, cast

from sqlalchemy import Column, MetaData, String, Table, select, text
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.config import get_settings
from bastion.core.db import (
    analyze_if_many,
    bulk_insert,
    empty_temp_tables,
    index_lookups,
    is_postgres,
)
from bastion.core.errors import FieldProblem, InvalidInput
from bastion.testing import coverage, files, pools, rules
from bastion.testing.models import Box, ResultConflict, Tube
from bastion.testing.results.rows import (
    CHUNK,
    CLOCK_SKEW,
    COLUMNS,
    CT_TOLERANCE,
    REQUIRED,
    Checked,
    Labs,
    RawResult,
    ResultReport,
    Value,
    check_row,
)

# Temporary tables --------------------------------------------------------------------------

_temp = MetaData()
_stage = Table("result_stage", _temp, Column("barcode", String(24)))

APPLY_COLUMNS = [
    "tube_id",
    "result",
    "ct_orf1ab",
    "ct_n",
    "tested_at",
    "uploaded_at",
    "received_at",
    "lab_id",
]

APPLY = """
UPDATE tubes
SET result = a.result,
    ct_orf1ab = a.ct_orf1ab,
    ct_n = a.ct_n,
    tested_at = a.tested_at,
    uploaded_at = a.uploaded_at,
    received_at = COALESCE(tubes.received_at, a.received_at),
    lab_id = COALESCE(tubes.lab_id, a.lab_id),
    state = 'resulted'
FROM result_apply a
WHERE tubes.id = a.tube_id
"""

CONFLICT_COLUMNS = [
    "tube_id",
    "lab_id",
    "first_result",
    "second_result",
    "second_ct_orf1ab",
    "second_ct_n",
    "reported_at",
    "note",
]


def _create_temp_tables(db_session: Session) -> None:
    ts = "TIMESTAMP WITH TIME ZONE" if is_postgres(db_session) else "DATETIME"
    for ddl in (
        # Keys on both: a chunk's lookups run as nested loops over indexes
        # (``index_lookups``), and an inner side without one would be read whole per row.
        "CREATE TEMPORARY TABLE IF NOT EXISTS result_stage (barcode VARCHAR(24) PRIMARY KEY)",
        f"""CREATE TEMPORARY TABLE IF NOT EXISTS result_apply (
            tube_id BIGINT PRIMARY KEY, result VARCHAR(16), ct_orf1ab FLOAT, ct_n FLOAT,
            tested_at {ts}, uploaded_at {ts}, received_at {ts}, lab_id INTEGER)""",
    ):
        db_session.execute(text(ddl))


def _clear_temp_tables(db_session: Session) -> None:
    empty_temp_tables(db_session, "result_stage", "result_apply")


# The upload --------------------------------------------------------------------------------


def _guarded(rows: Iterable[RawResult], report: ResultReport) -> Iterator[RawResult]:
    """The rows, stopping (and saying so) where a file turns unreadable or too long."""
    limit = get_settings().max_import_rows
    iterator = iter(rows)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except InvalidInput as err:
            for problem in err.problems or [FieldProblem("file", err.key, dict(err.params))]:
                report.refuse(problem)
            report.stopped = True
            return
        report.rows += 1
        if report.rows > limit:
            report.refuse(FieldProblem("file", "import.too_many_rows", {"max": limit}, item.row))
            report.stopped = True
            return
        yield item


def _chunks(items: Iterable[RawResult], size: int) -> Iterator[list[RawResult]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def upload_results(
    *,
    db_session: Session,
    principal: Principal,
    rows: Iterable[RawResult],
    chunk: int = CHUNK,
    on_chunk: Callable[[ResultReport], None] | None = None,
) -> ResultReport:
    """Record lab results; see the module docstring for what is refused and what is a
    conflict. Runs in the caller's transaction; good rows land, each refused row is reported
    with its row number, field and reason. ``on_chunk`` is called after each chunk (progress)."""
    principal.require(Perm.results_write)
    report = ResultReport()
    labs = Labs(db_session, principal)
    _create_temp_tables(db_session)
    postgres = is_postgres(db_session)
    for part in _chunks(_guarded(rows, report), chunk):
        now = clock.now()
        checked: list[Checked] = []
        for raw in part:
            verdict = check_row(labs, raw, now)
            if isinstance(verdict, FieldProblem):
                report.refuse(verdict)
            else:
                checked.append(verdict)
        if checked:
            # Every lookup of a chunk is by barcode or id: through the indexes, never by
            # reading (or hashing) the round's tubes once per chunk.
            with index_lookups(db_session):
                new_tubes = _land_chunk(db_session, checked, report, now, postgres=postgres)
            if new_tubes:
                summary = process_results(db_session, principal, new_tubes)
                if summary is not None:
                    report.pool_summaries.append(summary)
        if on_chunk is not None:
            on_chunk(report)
    report.problems.sort(key=lambda p: p.row or 0)
    return report


class _Borrowed(io.BufferedIOBase):
    """The caller's binary file, lent to the CSV reader: its text wrapper may close (or be
    collected) without closing the caller's file, and without warning that it was left open."""

    def __init__(self, binary: IO[bytes]) -> None:
        super().__init__()
        self._binary = binary

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        return self._binary.read(-1 if size is None else size)

    def read1(self, size: int = -1, /) -> bytes:
        return self._binary.read(size)

    def seek(self, offset: int, whence: int = 0, /) -> int:
        return self._binary.seek(offset, whence)

    def tell(self) -> int:
        return self._binary.tell()


def import_results_file(
    *,
    db_session: Session,
    principal: Principal,
    binary: IO[bytes],
    chunk: int = CHUNK,
    on_chunk: Callable[[ResultReport], None] | None = None,
) -> ResultReport:
    """Record the results of a CSV file (UTF-8 or GBK; columns ``lab, tube, result, ct_orf1ab,
    ct_n, received_at, tested_at``, of which ``lab, tube, result, tested_at`` are required),
    streamed. Refuses the whole file (InvalidInput) when it has no header, misses a required
    column, has an unknown one, or is not text; otherwise as :func:`upload_results`."""
    principal.require(Perm.results_write)
    parsed = files.read_csv_rows(
        cast(IO[bytes], _Borrowed(binary)), required=REQUIRED, known=COLUMNS
    )

    def rows() -> Iterator[RawResult]:
        for row_no, values in parsed:
            yield RawResult(
                row=row_no,
                lab=values.get("lab", ""),
                tube=values.get("tube", ""),
                result=values.get("result", ""),
                tested_at=values.get("tested_at", ""),
                ct_orf1ab=values.get("ct_orf1ab"),
                ct_n=values.get("ct_n"),
                received_at=values.get("received_at"),
            )

    return upload_results(
        db_session=db_session, principal=principal, rows=rows(), chunk=chunk, on_chunk=on_chunk
    )


def _same(a: Value, b: Value) -> bool:
    def ct_equal(x: float | None, y: float | None) -> bool:
        if x is None or y is None:
            return x is y
        return abs(x - y) < CT_TOLERANCE

    return a[0] == b[0] and ct_equal(a[1], b[1]) and ct_equal(a[2], b[2])


def _land_chunk(
    db_session: Session,
    checked: list[Checked],
    report: ResultReport,
    now: datetime,
    *,
    postgres: bool,
) -> list[int]:
    """Judge a chunk against the record and apply it; returns the tubes given a new result."""
    barcodes = {c.barcode for c in checked}
    bulk_insert(db_session, "result_stage", ["barcode"], ((b,) for b in barcodes))
    analyze_if_many(db_session, "result_stage", len(barcodes))  # walk from them to the tubes
    if postgres:
        # Lock the chunk's tubes: two uploads of the same tube at once (a lab re-sending a file
        # still being processed) would both see no result and the second would overwrite the
        # first instead of becoming a conflict (SQLite's single writer needs no lock).
        db_session.execute(
            select(Tube.id)
            .join(_stage, _stage.c.barcode == Tube.barcode)
            .order_by(Tube.id)
            .with_for_update(of=Tube)
        )
    # Plain Core over the tables (no ORM loading): this read runs once per row of the upload.
    t, b = Tube.__table__.c, Box.__table__.c
    tubes: dict[str, Any] = {
        r.barcode: r
        for r in db_session.connection().execute(
            select(
                t.barcode,
                t.id,
                t.lab_id,
                t.received_at,
                t.first_scan_at.label("sampled_at"),
                b.lab_id.label("box_lab_id"),
                t.result,
                t.ct_orf1ab,
                t.ct_n,
            )
            .select_from(Tube.__table__)
            .join(_stage, _stage.c.barcode == t.barcode)
            .outerjoin(Box.__table__, b.id == t.box_id)
        )
    }
    known: dict[int, list[Value]] = {}
    dropped: dict[int, set[str]] = {}
    for c in db_session.execute(
        select(
            ResultConflict.tube_id,
            ResultConflict.second_result,
            ResultConflict.second_ct_orf1ab,
            ResultConflict.second_ct_n,
            ResultConflict.first_result,
            ResultConflict.resolution,
        )
        .join(Tube, Tube.id == ResultConflict.tube_id)
        .join(_stage, _stage.c.barcode == Tube.barcode)
    ):
        known.setdefault(c.tube_id, []).append((c.second_result, c.second_ct_orf1ab, c.second_ct_n))
        if c.resolution == "second":
            # The first value left the tube when the second was picked; only its result word
            # is on record, so a re-sent first value is recognised by that.
            dropped.setdefault(c.tube_id, set()).add(c.first_result)

    current: dict[int, Value] = {}
    receipts: dict[int, datetime] = {}
    apply_rows: list[tuple[Any, ...]] = []
    conflict_rows: list[tuple[Any, ...]] = []
    for row in sorted(checked, key=lambda c: c.row):
        tube = tubes.get(row.barcode)
        if tube is None:
            report.refuse(
                FieldProblem("tube", "result.unknown_tube", {"value": row.barcode}, row.row)
            )
            continue
        received_at = receipts.get(tube.id, tube.received_at)
        receiving_lab = tube.lab_id if tube.lab_id is not None else tube.box_lab_id
        if receiving_lab is not None and receiving_lab != row.lab_id:
            report.refuse(FieldProblem("lab", "result.wrong_lab", {}, row.row))
            continue
        from_file = False
        if received_at is None:
            if receiving_lab is None or row.received_at is None:
                report.refuse(FieldProblem("received_at", "result.not_received", {}, row.row))
                continue
            received_at, from_file = row.received_at, True
        check = rules.check_result_times(
            sampled_at=tube.sampled_at,
            received_at=received_at,
            tested_at=row.tested_at,
            uploaded_at=now + CLOCK_SKEW,
        )
        if not check.ok:
            report.refuse(FieldProblem(check.field, check.reason, {}, row.row))
            continue
        value: Value = (row.result, row.ct_orf1ab, row.ct_n)
        first: Value | None = current.get(tube.id)
        if first is None and tube.result is not None:
            first = (tube.result, tube.ct_orf1ab, tube.ct_n)
        if first is None:
            current[tube.id] = value
            if from_file:
                receipts[tube.id] = received_at
                report.received_from_file += 1
            apply_rows.append(
                (
                    tube.id,
                    row.result,
                    row.ct_orf1ab,
                    row.ct_n,
                    row.tested_at,
                    now,
                    received_at if from_file else None,
                    row.lab_id if from_file else None,
                )
            )
            report.accepted += 1
            continue
        on_record = [first, *known.get(tube.id, [])]
        if any(_same(value, v) for v in on_record) or row.result in dropped.get(tube.id, set()):
            report.unchanged += 1
            continue
        known.setdefault(tube.id, []).append(value)
        conflict_rows.append(
            (tube.id, row.lab_id, first[0], row.result, row.ct_orf1ab, row.ct_n, now, "")
        )
        report.conflicts += 1

    if apply_rows:
        bulk_insert(db_session, "result_apply", APPLY_COLUMNS, apply_rows)
        analyze_if_many(db_session, "result_apply", len(apply_rows))
        db_session.execute(text(APPLY))
        # The UPDATE bypassed the ORM: tubes already loaded in this session are stale.
        for obj in list(db_session.identity_map.values()):
            if isinstance(obj, Tube):
                db_session.expire(obj)
    if conflict_rows:
        bulk_insert(db_session, ResultConflict, CONFLICT_COLUMNS, conflict_rows)
    _clear_temp_tables(db_session)
    return [r[0] for r in apply_rows]


def process_results(db_session: Session, principal: Principal, tube_ids: list[int]) -> Any:
    """Hand the tubes that got their first result to the coverage counters (results out,
    positive tubes) and to the positive-pool workflow (holds, retests)."""
    coverage.add_results(db_session=db_session, tube_ids=tube_ids)
    return pools.process_results(db_session=db_session, principal=principal, tube_ids=tube_ids)
