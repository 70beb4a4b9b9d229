"""Isolation schemas. Person fields are masked unless the caller asked to unmask and may."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, Field

from bastion.core.text import Line, Text


class SiteCreate(BaseModel):
    code: Line
    name: Line
    kind: Line
    region_code: Line
    address: Line = ""
    rooms: int
    beds: int


class BasicRead(BaseModel):
    item: str
    status: str
    note: str
    updated_at: datetime | None


class BasicUpdate(BaseModel):
    item: Line
    status: Line
    note: Text = ""


class SiteRead(BaseModel):
    id: int
    code: str
    name: str
    kind: str
    region_code: str
    address: str
    rooms: int
    beds: int
    occupied: int
    free: int
    basics: list[BasicRead]


class TestRead(BaseModel):
    day_no: int
    due_on: date
    result: str | None
    tested_on: date | None
    tube_barcode: str | None


class TestTaskRead(BaseModel):
    """One isolation test task of a day: a placement's test day due then."""

    placement_id: int
    person_id: int
    person_name: str
    masked: bool
    region_code: str
    setting: str
    site_code: str | None
    day_no: int
    due_on: date
    result: str | None


class TestRecord(BaseModel):
    day_no: int
    result: Line | None = None
    tested_on: date | None = None
    tube_barcode: Line | None = None


class TestBatchItem(BaseModel):
    """One row of a day's test results (``POST /isolation/placements/tests``)."""

    placement_id: int = Field(ge=1, le=2**63 - 1)
    day_no: int = Field(ge=1, le=32_767)
    result: Line | None = None
    tested_on: date | None = None
    tube_barcode: Line | None = Field(default=None, max_length=64)


class TestBatchIn(BaseModel):
    items: list[TestBatchItem] = Field(max_length=100_000)


class RowProblemRead(BaseModel):
    row: int | None = None
    field: str
    reason: str
    code: str


class TestBatchRead(BaseModel):
    rows: int
    recorded: int
    unchanged: int
    refused: int
    problems: list[RowProblemRead]


class ReleaseBatchIn(BaseModel):
    """Release these placements (``POST /isolation/releases``)."""

    placement_ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(max_length=100_000)
    on: date | None = None
    override_reason: Text | None = None


class ReleaseDueIn(BaseModel):
    """Release whoever is due and passes (``POST /isolation/releases/due``)."""

    day: date | None = None
    region: Line | None = None
    reason: Line | None = None


class ReleaseRefusedRead(BaseModel):
    row: int
    placement_id: int
    problems: list[RowProblemRead]


class ReleaseBatchRead(BaseModel):
    rows: int
    released: list[int]
    overridden: int
    monitoring: int
    transfers: int
    contacts: int
    refused_count: int
    refused: list[ReleaseRefusedRead]


class PlacementRead(BaseModel):
    id: int
    person_id: int
    person_name: str
    person_id_number: str
    masked: bool
    region_code: str
    setting: str
    reason: str
    source_type: str
    source_id: int
    profile: str
    #: Set when the profile in force today differs: the placement keeps its own.
    profile_note: str | None = None
    status: str
    starts_on: date
    planned_end_on: date
    released_on: date | None
    site_code: str | None
    follows_id: int | None
    override_reason: str | None
    tests: list[TestRead] = Field(default_factory=list)
    #: What still stands between the placement and its release today (message texts).
    release_blockers: list[str] = Field(default_factory=list)


class PlacementPage(BaseModel):
    items: list[PlacementRead]
    total: int
    offset: int
    limit: int


class ReleaseIn(BaseModel):
    on: date | None = None
    override_reason: Text | None = None


class ReleaseRead(BaseModel):
    placement: PlacementRead
    monitoring_id: int | None
    transfer_id: int | None


class TransferTaskRead(BaseModel):
    id: int
    person_id: int
    person_name: str
    masked: bool
    placement_id: int
    region_code: str
    kind: str
    destination: str
    site_code: str | None
    batch_code: str | None
    status: str
    special_needs: str
    failure_reason: str | None
    created_on: date
    #: 日清日结: still open and from before today.
    red: bool


class BatchCreate(BaseModel):
    code: Line
    vehicle: Line
    escort: Line
    #: The destination site's code (None: a batch taking released people home).
    site: Line | None = None
    tasks: list[int] = Field(min_length=1, max_length=500)
    #: 一人一策: special needs per task id, noted on the task.
    special_needs: dict[int, Text] = Field(default_factory=dict)


class BatchRead(BaseModel):
    id: int
    code: str
    region_code: str
    site_code: str | None
    vehicle: str
    escort: str
    cross_region: bool
    status: str
    failure_reason: str | None
    people: int
    created_at: datetime
    dispatched_at: datetime | None
    finished_at: datetime | None


class FailIn(BaseModel):
    reason: Text


class LiftCondition(BaseModel):
    key: str
    ok: bool
    detail: str


class LiftCheckRead(BaseModel):
    zone_id: int
    region_code: str
    kind: str
    profile: str
    on: date
    ready: bool
    conditions: list[LiftCondition]
    failing: list[str]


class LiftIn(BaseModel):
    ends_on: date
    override_reason: Text | None = None
