"""Tracing schemas: what the API and CLI send to the services."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class CaseCreate(BaseModel):
    """A case reported by a hospital or fever clinic (or recorded by an investigator)."""

    person_id: int = Field(ge=1, le=2**63 - 1)
    classification: str
    clinical_type: str | None = None
    origin: str = "local"
    found_by: str = "hospital"
    onset_on: date | None = None
    sampled_on: date | None = None
    #: Default: today.
    reported_on: date | None = None
    #: The city reporting it, when not the residence's (a hospital in another city).
    reporting_city: str | None = Field(default=None, max_length=6)
    note: str = Field(default="", max_length=2000)


class Reclassify(BaseModel):
    clinical_type: str
    #: Default: today.
    day: date | None = None


class CaseClose(BaseModel):
    #: discharge (confirmed), release (asymptomatic) or death.
    action: str
    day: date | None = None


class ExposureIn(BaseModel):
    """One exposure: a case (by id or code) or a close contact (by id) met a person, named by
    their registry id or, as investigators usually know them, their ID number (one of the two;
    the lookup by ID number is audited)."""

    case: str | None = Field(default=None, max_length=24)
    contact_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    person_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    id_number: str | None = Field(default=None, max_length=32)
    region_code: str | None = Field(default=None, max_length=15)
    place: str = Field(default="", max_length=500)
    exposed_on: date
    setting: str


class ExposureBatch(BaseModel):
    items: list[ExposureIn] = Field(max_length=10_000)


class ExpansionRequest(BaseModel):
    cases: list[str] = Field(min_length=1, max_length=10_000)
