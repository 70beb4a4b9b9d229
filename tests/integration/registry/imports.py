"""Build registry import files (CSV in any encoding, XLSX) for tests."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from openpyxl import Workbook

COLUMNS = [
    "name",
    "id_number",
    "sex",
    "birth_date",
    "phone",
    "region_code",
    "address",
    "household",
    "special_groups",
]
#: The same columns as a county's spreadsheet names them.
CHINESE_COLUMNS = [
    "姓名",
    "身份证号",
    "性别",
    "出生日期",
    "手机号",
    "区划代码",
    "住址",
    "户号",
    "特殊人群",
]


def row(**values: Any) -> dict[str, Any]:
    return values


def csv_bytes(
    rows: Sequence[dict[str, Any]],
    *,
    columns: Sequence[str] = COLUMNS,
    header: Sequence[str] | None = None,
    encoding: str = "utf-8",
) -> bytes:
    """A CSV file: ``header`` (default: ``columns``) then one line per row, cells quoted."""
    lines = [",".join(header or columns)]
    for values in rows:
        cells = [str(values.get(c, "") or "") for c in columns]
        lines.append(",".join('"' + c.replace('"', '""') + '"' for c in cells))
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(
    rows: Sequence[dict[str, Any]],
    *,
    columns: Sequence[str] = COLUMNS,
    header: Sequence[str] | None = None,
) -> bytes:
    """An XLSX workbook written by openpyxl, cells keeping their Python types (numbers, dates)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(header or columns))
    for values in rows:
        sheet.append([values.get(c) for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
