"""The words of tracing, as tuples of the values stored (CHECK constraints use the same)."""

from __future__ import annotations

from typing import Literal

CLASSIFICATIONS = ("confirmed", "asymptomatic")
CLINICAL_TYPES = ("mild", "ordinary", "severe", "critical")
ORIGINS = ("local", "imported")
FOUND_BY = (
    "community_screening",
    "isolation",
    "control",
    "fever_clinic",
    "hospital",
    "antigen",
    "other",
)
CASE_STATUSES = ("open", "discharged", "released", "died")
CONTACT_LEVELS = ("close", "secondary")
CONTACT_STATUSES = ("active", "released")
SETTINGS = (
    "household",
    "workplace",
    "sampling_queue",
    "transport",
    "school",
    "care_home",
    "other",
)

Classification = Literal["confirmed", "asymptomatic"]
ClinicalType = Literal["mild", "ordinary", "severe", "critical"]
CaseStatus = Literal["open", "discharged", "released", "died"]
Level = Literal["close", "secondary"]


def check_in(column: str, values: tuple[str, ...]) -> str:
    """The SQL of a CHECK constraint keeping ``column`` to ``values``."""
    return f"{column} IN ({','.join(repr(v) for v in values)})"
