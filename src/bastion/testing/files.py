"""Streaming readers for machine-made testing files (scans, results): CSV in UTF-8 or GBK.

Unlike registry uploads these can hold millions of rows, so they are read line by line from a
file handle and never loaded whole. Row numbers count the header as row 1.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from typing import IO

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
