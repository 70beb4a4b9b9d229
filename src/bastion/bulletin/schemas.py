"""What the bulletin's figures are made of: one model per section, and the whole day."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

#: Clinical types in the order the official releases list them.
CLINICAL_TYPES = ("mild", "ordinary", "severe", "critical")


class CityCount(BaseModel):
    """One city's count in a list that the text prints largest first."""

    code: str
    name_zh: str
    name_en: str
    count: int


class CasesFigures(BaseModel):
    """New local cases of the day (see docs/bulletin.md for the counting rule)."""

    confirmed: int = 0
    #: Clinical type → new confirmed of that type (only types with a count).
    by_type: dict[str, int] = Field(default_factory=dict)
    confirmed_by_city: list[CityCount] = Field(default_factory=list)
    #: Of ``confirmed``: asymptomatic infections counted earlier, reclassified this day.
    reclassified: int = 0
    asymptomatic: int = 0
    asymptomatic_by_city: list[CityCount] = Field(default_factory=list)


class RecoveriesFigures(BaseModel):
    """Discharges of confirmed cases and releases of asymptomatic ones from medical observation."""

    day: int = 0
    discharged: int = 0
    released: int = 0
    by_city: list[CityCount] = Field(default_factory=list)
    cumulative: int = 0


class ContactsFigures(BaseModel):
    """Close and secondary close contacts traced so far, and of them released, at the day's end."""

    close: int = 0
    close_released: int = 0
    secondary: int = 0
    secondary_released: int = 0


class IsolationFigures(BaseModel):
    """People under isolation control at the end of the day."""

    total: int = 0
    centralised: int = 0
    home: int = 0


class ScreeningFigures(BaseModel):
    """Nucleic-acid screening: person-scans that day and person-times in all."""

    screened: int = 0
    cumulative: int = 0


class RoundProgress(BaseModel):
    code: str
    name: str
    required: int
    sampled: int
    sampled_required: int
    resulted: int
    positive_people: int
    #: Share of the required sampled so far; None when nobody is required.
    coverage: float | None


class RoundsFigures(BaseModel):
    """Rounds running on the day, within the bulletin's region."""

    rounds: list[RoundProgress] = Field(default_factory=list)


class CountsFigures(BaseModel):
    """A section another domain provides as plain named counts (appeals, supplies)."""

    counts: dict[str, int] = Field(default_factory=dict)


class Figures(BaseModel):
    """A day's figures for a region: the sections whose domains exist, each computed from the
    record. A section whose domain is missing is absent from ``sections``, never zero."""

    day: date
    region_code: str
    region_name_zh: str
    region_name_en: str
    #: ``province`` or ``city``.
    level: str
    timezone: str
    sections: dict[str, dict[str, Any]]


class Change(BaseModel):
    """One figure that differs between two revisions (None: absent on that side)."""

    figure: str
    before: Any = None
    after: Any = None
    label_zh: str = ""
    label_en: str = ""


class RevisionRead(BaseModel):
    id: int
    day: date
    region_code: str
    revision: int
    reason: str
    published_by: str
    published_at: datetime
    changes: list[Change]


class BulletinRead(BaseModel):
    """A day's bulletin: the frozen figures of its latest revision once published, else the
    figures computed now (a draft)."""

    day: date
    region_code: str
    published: bool
    revision: int | None
    #: True when the record no longer gives the published figures (only checked with ``live``).
    drift: bool | None = None
    figures: Figures
    changes: list[Change] = Field(default_factory=list)
