"""Pure rules of tracing: what a case may be and become, who is a contact, where people go.

No database here: services and the set-based SQL follow these rules, and the unit tests check
them table by table and with hypothesis.
"""

from __future__ import annotations

from datetime import date, timedelta

from bastion.core.errors import InvalidInput, InvalidTransition
from bastion.protocols.profiles import Profile
from bastion.tracing.enums import (
    CLASSIFICATIONS,
    CLINICAL_TYPES,
    FOUND_BY,
    ORIGINS,
    SETTINGS,
)

#: How a case ends, by action: the status it takes and the classification it requires
#: (None: any). Discharge (出院) ends a confirmed case, release from medical observation
#: (解除医学观察) an asymptomatic one; a death ends either.
CLOSINGS: dict[str, tuple[str, str | None]] = {
    "discharge": ("discharged", "confirmed"),
    "release": ("released", "asymptomatic"),
    "death": ("died", None),
}


def check_kind(classification: str, clinical_type: str | None) -> None:
    """A confirmed case has a clinical type; an asymptomatic one has none."""
    if classification not in CLASSIFICATIONS:
        raise InvalidInput.one("classification", "case.classification_unknown")
    if classification == "confirmed":
        if clinical_type not in CLINICAL_TYPES:
            raise InvalidInput.one("clinical_type", "case.clinical_type_required")
    elif clinical_type is not None:
        raise InvalidInput.one("clinical_type", "case.clinical_type_asymptomatic")


def check_choice(field_name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidInput.one(field_name, "case.value_unknown", allowed=", ".join(allowed))


def check_case_fields(origin: str, found_by: str) -> None:
    check_choice("origin", origin, ORIGINS)
    check_choice("found_by", found_by, FOUND_BY)


def check_not_future(field_name: str, day: date | None, today: date) -> None:
    """Dates in the future are refused: nothing is reported, sampled or exposed tomorrow."""
    if day is not None and day > today:
        raise InvalidInput.one(field_name, "tracing.date_in_future", day=day.isoformat())


def check_case_dates(
    *, onset_on: date | None, sampled_on: date | None, reported_on: date, today: date
) -> None:
    """No date in the future; onset and sampling come no later than the report."""
    for name, day in (("onset_on", onset_on), ("sampled_on", sampled_on)):
        check_not_future(name, day, today)
        if day is not None and day > reported_on:
            raise InvalidInput.one(name, "case.date_after_report", day=day.isoformat())
    check_not_future("reported_on", reported_on, today)


def reclassification(*, classification: str, status: str, reported_on: date, day: date) -> None:
    """Only an open asymptomatic case is reclassified as confirmed, once, on or after the day
    it was reported."""
    if status != "open":
        raise InvalidTransition("case.not_open", status=status)
    if classification != "asymptomatic":
        raise InvalidTransition("case.already_confirmed")
    if day < reported_on:
        raise InvalidInput.one("day", "case.date_before_report", day=day.isoformat())


def closing(*, action: str, classification: str, status: str, reported_on: date, day: date) -> str:
    """The status an open case takes on ``action`` (discharge / release / death) on ``day``;
    refuses a closed case, the wrong action for the classification and a day before the report."""
    if action not in CLOSINGS:
        raise InvalidInput.one("action", "case.value_unknown", allowed=", ".join(CLOSINGS))
    if status != "open":
        raise InvalidTransition("case.not_open", status=status)
    new_status, needs = CLOSINGS[action]
    if needs is not None and classification != needs:
        raise InvalidTransition(f"case.{action}_needs_{needs}")
    if day < reported_on:
        raise InvalidInput.one("day", "case.date_before_report", day=day.isoformat())
    return new_status


def lookback_start(
    *, onset_on: date | None, sampled_on: date | None, reported_on: date, lookback_days: int
) -> date:
    """The first day whose exposures count: ``lookback_days`` before onset, or before sampling
    when there is no onset (asymptomatic), or before the report when neither is known."""
    anchor = onset_on or sampled_on or reported_on
    return anchor - timedelta(days=lookback_days)


def contact_level(*, source: str, profile: Profile) -> str | None:
    """The level of a person exposed to ``source`` ("case" or "close"): close to a case,
    secondary to a close contact when the profile traces secondary contacts; None otherwise
    (a secondary contact's own contacts are not traced)."""
    if source == "case":
        return "close"
    if source == "close" and profile.secondary.traced:
        return "secondary"
    return None


def exposure_counts(*, source: str, exposed_on: date, since: date) -> bool:
    """An exposure makes a contact when it falls on or after ``since``: the case's lookback
    start, or, for a close contact's exposures, the day of their own exposure to the case."""
    del source
    return exposed_on >= since


def check_setting(setting: str) -> None:
    check_choice("setting", setting, SETTINGS)


def reporting_city(region_code: str, province_cities: frozenset[str]) -> str:
    """The 6-digit city that reports a case residing in ``region_code``: the code's first six
    digits when they name a city run by the province (梅河口 220581), else the prefecture
    (first four digits + 00)."""
    six = region_code[:6]
    if six in province_cities:
        return six
    return region_code[:4] + "00"


def case_destination(profile: Profile, classification: str, clinical_type: str | None) -> str:
    """Where a new case is placed under ``profile``: by clinical type, or "asymptomatic"."""
    key = clinical_type if classification == "confirmed" and clinical_type else "asymptomatic"
    return profile.case_destination[key]


def contact_destination(profile: Profile, level: str) -> str:
    """Where a contact of ``level`` spends the main period under ``profile``."""
    return profile.rule(level).setting
