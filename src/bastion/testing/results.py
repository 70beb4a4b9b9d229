"""The one bulk path for lab results: the API's JSON lists and ``bastion testing import-results``
files both land here.

A result row names the lab, the tube, the result (negative / positive / invalid, or 阴性 / 阳性 /
无效), the Ct values for ORF1ab and N, the receipt time (optional) and the test time; the upload
time is now. Rows are checked in two stages, a chunk at a time so a file of millions keeps
memory flat:

1. row by row in Python, for what a row alone tells: the lab is known and in the user's
   subtree, the barcode is well formed, the result is one of the three, Ct values are numbers in
   range (0 < Ct ≤ 45), a positive carries at least one Ct value, times parse;
2. against the record, with the chunk's barcodes staged in a temporary table and the tubes,
   their boxes and their conflicts read back in one query each; the pure rules
   (:func:`bastion.testing.rules.check_result_times`) then judge each row, and the verdicts are
   applied set-based (one UPDATE … FROM a temporary table, one bulk insert of conflicts).

Decisions (issue #3):

- A result is accepted only from the lab that received the tube. A tube with no receipt yet
  (it was missing from its lab's receipt scan) is received from the result row itself when the
  row carries ``received_at`` and the lab is the one that received the tube's box; from any
  other lab, or for a tube whose box no lab has received, the row is refused ("not received").
  When the tube already has a receipt, the box scan's time is authoritative and the row's
  ``received_at`` is only checked for form.
- Times must run sampling → receipt → test → upload; the test time may run ahead of the
  server's clock by :data:`CLOCK_SKEW` (lab instruments' clocks drift), never more.
- A second result equal to the one on record (same result, same Ct values to 0.01; the test
  time is not compared) is "unchanged", so a re-uploaded file changes nothing. A different one
  becomes a :class:`~bastion.testing.models.ResultConflict` for a person to resolve, never an
  overwrite; the same contradicting value sent again is unchanged too (one conflict per value).
  This holds for a first result of "invalid" as well: re-runs of an invalid tube go through
  conflict resolution or, better, a new retest tube.
- Capacity is never a reason to refuse: overload shows in the lab's load figure.
- After each chunk lands, :func:`bastion.testing.pools.process_results` is called with the
  tubes that got a new result (holds and retests for positive pools are that module's work).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import IO, Any, cast

from sqlalchemy import Column, MetaData, String, Table, select, text
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal, system_principal
from bastion.core.config import get_settings
from bastion.core.db import bulk_insert, is_postgres
from bastion.core.errors import (
    Conflict,
    FieldProblem,
    InvalidInput,
    NotFound,
)
from bastion.testing import coverage, files, pools, rules
from bastion.testing.models import Box, Lab, ResultConflict, Tube

CHUNK = 50_000
MAX_REPORTED = 1_000
CLOCK_SKEW = timedelta(minutes=10)
#: Ct values closer than this are the same value (files round differently).
CT_TOLERANCE = 0.005

COLUMNS = ["lab", "tube", "result", "ct_orf1ab", "ct_n", "received_at", "tested_at"]
REQUIRED = ["lab", "tube", "result", "tested_at"]

_RESULT_WORDS = {
    "negative": "negative",
    "positive": "positive",
    "invalid": "invalid",
    "阴性": "negative",
    "阳性": "positive",
    "无效": "invalid",
}
#: What labs write in a Ct column when the target was not detected.
_NO_CT = {"", "-", "n/a", "na", "none", "null", "undetermined", "nd", "未检出"}


@dataclass(frozen=True)
class RawResult:
    """A result row as it arrived: text from a file, or JSON values from the API."""

    row: int
    lab: str
    tube: str
    result: str
    tested_at: str | datetime
    ct_orf1ab: str | float | None = None
    ct_n: str | float | None = None
    received_at: str | datetime | None = None


@dataclass
class ResultReport:
    """What an upload did: counts, and the refused rows (the first :data:`MAX_REPORTED`)."""

    rows: int = 0
    accepted: int = 0
    unchanged: int = 0
    conflicts: int = 0
    refused: int = 0
    #: Tubes whose receipt came from the result row (missing from their box's receipt scan).
    received_from_file: int = 0
    #: The file became unreadable part-way: rows before that point were processed.
    stopped: bool = False
    problems: list[FieldProblem] = field(default_factory=list)
    #: What :func:`bastion.testing.pools.process_results` returned for each chunk.
    pool_summaries: list[Any] = field(default_factory=list)

    def refuse(self, problem: FieldProblem) -> None:
        self.refused += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(problem)


@dataclass(frozen=True)
class _Checked:
    """A row that passed the row-alone checks."""

    row: int
    lab_id: int
    barcode: str
    result: str
    ct_orf1ab: float | None
    ct_n: float | None
    received_at: datetime | None
    tested_at: datetime


Value = tuple[str, float | None, float | None]


# Row-alone checks --------------------------------------------------------------------------


def _safe_ref(value: str, max_len: int = 64) -> str | None:
    text_ = value.strip()
    if not text_ or len(text_) > max_len or not text_.isascii() or not text_.isprintable():
        return None
    return text_


def _parse_time(value: str | datetime) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        # Lab systems record local wall-clock time; an offset-less time is read in the
        # deployment's zone (Asia/Shanghai by default), as the lab meant it.
        moment = moment.replace(tzinfo=clock.local_tz())
    return moment


def _parse_ct(value: str | float | None, name: str, row: int) -> float | FieldProblem | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return FieldProblem(name, "result.bad_ct", {"value": str(value)}, row)
    if isinstance(value, int | float):
        number = float(value)
    else:
        if value.strip().lower() in _NO_CT:
            return None
        try:
            number = float(value.strip())
        except ValueError:
            return FieldProblem(name, "result.bad_ct", {"value": value.strip()[:40]}, row)
    if not math.isfinite(number):
        return FieldProblem(name, "result.bad_ct", {"value": str(value)[:40]}, row)
    if not rules.ct_value_ok(number):
        return FieldProblem(name, "result.ct_out_of_range", {"min": 0, "max": 45}, row)
    return number


class _Labs:
    """Labs met so far in an upload, looked up once each."""

    def __init__(self, db_session: Session, principal: Principal) -> None:
        self.db = db_session
        self.principal = principal
        self.found: dict[str, int | tuple[str, dict[str, Any]]] = {}

    #: Distinct lab codes remembered; a file of millions of made-up codes must not grow memory.
    LIMIT = 10_000

    def get(self, code: str, row: int) -> int | FieldProblem:
        if code not in self.found:
            if len(self.found) >= self.LIMIT:
                self.found.clear()
            ref = _safe_ref(code)
            lab = (
                self.db.execute(select(Lab).where(Lab.code == ref)).scalar_one_or_none()
                if ref is not None
                else None
            )
            if lab is None or not lab.active:
                self.found[code] = ("result.unknown_lab", {"value": code[:40]})
            elif not self.principal.scope.contains(lab.region_code):
                self.found[code] = ("error.region_outside", {"region": lab.region_code})
            else:
                self.found[code] = lab.id
        known = self.found[code]
        if isinstance(known, int):
            return known
        return FieldProblem("lab", known[0], known[1], row)


def _check_row(labs: _Labs, raw: RawResult, now: datetime) -> _Checked | FieldProblem:
    """The row in typed form, or the first problem the row alone shows."""
    lab_id = labs.get(str(raw.lab), raw.row)
    if isinstance(lab_id, FieldProblem):
        return lab_id
    barcode = rules.normalise_barcode(str(raw.tube))
    if not rules.is_valid_barcode(barcode):
        return FieldProblem("tube", "scan.bad_barcode", {"value": barcode[:40]}, raw.row)
    result = _RESULT_WORDS.get(str(raw.result).strip().lower())
    if result is None:
        return FieldProblem("result", "result.bad_result", {"value": str(raw.result)[:40]}, raw.row)
    ct_orf1ab = _parse_ct(raw.ct_orf1ab, "ct_orf1ab", raw.row)
    if isinstance(ct_orf1ab, FieldProblem):
        return ct_orf1ab
    ct_n = _parse_ct(raw.ct_n, "ct_n", raw.row)
    if isinstance(ct_n, FieldProblem):
        return ct_n
    if result == "positive" and ct_orf1ab is None and ct_n is None:
        return FieldProblem("ct_orf1ab", "result.positive_without_ct", {}, raw.row)
    tested_at = _parse_time(raw.tested_at)
    if tested_at is None:
        return FieldProblem(
            "tested_at", "field.bad_datetime", {"value": str(raw.tested_at)[:40]}, raw.row
        )
    received_at = None
    if raw.received_at is not None and str(raw.received_at).strip():
        received_at = _parse_time(raw.received_at)
        if received_at is None:
            return FieldProblem(
                "received_at", "field.bad_datetime", {"value": str(raw.received_at)[:40]}, raw.row
            )
    if tested_at > now + CLOCK_SKEW:
        return FieldProblem("tested_at", "result.in_the_future", {}, raw.row)
    return _Checked(raw.row, lab_id, barcode, result, ct_orf1ab, ct_n, received_at, tested_at)


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
        "CREATE TEMPORARY TABLE IF NOT EXISTS result_stage (barcode VARCHAR(24))",
        f"""CREATE TEMPORARY TABLE IF NOT EXISTS result_apply (
            tube_id BIGINT, result VARCHAR(16), ct_orf1ab FLOAT, ct_n FLOAT, tested_at {ts},
            uploaded_at {ts}, received_at {ts}, lab_id INTEGER)""",
    ):
        db_session.execute(text(ddl))


def _clear_temp_tables(db_session: Session) -> None:
    for table in ("result_stage", "result_apply"):
        db_session.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names


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
    labs = _Labs(db_session, principal)
    _create_temp_tables(db_session)
    postgres = is_postgres(db_session)
    for part in _chunks(_guarded(rows, report), chunk):
        now = clock.now()
        checked: list[_Checked] = []
        for raw in part:
            verdict = _check_row(labs, raw, now)
            if isinstance(verdict, FieldProblem):
                report.refuse(verdict)
            else:
                checked.append(verdict)
        if checked:
            new_tubes = _land_chunk(db_session, checked, report, now, postgres=postgres)
            if new_tubes:
                summary = _process_results(db_session, principal, new_tubes)
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
    checked: list[_Checked],
    report: ResultReport,
    now: datetime,
    *,
    postgres: bool,
) -> list[int]:
    """Judge a chunk against the record and apply it; returns the tubes given a new result."""
    bulk_insert(
        db_session, "result_stage", ["barcode"], ((b,) for b in {c.barcode for c in checked})
    )
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
        db_session.execute(text(APPLY))
        # The UPDATE bypassed the ORM: tubes already loaded in this session are stale.
        for obj in list(db_session.identity_map.values()):
            if isinstance(obj, Tube):
                db_session.expire(obj)
    if conflict_rows:
        bulk_insert(db_session, ResultConflict, CONFLICT_COLUMNS, conflict_rows)
    _clear_temp_tables(db_session)
    return [r[0] for r in apply_rows]


def _process_results(db_session: Session, principal: Principal, tube_ids: list[int]) -> Any:
    """Hand the tubes that got their first result to the coverage counters (results out,
    positive tubes) and to the positive-pool workflow (holds, retests)."""
    coverage.add_results(db_session=db_session, tube_ids=tube_ids)
    return pools.process_results(db_session=db_session, principal=principal, tube_ids=tube_ids)


# One tube, conflicts -----------------------------------------------------------------------


@dataclass(frozen=True)
class TubeResult:
    barcode: str
    state: str
    region_code: str
    lab_code: str | None
    received_at: datetime | None
    tested_at: datetime | None
    uploaded_at: datetime | None
    result: str | None
    ct_orf1ab: float | None
    ct_n: float | None
    open_conflicts: int


def _visible(principal: Principal, tube: Tube, lab: Lab | None) -> bool:
    return principal.scope.contains(tube.region_code) or (
        lab is not None and principal.scope.contains(lab.region_code)
    )


def get_tube_result(*, db_session: Session, principal: Principal, barcode: str) -> TubeResult:
    """A tube's result (if any) with its times, for users whose subtree holds the tube's site
    or its lab; otherwise, or for an unknown tube, 404."""
    principal.require(Perm.testing_read)
    code = rules.normalise_barcode(barcode)
    tube = (
        db_session.execute(select(Tube).where(Tube.barcode == code)).scalar_one_or_none()
        if rules.is_valid_barcode(code)
        else None
    )
    lab = db_session.get(Lab, tube.lab_id) if tube is not None and tube.lab_id else None
    if tube is None or not _visible(principal, tube, lab):
        raise NotFound(
            "result.unknown_tube",
            value=barcode[:40],
            problems=[FieldProblem("tube", "result.unknown_tube", {"value": barcode[:40]})],
        )
    open_conflicts = len(
        db_session.execute(
            select(ResultConflict.id).where(
                ResultConflict.tube_id == tube.id, ResultConflict.resolved_at.is_(None)
            )
        ).all()
    )
    return TubeResult(
        barcode=tube.barcode,
        state=tube.state,
        region_code=tube.region_code,
        lab_code=lab.code if lab else None,
        received_at=tube.received_at,
        tested_at=tube.tested_at,
        uploaded_at=tube.uploaded_at,
        result=tube.result,
        ct_orf1ab=tube.ct_orf1ab,
        ct_n=tube.ct_n,
        open_conflicts=open_conflicts,
    )


@dataclass(frozen=True)
class ConflictView:
    id: int
    tube: str
    lab_code: str
    region_code: str
    #: What the tube holds now (the first result, unless a resolution replaced it).
    current_result: str | None
    current_ct_orf1ab: float | None
    current_ct_n: float | None
    first_result: str
    second_result: str
    second_ct_orf1ab: float | None
    second_ct_n: float | None
    reported_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    note: str


def _conflict_view(conflict: ResultConflict, tube: Tube, lab: Lab) -> ConflictView:
    return ConflictView(
        id=conflict.id,
        tube=tube.barcode,
        lab_code=lab.code,
        region_code=tube.region_code,
        current_result=tube.result,
        current_ct_orf1ab=tube.ct_orf1ab,
        current_ct_n=tube.ct_n,
        first_result=conflict.first_result,
        second_result=conflict.second_result,
        second_ct_orf1ab=conflict.second_ct_orf1ab,
        second_ct_n=conflict.second_ct_n,
        reported_at=conflict.reported_at,
        resolved_at=conflict.resolved_at,
        resolution=conflict.resolution,
        note=conflict.note,
    )


def list_conflicts(
    *, db_session: Session, principal: Principal, open_only: bool = True, limit: int = 500
) -> list[ConflictView]:
    """Result conflicts whose tube's site or lab lies in the user's subtree, oldest first."""
    principal.require(Perm.testing_read)
    stmt = (
        select(ResultConflict, Tube, Lab)
        .join(Tube, Tube.id == ResultConflict.tube_id)
        .join(Lab, Lab.id == ResultConflict.lab_id)
        .where(principal.scope.clause(Tube.region_code) | principal.scope.clause(Lab.region_code))
        .order_by(ResultConflict.reported_at, ResultConflict.id)
        .limit(max(1, min(limit, 5_000)))
    )
    if open_only:
        stmt = stmt.where(ResultConflict.resolved_at.is_(None))
    return [_conflict_view(c, t, lab) for c, t, lab in db_session.execute(stmt)]


def resolve_conflict(
    *, db_session: Session, principal: Principal, conflict_id: int, pick: str, note: str
) -> ConflictView:
    """Settle a conflict by picking the ``first`` result (the tube keeps what it holds) or the
    ``second`` (the tube takes the conflicting result and its Ct values); audited with both
    values and the reason. Needs ``labs.manage`` (command staff, not the lab that produced the
    conflict). Refuses an unknown pick, an empty or over-long note, an unknown conflict or one
    outside the user's subtree (404), and a conflict already resolved (409)."""
    principal.require(Perm.labs_manage)
    problems: list[FieldProblem] = []
    if pick not in ("first", "second"):
        problems.append(FieldProblem("pick", "result.bad_pick", {"value": str(pick)[:20]}))
    reason = note.strip()
    if not reason:
        problems.append(FieldProblem("note", "field.required"))
    elif len(reason) > 200:
        problems.append(FieldProblem("note", "field.too_long", {"max": 200}))
    elif not reason.isprintable():
        problems.append(FieldProblem("note", "field.control_chars"))
    if problems:
        raise InvalidInput(problems=problems)
    # Lock the conflict: two supervisors resolving it at once would both apply (perhaps
    # opposite) picks and both be audited as the final word.
    conflict = db_session.execute(
        select(ResultConflict).where(ResultConflict.id == conflict_id).with_for_update()
    ).scalar_one_or_none()
    tube = db_session.get(Tube, conflict.tube_id) if conflict is not None else None
    lab = db_session.get(Lab, conflict.lab_id) if conflict is not None else None
    if conflict is None or tube is None or lab is None or not _visible(principal, tube, lab):
        raise NotFound(
            "result.conflict_not_found",
            problems=[FieldProblem("id", "result.conflict_not_found")],
        )
    if conflict.resolved_at is not None:
        raise Conflict(
            "result.conflict_resolved",
            problems=[FieldProblem("id", "result.conflict_resolved")],
        )
    before = {"result": tube.result, "ct_orf1ab": tube.ct_orf1ab, "ct_n": tube.ct_n}
    second = {
        "result": conflict.second_result,
        "ct_orf1ab": conflict.second_ct_orf1ab,
        "ct_n": conflict.second_ct_n,
    }
    changed = pick == "second" and before != second
    if changed:
        coverage.remove_results(db_session=db_session, tube_ids=[tube.id])
    if pick == "second":
        tube.result = conflict.second_result
        tube.ct_orf1ab = conflict.second_ct_orf1ab
        tube.ct_n = conflict.second_ct_n
    conflict.resolved_at = clock.now()
    conflict.resolved_by = principal.user_id
    conflict.resolution = pick
    conflict.note = reason
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="result_conflict.resolve",
        target_type="tube",
        target_id=tube.id,
        region_code=tube.region_code,
        details={
            "conflict": conflict.id,
            "tube": tube.barcode,
            "lab": lab.code,
            "pick": pick,
            "held": before,
            "second": second,
            "note": reason,
        },
    )
    if changed:
        # The pool workflow runs on behalf of the resolution (audited above under the
        # resolver's name); command staff hold no results.write of their own.
        _process_results(db_session, system_principal(), [tube.id])
    return _conflict_view(conflict, tube, lab)


__all__ = [
    "COLUMNS",
    "ConflictView",
    "RawResult",
    "ResultReport",
    "TubeResult",
    "get_tube_result",
    "import_results_file",
    "list_conflicts",
    "resolve_conflict",
    "upload_results",
]
