"""Scan files from offline sites, through the one bulk path (one batch keyed by the file's hash)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core.auth import Principal
from bastion.core.errors import FieldProblem
from bastion.testing import files
from bastion.testing.enums import TubeKind
from bastion.testing.ingest.rows import IngestReport, RawScan
from bastion.testing.models import ScanBatch

SCAN_FILE_COLUMNS = ["round", "site", "tube", "person", "scanned_at", "kind", "capacity"]
SCAN_FILE_REQUIRED = ["round", "site", "tube", "person", "scanned_at"]


def file_key(binary: IO[bytes]) -> str:
    """The idempotency key of a scan file: its SHA-256, so the same file sent twice is one batch."""
    digest = hashlib.sha256()
    for block in iter(lambda: binary.read(1 << 20), b""):
        digest.update(block)
    binary.seek(0)
    return f"file:{digest.hexdigest()}"


#: The Arrow types a Parquet scan file's columns may have.
PARQUET_TYPES: dict[str, tuple[str, ...]] = {
    "round": (files.TEXT,),
    "site": (files.TEXT,),
    "tube": (files.TEXT,),
    "person": (files.TEXT,),
    "scanned_at": (files.MOMENT, files.TEXT),
    "kind": (files.TEXT,),
    "capacity": (files.NUMBER,),
}


def scans_from_file(binary: IO[bytes]) -> Iterator[RawScan | FieldProblem]:
    """Scans read from a CSV or Parquet file (columns round, site, tube, person, scanned_at, and
    optionally kind and capacity), streamed; a row whose capacity is not a number in 1–20 comes
    back as a problem. Parquet is recognised by its first bytes."""
    rows: Iterator[tuple[int, dict[str, Any]]]
    if files.is_parquet(binary):
        rows = files.read_parquet_rows(binary, required=SCAN_FILE_REQUIRED, known=PARQUET_TYPES)
    else:
        rows = files.read_csv_rows(binary, required=SCAN_FILE_REQUIRED, known=SCAN_FILE_COLUMNS)
    for row_number, values in rows:
        raw_capacity = values.get("capacity")
        capacity: int | None = None
        if isinstance(raw_capacity, int):
            if not 1 <= raw_capacity <= 20:
                yield FieldProblem(
                    "capacity", "field.out_of_range", {"min": 1, "max": 20}, row_number
                )
                continue
            capacity = raw_capacity
        elif raw_capacity:
            if not raw_capacity.isdigit() or len(raw_capacity) > 2:
                yield FieldProblem(
                    "capacity", "field.out_of_range", {"min": 1, "max": 20}, row_number
                )
                continue
            capacity = int(raw_capacity)
        moment = values.get("scanned_at")
        yield RawScan(
            row=row_number,
            round=values.get("round") or "",
            site=values.get("site") or "",
            tube=values.get("tube") or "",
            person=values.get("person") or "",
            scanned_at=moment if isinstance(moment, datetime) else (moment or ""),
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

    from bastion.testing.ingest import ingest_scans

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
