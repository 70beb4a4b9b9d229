"""Regions and zones."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict

from bastion.api.deps import CurrentPrincipal, RowId, SessionDep
from bastion.core.text import Line, Text
from bastion.regions import service as region_service

router = APIRouter(tags=["regions"])

#: A region code in a path: one line, no control character (a NUL never reaches SQL).
RegionCode = Annotated[Line, Path()]


class RegionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    parent_code: str | None
    level: str
    name_zh: str
    name_en: str
    population: int | None


class ZoneCreate(BaseModel):
    region_code: Line
    kind: Line
    starts_on: date
    reason: Text


class ZoneLift(BaseModel):
    ends_on: date


class ZoneRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    region_code: str
    kind: str
    starts_on: date
    ends_on: date | None
    reason: str


@router.get("/regions/{code}", response_model=RegionRead)
def read_region(code: RegionCode, session: SessionDep, principal: CurrentPrincipal) -> object:
    return region_service.read(db_session=session, principal=principal, code=code)


@router.get("/regions/{code}/children", response_model=list[RegionRead])
def region_children(code: RegionCode, session: SessionDep, principal: CurrentPrincipal) -> object:
    return region_service.children(db_session=session, principal=principal, code=code)


@router.get("/zones", response_model=list[ZoneRead])
def zones(session: SessionDep, principal: CurrentPrincipal, on: date | None = None) -> object:
    return region_service.zones_in_force(db_session=session, principal=principal, on=on)


@router.post("/zones", response_model=ZoneRead, status_code=201)
def designate_zone(body: ZoneCreate, session: SessionDep, principal: CurrentPrincipal) -> object:
    return region_service.designate_zone(
        db_session=session,
        principal=principal,
        region_code=body.region_code,
        kind=body.kind,
        starts_on=body.starts_on,
        reason=body.reason,
    )


@router.post("/zones/{zone_id}/lift", response_model=ZoneRead)
def lift_zone(
    zone_id: RowId, body: ZoneLift, session: SessionDep, principal: CurrentPrincipal
) -> object:
    return region_service.lift_zone(
        db_session=session, principal=principal, zone_id=zone_id, ends_on=body.ends_on
    )
