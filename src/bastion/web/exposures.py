"""Exposures recorded from the case page: a CSV file's rows read into the batch API's items (each
unreadable row reported by its line), recorded and handed to isolation as the API does, and the
refused rows listed by their line in the file."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from bastion.core.auth import Principal
from bastion.core.errors import FieldProblem, InvalidInput
from bastion.core.i18n import Language, t
from bastion.tracing import handover
from bastion.tracing import service as tracing_service
from bastion.tracing.schemas import ExposureIn

#: The columns of an exposures file (the batch API's fields).
CSV_COLUMNS = (
    "case",
    "contact_id",
    "person_id",
    "id_number",
    "exposed_on",
    "setting",
    "place",
    "region_code",
)
MAX_ROWS = 10_000


def parse_csv(data: bytes) -> tuple[list[ExposureIn], list[int], list[FieldProblem]]:
    """The rows of an exposures file (header line first; row 1 is the first data line): the
    good ones as :class:`ExposureIn` with their row numbers, the unreadable ones as problems."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput.one("file", "web.cs_csv_encoding") from None
    reader = csv.DictReader(io.StringIO(text))
    header = {(h or "").strip() for h in reader.fieldnames or ()}
    missing = [c for c in ("exposed_on", "setting") if c not in header]
    if missing or not header & {"person_id", "id_number"}:
        raise InvalidInput.one("file", "web.cs_csv_columns", columns=", ".join(CSV_COLUMNS))
    items: list[ExposureIn] = []
    rows: list[int] = []
    problems: list[FieldProblem] = []
    for n, raw in enumerate(reader, start=1):
        if n > MAX_ROWS:
            raise InvalidInput.one("file", "field.out_of_range", min=1, max=MAX_ROWS)
        values = {
            (k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)
        }
        fields = {k: values[k] for k in CSV_COLUMNS if values.get(k)}
        try:
            items.append(ExposureIn.model_validate(fields))
        except ValidationError as err:
            first = err.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "row"
            problems.append(FieldProblem(name, "web.cs_csv_value", {"value": name}, n))
            continue
        rows.append(n)
    return items, rows, problems


def record(
    session: Session, principal: Principal, items: list[ExposureIn]
) -> tracing_service.ExposureReport:
    """Record exposures and hand their new contacts to isolation, as the API does."""
    report = tracing_service.record_exposures(db_session=session, principal=principal, items=items)
    handover.hand_over(session, case_ids=[], contact_ids=report.close_ids + report.secondary_ids)
    return report


def report_lines(
    report: tracing_service.ExposureReport,
    rows: Sequence[int],
    unreadable: Sequence[FieldProblem],
    lang: Language,
) -> list[dict[str, Any]]:
    """Each refused row by its line in the file (the service numbers the rows it was sent)."""
    lines = [(p.row or 0, p) for p in unreadable]
    for p in report.problems:
        index = (p.row or 1) - 1
        lines.append((rows[index] if 0 <= index < len(rows) else (p.row or 0), p))
    return [
        {"row": n, "field": p.field, "reason": t(p.reason, lang, **p.params)}
        for n, p in sorted(lines, key=lambda x: x[0])
    ]
