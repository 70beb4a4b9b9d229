"""Registry schemas. Reads are masked unless the caller asked to unmask and may."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from bastion.core.text import Line


class PersonCreate(BaseModel):
    #: The person's own fields are judged by ``registry.rules`` (control characters there too,
    #: naming the field); the region code is looked up in SQL first, so refused here.
    name: str
    id_type: str = "resident_id"
    id_number: str
    sex: str | None = None
    birth_date: str | None = None
    phone: str | None = None
    region_code: Line
    address: str = ""
    household: str | None = None
    special_groups: list[str] = Field(default_factory=list)


class PersonUpdate(BaseModel):
    """Fields to change; the ID number is the person's identity and is not changed here."""

    name: str | None = None
    phone: str | None = None
    region_code: Line | None = None
    address: str | None = None
    household: str | None = None
    special_groups: list[str] | None = None


class PersonRead(BaseModel):
    id: int
    name: str
    id_type: str
    id_number: str
    masked: bool
    sex: str
    birth_date: date | None
    age: int
    phone: str | None
    region_code: str
    household_id: int | None
    address: str
    special_groups: list[str]


class PersonPage(BaseModel):
    items: list[PersonRead]
    total: int
    offset: int
    limit: int


class RowProblem(BaseModel):
    row: int | None
    field: str
    reason: str
    code: str


class ImportReport(BaseModel):
    batch_id: int | None
    rows_total: int
    created: int
    unchanged: int
    refused: int
    problems: list[RowProblem]
