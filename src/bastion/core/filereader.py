"""Read tabular uploads (CSV in UTF-8 or GBK, XLSX) into header-normalised rows.

Shared by every import in the project: it refuses what it cannot read with a clear reason and
numbers rows as a spreadsheet user sees them (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from bastion.core.errors import FieldProblem, InvalidInput, TooLarge


@dataclass(frozen=True)
class Table:
    """Rows of an upload: ``(row_number, {column: value})``, columns already normalised.

    A row the reader cannot map onto the header (more non-empty cells than columns: usually an
    unquoted comma) is not yielded but reported in ``problems``, filled while ``rows`` is read.
    """

    columns: list[str]
    rows: Iterator[tuple[int, dict[str, Any]]]
    problems: list[FieldProblem] = field(default_factory=list)


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput.one("file", "import.bad_encoding")


def _normalise_header(raw: object, aliases: Mapping[str, str]) -> str:
    text = str(raw or "").strip().lstrip("\ufeff")
    return aliases.get(text, aliases.get(text.lower(), text.lower()))


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.date() if value.time() == datetime.min.time() else value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, date):
        return value
    return "" if value is None else str(value)


def read_table(
    filename: str,
    data: bytes,
    *,
    aliases: Mapping[str, str],
    required: list[str],
    known: list[str],
    max_bytes: int,
    max_rows: int,
) -> Table:
    """Open ``data`` as CSV or XLSX. Refuses an oversized, unreadable or wrongly typed file and a
    header that lacks a required column, names an unknown one or names one twice."""
    if len(data) > max_bytes:
        raise TooLarge("error.too_large")
    kind = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if data[:2] == b"PK" or kind in ("xlsx", "xlsm"):
        header, body = _xlsx_rows(data)
    elif kind in ("csv", "txt", ""):
        header, body = _csv_rows(data)
    else:
        raise InvalidInput.one("file", "import.unsupported_type", value=kind)
    columns = [_normalise_header(h, aliases) for h in header]
    problems = [
        FieldProblem(c, "field.missing_column", {"value": c}, 1)
        for c in required
        if c not in columns
    ]
    problems += [
        FieldProblem(c, "field.unknown_column", {"value": c}, 1)
        for c in columns
        if c and c not in known
    ]
    # Two columns mapping to one field (姓名 and name): one of them would silently win.
    seen: set[str] = set()
    for c in columns:
        if c and c in seen:
            problems.append(FieldProblem(c, "field.duplicate_column", {"value": c}, 1))
        seen.add(c)
    if problems:
        raise InvalidInput(problems=problems)
    width = len(columns)
    row_problems: list[FieldProblem] = []

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        for count, (number, values) in enumerate(body, start=1):
            if count > max_rows:
                raise InvalidInput(
                    problems=[
                        FieldProblem("file", "import.too_many_rows", {"max": max_rows}, number)
                    ]
                )
            if not any(str(v).strip() for v in values if v is not None):
                continue
            extra = [v for v in values[width:] if v is not None and str(v).strip()]
            if extra:
                row_problems.append(
                    FieldProblem(
                        "row",
                        "import.extra_cells",
                        {"cells": width + len(extra), "columns": width},
                        number,
                    )
                )
                continue
            yield (
                number,
                {
                    col: _cell(values[i]) if i < len(values) else ""
                    for i, col in enumerate(columns)
                    if col
                },
            )

    return Table(columns=columns, rows=rows(), problems=row_problems)


def _csv_rows(data: bytes) -> tuple[list[str], Iterator[tuple[int, list[Any]]]]:
    text = _decode(data)
    if "\x00" in text:
        raise InvalidInput.one("file", "import.bad_file", detail="NUL byte")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput.one("file", "import.empty") from None
    except csv.Error as err:
        raise InvalidInput.one("file", "import.bad_file", detail=str(err)) from None

    def body() -> Iterator[tuple[int, list[Any]]]:
        # Rows are numbered by record, as a spreadsheet shows them, not by physical line (a
        # quoted cell may hold a line break).
        number = 1
        try:
            for values in reader:
                number += 1
                yield number, list(values)
        except csv.Error as err:
            raise InvalidInput(
                problems=[FieldProblem("file", "import.bad_file", {"detail": str(err)}, number + 1)]
            ) from None

    return header, body()


def _xlsx_rows(data: bytes) -> tuple[list[str], Iterator[tuple[int, list[Any]]]]:
    from python_calamine import CalamineWorkbook

    try:
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise ValueError("not an XLSX (zip) file")
        book = CalamineWorkbook.from_filelike(io.BytesIO(data))
        sheet = book.get_sheet_by_index(0)
        all_rows = sheet.to_python(skip_empty_area=False)
    except Exception as err:  # noqa: BLE001 - calamine raises many kinds; all mean "unreadable"
        raise InvalidInput.one("file", "import.bad_file", detail=type(err).__name__) from None
    if not all_rows:
        raise InvalidInput.one("file", "import.empty")
    header = [str(h) for h in all_rows[0]]

    def body() -> Iterator[tuple[int, list[Any]]]:
        for index, values in enumerate(all_rows[1:], start=2):
            yield index, list(values)

    return header, body()
