"""The isolation side of a simulated outbreak day, through :mod:`bastion.isolation` only: test
days recorded, releases when due (and the contacts released with them), treatment ended for
discharged cases, and the day's transfer batches (sites opened as they fill, vehicles
dispatched and arrived, a few failing with a reason, some tasks left for tomorrow so the daily
closure has red flags to show). Isolation's tables are read for the ids to act on, never
written here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Principal
from bastion.core.errors import BastionError
from bastion.simulate.outbreak_record import (
    BATCH_FAILS,
    FAILURE_REASONS,
    KIND_OF_DESTINATION,
    SITE_BEDS,
    SITE_NAMES,
    VEHICLE_SEATS,
    DayRecord,
    rng_for,
)

#: The reason given when the treatment of a case who died is ended.
DIED = "病例死亡，结束救治"

Moment = Callable[[int, int], datetime]
"""(hour, minute) of the day being simulated → an aware instant."""


def moment_of(day: date) -> Moment:
    def at(hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=clock.local_tz())

    return at


# Test days and releases ------------------------------------------------------------------------


def record_tests(
    *, db_session: Session, principal: Principal, day: date, region_code: str, out: DayRecord
) -> None:
    """Every test day due today or missed before (a person still waiting for transfer on a
    test day is tested once there) of the active placements in the region: negative (a
    positive person is a case, and their contact placement has ended)."""
    from bastion.isolation import service as isolation_service
    from bastion.isolation.models import Placement, PlacementTest
    from bastion.isolation.results import TestItem
    from bastion.regions import service as region_service

    scope = region_service.scope_of(db_session=db_session, code=region_code)
    due = db_session.execute(
        select(PlacementTest.placement_id, PlacementTest.day_no)
        .join(Placement, Placement.id == PlacementTest.placement_id)
        .where(
            PlacementTest.due_on <= day,
            PlacementTest.result.is_(None),
            Placement.status == "active",
            scope.clause(Placement.region_code),
        )
        .order_by(PlacementTest.placement_id, PlacementTest.day_no)
    ).all()
    items = [TestItem(int(pid), int(day_no), "negative", day) for pid, day_no in due]
    # The whole day's tests in one set-based batch (one audit entry), as a site records them.
    report = isolation_service.record_tests(db_session=db_session, principal=principal, items=items)
    out.tests += report.recorded
    for problem in report.problems:
        pid, day_no = due[int(problem.row or 1) - 1]
        out.refusals.append(f"test {pid}/{day_no}: {problem.text('en')}")


def release_due(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    region_code: str,
    closed_cases: Mapping[int, str],
    out: DayRecord,
) -> None:
    """Release the contacts' placements that reach their planned end today (their contacts
    released with the main period), and end the treatment of the cases closed today: set-based
    batches through :func:`bastion.isolation.service.release_many`."""
    from bastion.isolation import service as isolation_service
    from bastion.isolation.models import Placement
    from bastion.regions import service as region_service

    scope = region_service.scope_of(db_session=db_session, code=region_code)
    rows: list[Any] = list(
        db_session.execute(
            select(Placement.id, Placement.reason, Placement.source_id, Placement.setting)
            .where(
                Placement.status == "active",
                Placement.reason != "case",
                Placement.planned_end_on <= day,
                scope.clause(Placement.region_code),
            )
            .order_by(Placement.id)
        ).all()
    )
    if closed_cases:
        rows += db_session.execute(
            select(Placement.id, Placement.reason, Placement.source_id, Placement.setting)
            .where(
                Placement.status == "active",
                Placement.source_type == "case",
                Placement.source_id.in_(sorted(closed_cases)),
            )
            .order_by(Placement.id)
        ).all()
    # Two set-based batches: the releases checked as usual, and the treatment of the cases who
    # died ended whatever tests remain (a command decision, hence the override). Each releases
    # the contacts of its placements in tracing with one call.
    died = {
        int(r.id)
        for r in rows
        if r.reason == "case" and closed_cases.get(int(r.source_id)) == "died"
    }
    ids = list(dict.fromkeys(int(r.id) for r in rows))
    for batch, override in (([i for i in ids if i not in died], None), (sorted(died), DIED)):
        if not batch:
            continue
        report = isolation_service.release_many(
            db_session=db_session,
            principal=principal,
            placement_ids=batch,
            on=day,
            override_reason=override,
        )
        out.released += len(report.released)
        for refused in report.refused:
            reasons = "; ".join(p.text("en") for p in refused.problems)
            out.refusals.append(f"release {refused.placement_id}: {reasons}")


# Transfers -------------------------------------------------------------------------------------


def _open_tasks(db_session: Session, region_code: str, hold: set[int], day: date) -> list[Any]:
    from bastion.isolation.models import TransferTask
    from bastion.regions import service as region_service

    scope = region_service.scope_of(db_session=db_session, code=region_code)
    rows = db_session.execute(
        select(
            TransferTask.id,
            TransferTask.person_id,
            TransferTask.region_code,
            TransferTask.kind,
            TransferTask.destination,
            TransferTask.status,
            TransferTask.batch_id,
            TransferTask.created_on,
        )
        .where(
            TransferTask.status.in_(("pending", "failed")), scope.clause(TransferTask.region_code)
        )
        .order_by(TransferTask.id)
    ).all()
    return [
        r for r in rows if (r.status == "failed" or r.batch_id is None) and r.person_id not in hold
    ]


class _Sites:
    """The simulation's sites of one kind in one city, opened as they fill."""

    def __init__(self, db_session: Session, principal: Principal, city: str, kind: str) -> None:
        from bastion.isolation import sites
        from bastion.isolation.models import IsolationSite

        self.db_session, self.principal, self.city, self.kind = db_session, principal, city, kind
        self.prefix = f"SIM-{city}-{kind.upper()}"
        found = db_session.execute(
            select(IsolationSite.id, IsolationSite.code, IsolationSite.beds)
            .where(IsolationSite.code.startswith(self.prefix))
            .order_by(IsolationSite.id)
        ).all()
        taken = sites.occupancy(db_session, [int(f.id) for f in found])
        self.free: dict[str, int] = {
            str(f.code): int(f.beds) - taken.get(int(f.id), 0) for f in found
        }

    def take(self, people: int) -> str:
        """The code of a site with room for ``people``, opening one when none has."""
        for code, free in self.free.items():
            if free >= people:
                self.free[code] = free - people
                return code
        from bastion.isolation import sites
        from bastion.isolation.schemas import SiteCreate
        from bastion.regions import service as region_service

        number = len(self.free) + 1
        city = region_service.get(db_session=self.db_session, code=self.city)
        name = city.name_zh if city is not None else self.city
        beds = max(SITE_BEDS[self.kind], people)
        site = sites.create_site(
            db_session=self.db_session,
            principal=self.principal,
            data=SiteCreate(
                code=f"{self.prefix}{number}",
                name=f"{name}第{number}{SITE_NAMES[self.kind]}",
                kind=self.kind,
                region_code=self.city,
                address=f"{name}（模拟）",
                rooms=beds if self.kind == "hotel" else max(1, beds // 4),
                beds=beds,
            ),
        )
        self.free[site.code] = beds - people
        return str(site.code)


def move_people(
    *,
    db_session: Session,
    principal: Principal,
    day: date,
    seed: int,
    region_code: str,
    hold: set[int],
    out: DayRecord,
) -> None:
    """The day's transfers: every open task (new today, failed yesterday, home-goers) in
    batches of a vehicle's seats, by city and destination; each batch dispatched and arrived,
    or failed with a reason. Tasks of ``hold`` (people whose transfer waits) stay pending."""
    from bastion.isolation import figures, transfers
    from bastion.isolation.schemas import BatchCreate

    tasks = _open_tasks(db_session, region_code, hold, day)
    if not tasks:
        return
    at = moment_of(day)
    city_of = figures.city_resolver(db_session)
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for task in tasks:
        groups.setdefault((city_of(task.region_code), task.kind, task.destination), []).append(task)
    number = 0
    for (city, kind, destination), members in sorted(groups.items()):
        site_kind = KIND_OF_DESTINATION.get(destination)
        pool = (
            _Sites(db_session, principal, city, site_kind)
            if kind == "to_site" and site_kind
            else None
        )
        for chunk in _chunks(members, VEHICLE_SEATS):
            number += 1
            code = f"SIM-{day:%Y%m%d}-{number:03d}"
            rng = rng_for(seed, "batch", code)
            plate = f"吉{'ABCDEFGH'[int(city[2:4]) % 8]}·Z{rng.randint(1, 9999):04d}"
            try:
                with clock.frozen(at(14, 0)):
                    batch = transfers.create_batch(
                        db_session=db_session,
                        principal=principal,
                        data=BatchCreate(
                            code=code,
                            vehicle=plate,
                            escort=f"转运专班第{rng.randint(1, 40)}组",
                            site=pool.take(len(chunk)) if pool is not None else None,
                            tasks=[int(t.id) for t in chunk],
                        ),
                    )
                with clock.frozen(at(14, 30 + rng.randint(0, 25))):
                    transfers.dispatch(
                        db_session=db_session, principal=principal, batch_id=batch.id
                    )
                out.batches += 1
                if rng.random() < BATCH_FAILS:
                    with clock.frozen(at(16, rng.randint(0, 59))):
                        transfers.fail(
                            db_session=db_session,
                            principal=principal,
                            batch_id=batch.id,
                            reason=FAILURE_REASONS[rng.randint(0, len(FAILURE_REASONS) - 1)],
                        )
                    out.failed_batches += 1
                else:
                    with clock.frozen(at(15 + rng.randint(0, 3), rng.randint(0, 59))):
                        transfers.arrive(
                            db_session=db_session, principal=principal, batch_id=batch.id
                        )
                    out.arrived += len(chunk)
            except BastionError as err:
                out.refusals.append(f"batch {code}: {err.message('en')}")
    out.left_pending += len({t.person_id for t in _open_tasks(db_session, region_code, set(), day)})


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


__all__ = ["moment_of", "move_people", "record_tests", "release_due"]
