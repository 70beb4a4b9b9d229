"""Testing vocabularies."""

from __future__ import annotations

from enum import StrEnum


class RoundStatus(StrEnum):
    planned = "planned"
    open = "open"
    closed = "closed"


class TubeKind(StrEnum):
    pooled = "pooled"  # 混采 k-in-1
    single = "single"  # 单采
    household = "household"  # one tube per household
    retest = "retest"  # single-tube retest after a positive pool or antigen


class Result(StrEnum):
    negative = "negative"
    positive = "positive"
    invalid = "invalid"


class BoxState(StrEnum):
    packed = "packed"
    in_transit = "in_transit"
    received = "received"


class RetestState(StrEnum):
    pending = "pending"
    sampled = "sampled"
    negative = "negative"
    positive = "positive"


class RetestReason(StrEnum):
    positive_pool = "positive_pool"
    antigen = "antigen"
    invalid_result = "invalid_result"
