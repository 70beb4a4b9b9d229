"""Testing schemas."""

from __future__ import annotations

from datetime import datetime, time

from pydantic import BaseModel, ConfigDict, Field

from bastion.core.text import Line


class RoundCreate(BaseModel):
    code: Line
    name: Line
    region_code: Line
    starts_at: datetime
    deadline_at: datetime | None = None
    pool_policy: dict[Line, int | Line] = Field(default_factory=dict)
    exemptions: list[dict[str, object]] = Field(default_factory=list)


class RoundRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    region_code: str
    starts_at: datetime
    deadline_at: datetime
    status: str


class SiteCreate(BaseModel):
    code: Line
    name: Line
    region_code: Line
    address: Line = ""
    teams: int = 1
    opens_at: time = time(7, 0)
    closes_at: time = time(22, 0)
    capacity_per_hour: int
    grids: list[Line] = Field(default_factory=list)


class SiteUpdate(BaseModel):
    """What a site's PATCH may change; a field left out stays as it is. ``grids`` replaces the
    grids served (an empty list: none)."""

    name: Line | None = None
    address: Line | None = None
    teams: int | None = None
    opens_at: time | None = None
    closes_at: time | None = None
    capacity_per_hour: int | None = None
    grids: list[Line] | None = Field(default=None, max_length=1000)
    active: bool | None = None


class SiteRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    region_code: str
    address: str = ""
    teams: int
    opens_at: time
    closes_at: time
    capacity_per_hour: int
    active: bool = True
    #: The grids the site serves (filled by ``bastion.testing.sites.to_read``).
    grids: list[str] = Field(default_factory=list)


class SitePage(BaseModel):
    items: list[SiteRead]
    total: int
    offset: int
    limit: int


class RecordersIn(BaseModel):
    """The whole set of users bound to a site (replaces the one before; empty: none)."""

    usernames: list[Line] = Field(max_length=500)


class RecorderRead(BaseModel):
    username: str
    display_name: str
    role: str
    region_code: str
    active: bool


class LabCreate(BaseModel):
    code: Line
    name: Line
    region_code: Line
    daily_capacity: int


class LabUpdate(BaseModel):
    """What a lab's PATCH may change; a field left out stays as it is."""

    name: Line | None = None
    daily_capacity: int | None = None
    active: bool | None = None


class LabRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    region_code: str
    daily_capacity: int
    active: bool = True


class LabPage(BaseModel):
    items: list[LabRead]
    total: int
    offset: int
    limit: int


class ScanIn(BaseModel):
    """One scan: a person bound to a tube, at the time the scanner recorded it."""

    tube: str
    person: str
    scanned_at: datetime


class TubeGroupIn(BaseModel):
    """One saved group as a scanner sends it: a tube and its members in order."""

    tube: str
    kind: str = "pooled"
    capacity: int | None = None
    people: list[str]
    scanned_at: datetime


class ScanBatchIn(BaseModel):
    key: str = Field(min_length=8, max_length=80)
    round: str
    site: str
    groups: list[TubeGroupIn] = Field(max_length=1000)


class ScanProblem(BaseModel):
    row: int | None
    field: str
    reason: str
    code: str


class ScanReport(BaseModel):
    key: str
    accepted: int
    unchanged: int
    refused: int
    flagged: int
    replayed: bool
    problems: list[ScanProblem]
