"""What a simulated outbreak came to, read back from the record (the same figures on a re-run):
cases by type and by reporting city, the epidemic curve, contacts, placements, transfers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.isolation.models import Placement, TransferBatch, TransferTask
from bastion.regions import service as region_service
from bastion.regions.models import Region
from bastion.tracing.models import Case, Contact


@dataclass(frozen=True)
class OutbreakSummary:
    region_code: str
    start: date
    end: date
    #: Cases reported in the period, by current type: mild / ordinary / severe / critical /
    #: asymptomatic.
    cases_by_type: dict[str, int]
    #: (city code, city name, confirmed, asymptomatic) by reporting city, largest first.
    cases_by_city: list[tuple[str, str, int, int]]
    #: (day, new confirmed, new asymptomatic) as first reported.
    curve: list[tuple[date, int, int]]
    reclassified: int
    #: discharged / released / died.
    closed: dict[str, int]
    #: close / secondary identified in the period, and released of them.
    contacts: dict[str, int]
    contacts_released: int
    #: Placements made in the period, by setting, and by status.
    placements: dict[str, int]
    placement_status: dict[str, int]
    #: Transfer tasks of the period by status; batches and failed batches; tasks still open
    #: from before the last day (red under the daily closure).
    transfers: dict[str, int]
    batches: int
    failed_batches: int
    red: int

    @property
    def cases(self) -> int:
        return sum(self.cases_by_type.values())


def summarise(*, db_session: Session, region_code: str, start: date, end: date) -> OutbreakSummary:
    """The outbreak's figures for the days ``start``..``end`` in ``region_code``, set-based."""
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    one = db_session.execute
    in_cases = (
        scope.clause(Case.region_code),
        Case.reported_on >= start,
        Case.reported_on <= end,
    )
    by_type: dict[str, int] = {}
    for classification, kind, n in one(
        select(Case.classification, Case.clinical_type, func.count())
        .where(*in_cases)
        .group_by(Case.classification, Case.clinical_type)
    ).all():
        key = str(kind) if classification == "confirmed" and kind else "asymptomatic"
        by_type[key] = by_type.get(key, 0) + int(n)
    # As first reported: a reclassified case was reported asymptomatic.
    curve_rows = one(
        select(
            Case.reported_on,
            func.count().filter(Case.classification == "confirmed", Case.reclassified_on.is_(None)),
            func.count().filter(
                (Case.classification == "asymptomatic") | Case.reclassified_on.is_not(None)
            ),
        )
        .where(*in_cases)
        .group_by(Case.reported_on)
        .order_by(Case.reported_on)
    ).all()
    curve = [(_day(d), int(c), int(a)) for d, c, a in curve_rows]
    city_rows = one(
        select(
            Case.reporting_city,
            func.count().filter(Case.classification == "confirmed"),
            func.count().filter(Case.classification == "asymptomatic"),
        )
        .where(*in_cases)
        .group_by(Case.reporting_city)
    ).all()
    names = dict(
        one(
            select(Region.code, Region.name_zh).where(
                Region.code.in_([r[0] for r in city_rows] or [""])
            )
        ).all()
    )
    by_city = sorted(
        ((str(c), names.get(c, str(c)), int(k), int(a)) for c, k, a in city_rows),
        key=lambda r: (-(r[2] + r[3]), r[0]),
    )
    reclassified = one(
        select(func.count()).where(
            scope.clause(Case.region_code),
            Case.reclassified_on >= start,
            Case.reclassified_on <= end,
        )
    ).scalar_one()
    closed = dict(
        one(
            select(Case.status, func.count())
            .where(scope.clause(Case.region_code), Case.closed_on >= start, Case.closed_on <= end)
            .group_by(Case.status)
        ).all()
    )
    in_contacts = (
        scope.clause(Contact.region_code),
        Contact.identified_on >= start,
        Contact.identified_on <= end,
    )
    contacts = dict(
        one(select(Contact.level, func.count()).where(*in_contacts).group_by(Contact.level)).all()
    )
    released = one(
        select(func.count()).where(*in_contacts, Contact.status == "released")
    ).scalar_one()
    in_placements = (
        scope.clause(Placement.region_code),
        Placement.starts_on >= start,
        Placement.starts_on <= end,
    )
    placements = dict(
        one(
            select(Placement.setting, func.count())
            .where(*in_placements)
            .group_by(Placement.setting)
        ).all()
    )
    placement_status = dict(
        one(
            select(Placement.status, func.count()).where(*in_placements).group_by(Placement.status)
        ).all()
    )
    in_tasks = (
        scope.clause(TransferTask.region_code),
        TransferTask.created_on >= start,
        TransferTask.created_on <= end,
    )
    transfers = dict(
        one(
            select(TransferTask.status, func.count()).where(*in_tasks).group_by(TransferTask.status)
        ).all()
    )
    red = one(
        select(func.count()).where(
            *in_tasks,
            TransferTask.created_on < end,
            TransferTask.status.in_(("pending", "dispatched", "failed")),
        )
    ).scalar_one()
    batches = dict(
        one(
            select(TransferBatch.status, func.count())
            .where(TransferBatch.code.startswith("SIM-"))
            .group_by(TransferBatch.status)
        ).all()
    )
    return OutbreakSummary(
        region_code=region_code,
        start=start,
        end=end,
        cases_by_type=by_type,
        cases_by_city=by_city,
        curve=curve,
        reclassified=int(reclassified),
        closed={str(k): int(v) for k, v in closed.items()},
        contacts={str(k): int(v) for k, v in contacts.items()},
        contacts_released=int(released),
        placements={str(k): int(v) for k, v in placements.items()},
        placement_status={str(k): int(v) for k, v in placement_status.items()},
        transfers={str(k): int(v) for k, v in transfers.items()},
        batches=sum(int(v) for v in batches.values()),
        failed_batches=int(batches.get("failed", 0)),
        red=int(red),
    )


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
