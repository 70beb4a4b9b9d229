"""What every box step checks in what it is sent: box codes, barcodes, counts, the time of a
hand-over, and a region outside the user's subtree."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from bastion.core import clock
from bastion.core.errors import (
    FieldProblem,
    Forbidden,
    InvalidInput,
)
from bastion.testing import rules

#: Box labels: 4–32 letters, digits or dashes.
BOX_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9\-]{2,30}[A-Z0-9]$")
#: Most tubes one box (or one hand-over scan) may list.
MAX_TUBES_PER_BOX = 2_000
#: How far ahead of the server's clock a scanner's time may run.
CLOCK_SKEW = timedelta(minutes=10)

PACKED, PICKED_UP, RECEIVED = "packed", "picked_up", "received"


def safe_ref(value: str, max_len: int = 64) -> str | None:
    """A reference (code) safe to look up, or None when it cannot name anything (control
    characters, non-ASCII, too long): such values are unknown without asking the database."""
    text = value.strip()
    if not text or len(text) > max_len or not text.isascii() or not text.isprintable():
        return None
    return text


def read_barcodes(
    raw: Sequence[str], where: str, problems: list[FieldProblem]
) -> list[tuple[int, str]]:
    """(index, barcode) for each well-formed barcode in scan order, double beeps dropped; a
    malformed one becomes a problem on ``where.index``."""
    out: list[tuple[int, str]] = []
    seen: set[str] = set()
    for i, value in enumerate(raw):
        barcode = rules.normalise_barcode(str(value))
        if not rules.is_valid_barcode(barcode):
            problems.append(
                FieldProblem(f"{where}.{i}", "scan.bad_barcode", {"value": barcode[:40]})
            )
        elif barcode not in seen:
            seen.add(barcode)
            out.append((i, barcode))
    return out


def normal_box_code(code: str) -> str | None:
    text = code.strip().upper()
    return text if BOX_CODE_RE.match(text) else None


def hand_over_time(at: datetime | None, not_before: datetime | None) -> datetime:
    """The time of a hand-over: ``at`` as the scanner recorded it (offline scans keep their
    time) or now. Refuses a time without a zone, in the future, or before the box's previous
    hand-over."""
    now = clock.now()
    if at is None:
        return now if not_before is None else max(now, not_before)
    if at.tzinfo is None:
        raise InvalidInput.one("at", "field.needs_timezone")
    if at > now + CLOCK_SKEW:
        raise InvalidInput.one("at", "box.time_in_future")
    if not_before is not None and at < not_before:
        raise InvalidInput.one("at", "box.time_before_previous")
    return at


def _count(
    tubes_counted: int | None, scanned: list[tuple[int, str]] | None, problems: list[FieldProblem]
) -> int:
    if tubes_counted is None:
        if scanned is None:
            problems.append(FieldProblem("tubes_counted", "box.count_required"))
            return 0
        return len(scanned)
    if not 0 <= tubes_counted <= MAX_TUBES_PER_BOX:
        problems.append(
            FieldProblem(
                "tubes_counted", "field.out_of_range", {"min": 0, "max": MAX_TUBES_PER_BOX}
            )
        )
    return tubes_counted


def hand_over_scan(
    tubes_counted: int | None, tubes: Sequence[str] | None, problems: list[FieldProblem]
) -> tuple[list[tuple[int, str]] | None, int]:
    """What a hand-over scan sent: the barcodes scanned in order (None: it only counted) and the
    count (by default, the number of barcodes); each bad value becomes a problem."""
    scanned = None if tubes is None else read_barcodes(tubes[:MAX_TUBES_PER_BOX], "tubes", problems)
    counted = _count(tubes_counted, scanned, problems)
    if tubes is not None and len(tubes) > MAX_TUBES_PER_BOX:
        problems.append(FieldProblem("tubes", "box.too_many_tubes", {"max": MAX_TUBES_PER_BOX}))
    return scanned, counted


def forbidden_region(field_name: str, region: str) -> Forbidden:
    return Forbidden(
        "error.region_outside",
        region=region,
        problems=[FieldProblem(field_name, "error.region_outside", {"region": region})],
    )
