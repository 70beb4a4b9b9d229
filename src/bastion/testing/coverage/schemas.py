"""What the coverage views return."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class CoverageFigures(BaseModel):
    """The figures of one region (or a sum of regions) in one round."""

    required: int = 0
    sampled: int = 0
    sampled_required: int = 0
    on_time: int = 0
    resulted: int = 0
    positive_people: int = 0
    positive_tubes: int = 0
    #: Required people not sampled yet (应检未检).
    not_tested: int = 0
    #: Share of the required sampled so far; None when nobody is required.
    coverage: float | None = None
    #: Share of the required sampled by the deadline.
    on_time_share: float | None = None
    #: Share of the sampled whose result is out.
    results_share: float | None = None


class CoverageRow(CoverageFigures):
    code: str
    name_zh: str
    name_en: str
    level: str
    #: People registered at this region itself, not at one of its children.
    unassigned: bool = False
    #: Past the deadline with required people still not sampled.
    late: bool = False


class CoverageView(BaseModel):
    round_id: int
    round_code: str
    round_name: str
    round_status: str
    deadline_at: datetime
    as_of: datetime
    #: The asked region with the totals of everything below it.
    region: CoverageRow
    #: Its children (every child, figures or not), then people registered at the region itself.
    rows: list[CoverageRow]


class RoundStatus(BaseModel):
    round_id: int
    round_code: str
    round_name: str
    region_code: str
    round_status: str
    starts_at: datetime
    deadline_at: datetime
    as_of: datetime
    totals: CoverageRow
    cities: list[CoverageRow]


class Screened(BaseModel):
    region_code: str
    day: date
    screened: int
    cumulative: int
