"""The tracing figures of a day, for the bulletin and the dashboard (issue #4 part 7).

Counting rules (DOMAIN.md "Daily bulletin"):

- **new confirmed** on D: cases reported on D as confirmed, plus cases reclassified from
  asymptomatic to confirmed on D (``reclassified``, listed "of which" in the bulletin);
- **new asymptomatic** on D: cases first reported on D as asymptomatic (whatever they are now);
- so an infection is counted once as new (asymptomatic or confirmed) on the day it is reported,
  and a reclassification moves it between the two lines on its day without adding an infection;
- **discharged and released**: confirmed cases discharged plus asymptomatic cases released from
  observation, on D and up to D; deaths apart;
- **contacts**: close and secondary contacts identified up to D, and those released up to D.

Cities are reporting cities; the region filter is on residence (a subtree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from bastion.regions import service as region_service
from bastion.tracing.models import Case, Contact


@dataclass
class TracingFigures:
    day: date
    region_code: str
    new_confirmed: int = 0
    new_confirmed_by_type: dict[str, int] = field(default_factory=dict)
    new_confirmed_by_city: dict[str, int] = field(default_factory=dict)
    reclassified: int = 0
    reclassified_by_city: dict[str, int] = field(default_factory=dict)
    new_asymptomatic: int = 0
    new_asymptomatic_by_city: dict[str, int] = field(default_factory=dict)
    discharged_released: int = 0
    discharged_released_by_city: dict[str, int] = field(default_factory=dict)
    discharged_released_cumulative: int = 0
    discharged_released_cumulative_by_city: dict[str, int] = field(default_factory=dict)
    deaths: int = 0
    deaths_cumulative: int = 0
    close_cumulative: int = 0
    close_released: int = 0
    secondary_cumulative: int = 0
    secondary_released: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["day"] = self.day.isoformat()
        return out


def _grouped(db_session: Session, column: Any, *where: Any) -> dict[str, int]:
    rows = db_session.execute(
        select(column, func.count()).where(*where).group_by(column).order_by(column)
    ).all()
    return {str(k): int(n) for k, n in rows}


def figures(*, db_session: Session, day: date, region_code: str) -> TracingFigures:
    """The figures of ``day`` for the cases and contacts residing under ``region_code``. Reads
    only (no permission check: the bulletin and dashboard services check theirs)."""
    inside = region_service.scope_of(db_session=db_session, code=region_code)
    in_cases = inside.clause(Case.region_code)
    f = TracingFigures(day=day, region_code=region_code)
    reported_confirmed = and_(
        Case.reported_on == day, Case.classification == "confirmed", Case.reclassified_on.is_(None)
    )
    new_confirmed = or_(reported_confirmed, Case.reclassified_on == day)
    f.new_confirmed_by_type = _grouped(db_session, Case.clinical_type, in_cases, new_confirmed)
    f.new_confirmed_by_city = _grouped(db_session, Case.reporting_city, in_cases, new_confirmed)
    f.new_confirmed = sum(f.new_confirmed_by_city.values())
    f.reclassified_by_city = _grouped(
        db_session, Case.reporting_city, in_cases, Case.reclassified_on == day
    )
    f.reclassified = sum(f.reclassified_by_city.values())
    first_asymptomatic = and_(
        Case.reported_on == day,
        or_(Case.classification == "asymptomatic", Case.reclassified_on.is_not(None)),
    )
    f.new_asymptomatic_by_city = _grouped(
        db_session, Case.reporting_city, in_cases, first_asymptomatic
    )
    f.new_asymptomatic = sum(f.new_asymptomatic_by_city.values())
    ended = Case.status.in_(("discharged", "released"))
    f.discharged_released_by_city = _grouped(
        db_session, Case.reporting_city, in_cases, ended, Case.closed_on == day
    )
    f.discharged_released = sum(f.discharged_released_by_city.values())
    f.discharged_released_cumulative_by_city = _grouped(
        db_session, Case.reporting_city, in_cases, ended, Case.closed_on <= day
    )
    f.discharged_released_cumulative = sum(f.discharged_released_cumulative_by_city.values())
    died = Case.status == "died"
    f.deaths = sum(
        _grouped(db_session, Case.status, in_cases, died, Case.closed_on == day).values()
    )
    f.deaths_cumulative = sum(
        _grouped(db_session, Case.status, in_cases, died, Case.closed_on <= day).values()
    )
    in_contacts = inside.clause(Contact.region_code)
    identified = _grouped(db_session, Contact.level, in_contacts, Contact.identified_on <= day)
    released = _grouped(
        db_session, Contact.level, in_contacts, Contact.released_on.is_not(None),
        Contact.released_on <= day,
    )  # fmt: skip
    f.close_cumulative = identified.get("close", 0)
    f.secondary_cumulative = identified.get("secondary", 0)
    f.close_released = released.get("close", 0)
    f.secondary_released = released.get("secondary", 0)
    return f


def latest_case_day(*, db_session: Session, region_code: str) -> date | None:
    """The last ``reported_on`` of a case residing under ``region_code`` (None: no case)."""
    inside = region_service.scope_of(db_session=db_session, code=region_code)
    value = db_session.execute(
        select(func.max(Case.reported_on)).where(inside.clause(Case.region_code))
    ).scalar_one_or_none()
    return value
