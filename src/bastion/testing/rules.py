"""Pure rules for tubes, results and labs: state transitions, result checks, lab ratings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

#: Tube barcodes: 8–24 letters, digits or dashes (what sampling-kit printers emit).
BARCODE_RE: Final = re.compile(r"^[A-Z0-9][A-Z0-9\-]{6,22}[A-Z0-9]$")

TUBE_STATES: Final = ("open", "sealed", "boxed", "in_transit", "received", "resulted")
_TUBE_NEXT: Final = {
    "open": {"sealed", "boxed"},
    "sealed": {"boxed"},
    "boxed": {"in_transit", "received"},
    "in_transit": {"received"},
    "received": {"resulted"},
    "resulted": set(),
}
RESULTS: Final = ("negative", "positive", "invalid")


def normalise_barcode(raw: str) -> str:
    return raw.strip().upper()


def is_valid_barcode(barcode: str) -> bool:
    return bool(BARCODE_RE.match(barcode))


def can_move(state: str, to: str) -> bool:
    """Whether a tube in ``state`` may move to ``to`` (states only move forward)."""
    return to in _TUBE_NEXT.get(state, set())


def ct_value_ok(value: float | None) -> bool:
    """Ct values are cycle counts of a PCR run: 0 < Ct ≤ 45, or absent."""
    return value is None or 0.0 < value <= 45.0


@dataclass(frozen=True)
class ResultCheck:
    ok: bool
    field: str = ""
    reason: str = ""


def check_result_times(
    *,
    sampled_at: datetime | None,
    received_at: datetime | None,
    tested_at: datetime,
    uploaded_at: datetime,
) -> ResultCheck:
    """Times must run sample → receipt → test → upload; a result dated before its tube was
    received (or sampled) is how results "reported before testing" were exposed."""
    if received_at is None:
        return ResultCheck(False, "received_at", "result.not_received")
    if sampled_at is not None and received_at < sampled_at:
        return ResultCheck(False, "received_at", "result.received_before_sampling")
    if tested_at < received_at:
        return ResultCheck(False, "tested_at", "result.tested_before_receipt")
    if tested_at > uploaded_at:
        return ResultCheck(False, "tested_at", "result.in_the_future")
    return ResultCheck(True)


#: Below these counts a day's rate says little (one reversed pool is a 100 % reversal rate):
#: the rate then plays no part in the rating.
MIN_POOLS_FOR_REVERSAL = 2
MIN_TUBES_FOR_LATENESS = 5


def lab_rating(
    *,
    reversal_rate: float,
    overload: float,
    late_share: float,
    pools_decided: int | None = None,
    tubes_received: int | None = None,
) -> str:
    """Green / yellow / red, from the share of positive pools whose members all retested
    negative (false positives), load against capacity, and the share of late results. Given the
    counts behind the rates, a rate resting on fewer than :data:`MIN_POOLS_FOR_REVERSAL` decided
    pools (or :data:`MIN_TUBES_FOR_LATENESS` tubes) is left out."""
    if pools_decided is not None and pools_decided < MIN_POOLS_FOR_REVERSAL:
        reversal_rate = 0.0
    if tubes_received is not None and tubes_received < MIN_TUBES_FOR_LATENESS:
        late_share = 0.0
    if reversal_rate > 0.30 or overload > 1.2 or late_share > 0.20:
        return "red"
    if reversal_rate > 0.10 or overload > 1.0 or late_share > 0.05:
        return "yellow"
    return "green"
