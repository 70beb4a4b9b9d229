"""Isolation: sites and their basics, placements (list, due for release, release, tests),
transfers (tasks with daily-closure flags, batches), zone lifting checks, figures."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from bastion.api.deps import CurrentPrincipal, LangDep, RowId, SessionDep
from bastion.api.v1.regions import ZoneRead
from bastion.core import clock
from bastion.core.auth import Perm
from bastion.core.errors import FieldProblem
from bastion.core.i18n import t
from bastion.core.text import Line
from bastion.isolation import figures as figures_module
from bastion.isolation import service, sites, transfers, views, zones
from bastion.isolation.releases import ReleaseReport
from bastion.isolation.results import TestItem
from bastion.isolation.schemas import (
    BasicUpdate,
    BatchCreate,
    BatchRead,
    FailIn,
    LiftCheckRead,
    LiftCondition,
    LiftIn,
    PlacementPage,
    PlacementRead,
    ReleaseBatchIn,
    ReleaseBatchRead,
    ReleaseDueIn,
    ReleaseIn,
    ReleaseRead,
    ReleaseRefusedRead,
    RowProblemRead,
    SiteCreate,
    SiteRead,
    TestBatchIn,
    TestBatchRead,
    TestRecord,
    TestTaskRead,
    TransferTaskRead,
)

router = APIRouter(prefix="/isolation", tags=["isolation"])

#: Query filters and path codes: one line, no control character (a NUL never reaches SQL).
Filter = Annotated[Line | None, Query()]
SiteCode = Annotated[Line, Path()]


# Sites ---------------------------------------------------------------------------------------


@router.post("/sites", response_model=SiteRead, status_code=201)
def create_site(body: SiteCreate, session: SessionDep, principal: CurrentPrincipal) -> SiteRead:
    site = sites.create_site(db_session=session, principal=principal, data=body)
    return sites.to_read(session, site)


@router.get("/sites", response_model=list[SiteRead])
def list_sites(
    session: SessionDep,
    principal: CurrentPrincipal,
    region: Filter = None,
    kind: Filter = None,
) -> list[SiteRead]:
    rows = sites.list_sites(db_session=session, principal=principal, region_code=region, kind=kind)
    taken = sites.occupancy(session, [s.id for s in rows])
    return [sites.to_read(session, s, taken[s.id]) for s in rows]


@router.get("/sites/{code}", response_model=SiteRead)
def read_site(code: SiteCode, session: SessionDep, principal: CurrentPrincipal) -> SiteRead:
    return sites.to_read(
        session, sites.get_site(db_session=session, principal=principal, code=code)
    )


@router.post("/sites/{code}/basics", response_model=SiteRead)
def update_basic(
    code: SiteCode, body: BasicUpdate, session: SessionDep, principal: CurrentPrincipal
) -> SiteRead:
    site = sites.update_basic(
        db_session=session,
        principal=principal,
        code=code,
        item=body.item,
        status=body.status,
        note=body.note,
    )
    return sites.to_read(session, site)


# Placements ----------------------------------------------------------------------------------


@router.get("/placements", response_model=PlacementPage)
def list_placements(
    session: SessionDep,
    principal: CurrentPrincipal,
    lang: LangDep,
    region: Filter = None,
    status: Filter = None,
    reason: Filter = None,
    setting: Filter = None,
    due: Annotated[
        bool, Query(description="only those due for release today (or overdue)")
    ] = False,
    unmask: bool = False,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PlacementPage:
    rows, total = service.list_placements(
        db_session=session,
        principal=principal,
        region_code=region,
        status=status,
        reason=reason,
        setting=setting,
        due_on=clock.today() if due else None,
        offset=offset,
        limit=limit,
    )
    items = views.placements(session, principal, rows, unmask=unmask, lang=lang)
    return PlacementPage(items=items, total=total, offset=offset, limit=limit)


@router.get("/placements/{placement_id}", response_model=PlacementRead)
def read_placement(
    placement_id: RowId,
    session: SessionDep,
    principal: CurrentPrincipal,
    lang: LangDep,
    unmask: bool = False,
) -> PlacementRead:
    row = service.get(db_session=session, principal=principal, placement_id=placement_id)
    return views.placements(session, principal, [row], unmask=unmask, detail=True, lang=lang)[0]


@router.post("/placements/{placement_id}/release", response_model=ReleaseRead)
def release_placement(
    placement_id: RowId,
    body: ReleaseIn,
    session: SessionDep,
    principal: CurrentPrincipal,
    lang: LangDep,
) -> ReleaseRead:
    done = service.release(
        db_session=session,
        principal=principal,
        placement_id=placement_id,
        on=body.on,
        override_reason=body.override_reason,
    )
    [view] = views.placements(session, principal, [done.placement], detail=True, lang=lang)
    return ReleaseRead(
        placement=view,
        monitoring_id=done.monitoring.id if done.monitoring else None,
        transfer_id=done.transfer.id if done.transfer else None,
    )


def _problems(problems: Any, lang: Any) -> list[RowProblemRead]:
    return [RowProblemRead(**p.render(lang)) for p in problems if isinstance(p, FieldProblem)]


@router.post("/placements/tests", response_model=TestBatchRead)
def record_tests(
    body: TestBatchIn, session: SessionDep, principal: CurrentPrincipal, lang: LangDep
) -> TestBatchRead:
    """A day's test results in one batch: good rows land, each bad row is reported (row,
    field, reason); re-sending the same batch changes nothing."""
    report = service.record_tests(
        db_session=session,
        principal=principal,
        items=[
            TestItem(i.placement_id, i.day_no, i.result, i.tested_on, i.tube_barcode)
            for i in body.items
        ],
    )
    return TestBatchRead(
        rows=report.rows,
        recorded=report.recorded,
        unchanged=report.unchanged,
        refused=report.refused,
        problems=_problems(report.problems, lang),
    )


def _release_report(report: ReleaseReport, lang: Any) -> ReleaseBatchRead:
    return ReleaseBatchRead(
        rows=report.rows,
        released=report.released,
        overridden=report.overridden,
        monitoring=report.monitoring,
        transfers=report.transfers,
        contacts=report.contacts,
        refused_count=report.refused_count,
        refused=[
            ReleaseRefusedRead(
                row=r.row, placement_id=r.placement_id, problems=_problems(r.problems, lang)
            )
            for r in report.refused
        ],
    )


@router.post("/releases", response_model=ReleaseBatchRead)
def release_placements(
    body: ReleaseBatchIn, session: SessionDep, principal: CurrentPrincipal, lang: LangDep
) -> ReleaseBatchRead:
    """Release a batch of placements: the refused ones are listed with every missing item."""
    report = service.release_many(
        db_session=session,
        principal=principal,
        placement_ids=body.placement_ids,
        on=body.on,
        override_reason=body.override_reason,
    )
    return _release_report(report, lang)


@router.post("/releases/due", response_model=ReleaseBatchRead)
def release_due(
    body: ReleaseDueIn, session: SessionDep, principal: CurrentPrincipal, lang: LangDep
) -> ReleaseBatchRead:
    """Release every active placement due on the day (today by default) whose release check
    passes; the others are listed with what still blocks them."""
    report = service.release_due(
        db_session=session,
        principal=principal,
        day=body.day,
        region_code=body.region,
        reason=body.reason,
    )
    return _release_report(report, lang)


@router.post("/placements/{placement_id}/tests", response_model=PlacementRead)
def record_test(
    placement_id: RowId,
    body: TestRecord,
    session: SessionDep,
    principal: CurrentPrincipal,
    lang: LangDep,
) -> PlacementRead:
    service.record_test(
        db_session=session,
        principal=principal,
        placement_id=placement_id,
        day_no=body.day_no,
        result=body.result,
        tested_on=body.tested_on,
        tube_barcode=body.tube_barcode,
    )
    row = service.get(db_session=session, principal=principal, placement_id=placement_id)
    return views.placements(session, principal, [row], detail=True, lang=lang)[0]


@router.get("/tests", response_model=list[TestTaskRead])
def day_test_tasks(
    session: SessionDep,
    principal: CurrentPrincipal,
    region: Filter = None,
    day: date | None = None,
    unmask: bool = False,
) -> list[TestTaskRead]:
    """The isolation test tasks of a day (today by default): test days due then, of active
    placements, with their result once recorded."""
    rows = service.due_tests(
        db_session=session, principal=principal, day=day or clock.today(), region_code=region
    )
    return views.day_test_tasks(session, principal, rows, unmask=unmask)


# Transfers -----------------------------------------------------------------------------------


@router.get("/transfers", response_model=list[TransferTaskRead])
def list_transfers(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: Filter = None,
    kind: Filter = None,
    red: Annotated[bool, Query(description="only tasks still open from before today")] = False,
    unmask: bool = False,
) -> list[TransferTaskRead]:
    rows = transfers.list_tasks(
        db_session=session, principal=principal, status=status, kind=kind, red_only=red
    )
    return views.tasks(session, principal, rows, unmask=unmask)


@router.post("/transfers/batches", response_model=BatchRead, status_code=201)
def create_batch(body: BatchCreate, session: SessionDep, principal: CurrentPrincipal) -> BatchRead:
    row = transfers.create_batch(db_session=session, principal=principal, data=body)
    return views.batch(session, row)


@router.post("/transfers/batches/{batch_id}/dispatch", response_model=BatchRead)
def dispatch_batch(batch_id: RowId, session: SessionDep, principal: CurrentPrincipal) -> BatchRead:
    row = transfers.dispatch(db_session=session, principal=principal, batch_id=batch_id)
    return views.batch(session, row)


@router.post("/transfers/batches/{batch_id}/arrive", response_model=BatchRead)
def arrive_batch(batch_id: RowId, session: SessionDep, principal: CurrentPrincipal) -> BatchRead:
    row = transfers.arrive(db_session=session, principal=principal, batch_id=batch_id)
    return views.batch(session, row)


@router.post("/transfers/batches/{batch_id}/fail", response_model=BatchRead)
def fail_batch(
    batch_id: RowId, body: FailIn, session: SessionDep, principal: CurrentPrincipal
) -> BatchRead:
    row = transfers.fail(
        db_session=session, principal=principal, batch_id=batch_id, reason=body.reason
    )
    return views.batch(session, row)


# Zones ---------------------------------------------------------------------------------------


def _check_out(check: zones.LiftCheck, lang: Any) -> LiftCheckRead:
    conditions = [
        LiftCondition(key=c.key, ok=c.ok, detail=t(c.key, lang, **c.params))
        for c in check.conditions
    ]
    return LiftCheckRead(
        zone_id=check.zone.id,
        region_code=check.zone.region_code,
        kind=check.zone.kind,
        profile=check.profile,
        on=check.on,
        ready=check.ready,
        conditions=conditions,
        failing=[c.key for c in check.failing],
    )


@router.get("/zones/{zone_id}/lift-check", response_model=LiftCheckRead)
def zone_lift_check(
    zone_id: RowId,
    session: SessionDep,
    principal: CurrentPrincipal,
    lang: LangDep,
    on: date | None = None,
) -> LiftCheckRead:
    check = zones.check_lift(db_session=session, principal=principal, zone_id=zone_id, on=on)
    return _check_out(check, lang)


@router.post("/zones/{zone_id}/lift", response_model=ZoneRead)
def zone_lift(
    zone_id: RowId, body: LiftIn, session: SessionDep, principal: CurrentPrincipal
) -> object:
    zone, _check = zones.lift_with_check(
        db_session=session,
        principal=principal,
        zone_id=zone_id,
        ends_on=body.ends_on,
        override_reason=body.override_reason,
    )
    return zone


# Figures -------------------------------------------------------------------------------------


@router.get("/figures")
def isolation_figures(
    session: SessionDep,
    principal: CurrentPrincipal,
    region: Filter = None,
    day: date | None = None,
) -> dict[str, Any]:
    """Under isolation (centralised / home) by city, releases of the day and cumulative, and
    site occupancy against beds."""
    principal.require(Perm.isolation_read)
    code = region or principal.region_code or "220000"
    principal.require_region(code)
    found = figures_module.figures(db_session=session, day=day or clock.today(), region_code=code)
    return {
        "day": found.day.isoformat(),
        "region_code": found.region_code,
        "under_isolation": found.under_isolation,
        "centralised": found.centralised,
        "home": found.home,
        "by_city": {c: {"centralised": v[0], "home": v[1]} for c, v in found.by_city.items()},
        "released_day": found.released_day,
        "released_total": found.released_total,
        "released_day_by_city": found.released_day_by_city,
        "released_total_by_city": found.released_total_by_city,
        "sites": [s.__dict__ for s in found.sites],
    }
