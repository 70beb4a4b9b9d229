"""Row-alone checks of a result row, and the upload's row and report types."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Principal
from bastion.core.errors import FieldProblem
from bastion.testing import rules
from bastion.testing.models import Lab

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
class Checked:
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


class Labs:
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


def check_row(labs: Labs, raw: RawResult, now: datetime) -> Checked | FieldProblem:
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
    return Checked(raw.row, lab_id, barcode, result, ct_orf1ab, ct_n, received_at, tested_at)
