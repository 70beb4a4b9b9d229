"""Streaming readers for machine-made testing files (scans, results): CSV in UTF-8 or GBK, and
Parquet.

Unlike registry uploads these can hold millions of rows, so they are read line by line (CSV) or
row group by row group (Parquet) from a file handle and never loaded whole. CSV row numbers
count the header as row 1; Parquet rows are numbered from 1.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from typing import IO, Any

from bastion.core.errors import FieldProblem, InvalidInput


def _lines(binary: IO[bytes]) -> Iterator[str]:
    """The file's lines as text, decoded as UTF-8 (with or without BOM) or else GB18030 (what
    Chinese spreadsheets save as "CSV"), judged from the first 64 KiB. The caller keeps
    ownership of ``binary``."""
    head = binary.read(65536)
    binary.seek(0)
    encoding = "utf-8-sig"
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        # A multi-byte character cut at the end of the sample is not an encoding error.
        if err.start < len(head) - 4:
            try:
                head.decode("gb18030")
            except UnicodeDecodeError:
                raise InvalidInput.one("file", "import.bad_encoding") from None
            encoding = "gb18030"
    if b"\x00" in head:
        raise InvalidInput.one("file", "import.bad_file", detail="NUL byte")
    return codecs.iterdecode(binary, encoding)


def read_csv_rows(
    binary: IO[bytes], *, required: list[str], known: list[str]
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(row_number, {column: text})`` for each non-empty data row. Refuses (before the
    first row) a file without a header, with a missing required column or an unknown one."""
    reader = csv.reader(_lines(binary))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise InvalidInput.one("file", "import.empty") from None
    except (csv.Error, UnicodeDecodeError) as err:
        raise InvalidInput.one("file", "import.bad_file", detail=str(err)[:80]) from None
    problems = [
        FieldProblem(c, "field.missing_column", {"value": c}, 1)
        for c in required
        if c not in header
    ]
    problems += [
        FieldProblem(c, "field.unknown_column", {"value": c}, 1)
        for c in header
        if c and c not in known
    ]
    if problems:
        raise InvalidInput(problems=problems)

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        try:
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                yield (
                    reader.line_num,
                    {
                        col: (values[i].strip() if i < len(values) else "")
                        for i, col in enumerate(header)
                    },
                )
        except (csv.Error, UnicodeDecodeError) as err:
            raise InvalidInput(
                problems=[
                    FieldProblem(
                        "file", "import.bad_file", {"detail": str(err)[:80]}, reader.line_num
                    )
                ]
            ) from None

    return rows()


PARQUET_MAGIC = b"PAR1"


def is_parquet(binary: IO[bytes]) -> bool:
    """Whether the file starts like Parquet (the caller keeps its position at 0)."""
    head = binary.read(4)
    binary.seek(0)
    return head == PARQUET_MAGIC


#: What a Parquet column may hold, by the kind of value a scan field needs.
TEXT, MOMENT, NUMBER = "text", "time", "integer"


def _arrow_kind(arrow_type: Any) -> str | None:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return TEXT
    if pa.types.is_timestamp(arrow_type):
        return MOMENT
    if pa.types.is_integer(arrow_type):
        return NUMBER
    if pa.types.is_null(arrow_type):
        return "null"
    return None


def read_parquet_rows(
    binary: IO[bytes],
    *,
    required: list[str],
    known: dict[str, tuple[str, ...]],
    batch_rows: int = 10_000,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(row_number, {column: value})`` for each row of a Parquet file, one row group's
    batch at a time (memory stays flat), rows numbered from 1. ``known`` maps each column to
    the kinds of Arrow type it may have (text, time, integer); text values come back stripped,
    timestamps as datetimes (aware when the column has a zone), nulls as None. Refuses (before
    the first row) a file that is not Parquet, lacks a required column, has an unknown one or a
    column of the wrong type."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(binary)
        schema = parquet.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as err:
        raise InvalidInput.one("file", "import.bad_file", detail=str(err)[:80]) from None
    names = [name.strip().lower() for name in schema.names]
    problems = [
        FieldProblem(c, "field.missing_column", {"value": c}, 1) for c in required if c not in names
    ]
    problems += [
        FieldProblem(c, "field.unknown_column", {"value": c}, 1) for c in names if c not in known
    ]
    for name, field in zip(names, schema, strict=True):
        kind = _arrow_kind(field.type)
        if name in known and kind != "null" and kind not in known[name]:
            expected = " or ".join(known[name])
            problems.append(
                FieldProblem(
                    name,
                    "import.bad_file",
                    {"detail": f"column '{name}' holds {field.type}, expected {expected}"},
                    1,
                )
            )
    if problems:
        raise InvalidInput(problems=problems)

    def rows() -> Iterator[tuple[int, dict[str, Any]]]:
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=batch_rows):
                columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                for values in zip(*columns, strict=True):
                    number += 1
                    yield (
                        number,
                        {
                            col: value.strip() if isinstance(value, str) else value
                            for col, value in zip(names, values, strict=True)
                        },
                    )
        except (pa.ArrowException, OSError, ValueError) as err:
            raise InvalidInput(
                problems=[
                    FieldProblem("file", "import.bad_file", {"detail": str(err)[:80]}, number + 1)
                ]
            ) from None

    return rows()
