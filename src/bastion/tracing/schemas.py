"""Tracing schemas: what the API and CLI send to the services."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from bastion.core.text import Line, Text


class CaseCreate(BaseModel):
    """A case reported by a hospital or fever clinic (or recorded by an investigator)."""

    person_id: int = Field(ge=1, le=2**63 - 1)
    classification: Line
    clinical_type: Line | None = None
    origin: Line = "local"
    found_by: Line = "hospital"
    onset_on: date | None = None
    sampled_on: date | None = None
    #: Default: today.
    reported_on: date | None = None
    #: The city reporting it, when not the residence's (a hospital in another city).
    reporting_city: Line | None = Field(default=None, max_length=6)
    note: Text = Field(default="", max_length=2000)


class Reclassify(BaseModel):
    clinical_type: Line
    #: Default: today.
    day: date | None = None


class CaseClose(BaseModel):
    #: discharge (confirmed), release (asymptomatic) or death.
    action: Line
    day: date | None = None


class ExposureIn(BaseModel):
    """One exposure: a case (by id or code) or a close contact (by id) met a person, named by
    their registry id or, as investigators usually know them, their ID number (one of the two;
    the lookup by ID number is audited)."""

    case: Line | None = Field(default=None, max_length=24)
    contact_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    person_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    id_number: Line | None = Field(default=None, max_length=32)
    region_code: Line | None = Field(default=None, max_length=15)
    place: Text = Field(default="", max_length=500)
    exposed_on: date
    setting: Line


class ExposureBatch(BaseModel):
    items: list[ExposureIn] = Field(max_length=10_000)


class ExpansionRequest(BaseModel):
    cases: list[Line] = Field(min_length=1, max_length=10_000)
