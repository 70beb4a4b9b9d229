"""Round coverage and timeliness, and the people not yet tested."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query

from bastion.api.deps import CurrentPrincipal, SessionDep
from bastion.registry import service as registry_service
from bastion.registry.schemas import PersonPage
from bastion.testing import coverage
from bastion.testing.coverage import CoverageView, RoundStatus, Screened

router = APIRouter(tags=["coverage"])

RegionQuery = Annotated[str, Query(max_length=15, description="A region code")]


@router.get("/rounds/{ref}/coverage", response_model=CoverageView)
def round_coverage(
    ref: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    region: Annotated[str | None, Query(max_length=15)] = None,
) -> CoverageView:
    """Coverage of round ``ref`` (id, code or ``latest``) in ``region`` (default: the round's
    region, or yours when the round covers more): totals and one row per child region, with
    what is late."""
    return coverage.view(db_session=session, principal=principal, ref=ref, region_code=region)


@router.get("/rounds/{ref}/status", response_model=RoundStatus)
def round_status(ref: str, session: SessionDep, principal: CurrentPrincipal) -> RoundStatus:
    """The whole round within your region: totals and one row per city, largest first."""
    return coverage.round_status(db_session=session, principal=principal, ref=ref)


@router.get("/rounds/{ref}/not-tested", response_model=PersonPage)
def not_tested(
    ref: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    region: RegionQuery,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=coverage.MAX_PAGE)] = 50,
) -> PersonPage:
    """The people round ``ref`` requires in a grid or community who are not sampled yet (应检未检),
    masked, in address order, a page at a time."""
    rows, total = coverage.not_tested(
        db_session=session,
        principal=principal,
        ref=ref,
        region_code=region,
        offset=offset,
        limit=limit,
    )
    return PersonPage(
        items=[registry_service.to_read(p) for p in rows], total=total, offset=offset, limit=limit
    )


@router.get("/screening", response_model=Screened)
def screening(
    session: SessionDep, principal: CurrentPrincipal, region: RegionQuery, day: date
) -> Screened:
    """People screened in ``region`` on local day ``day`` (person-scans, retests excepted, every
    round) and cumulative person-times to the end of that day: the bulletin's figures."""
    return coverage.screened(db_session=session, principal=principal, region_code=region, day=day)
