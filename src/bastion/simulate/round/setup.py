"""The round, its labs and its sites: found when they exist, else created through
:mod:`bastion.testing.service`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Principal
from bastion.core.errors import Conflict
from bastion.regions.models import Region
from bastion.simulate.round.layout import Layout
from bastion.simulate.round.params import (
    CLOSES,
    MIN_LAB_CAPACITY,
    OPENED_BEFORE,
    OPENS,
    RESIDENTS_PER_LAB_TUBE,
)
from bastion.testing import pooling
from bastion.testing import service as testing_service
from bastion.testing.models import Lab, Round, Site
from bastion.testing.schemas import LabCreate, RoundCreate, SiteCreate


def round_name(region: Region, seed: int, prevalence: float) -> str:
    return f"{region.name_zh}全员核酸检测（模拟，种子 {seed}，阳性率 {prevalence:g}）"


def ensure_round(
    db_session: Session,
    principal: Principal,
    *,
    code: str,
    name: str,
    region_code: str,
    start: datetime | None,
    default_start: datetime,
    policy: Mapping[str, int | str],
) -> Round:
    """The round ``code``: found (it must be this very simulation: same region, name, start and
    pool policy) or opened an hour before its start."""
    existing = db_session.execute(select(Round).where(Round.code == code)).scalar_one_or_none()
    if existing is not None:
        wanted = pooling.PoolPolicy.from_dict(dict(policy))
        if (
            existing.region_code != region_code
            or existing.name != name
            or (start is not None and existing.starts_at != start)
            or testing_service.policy_of(existing) != wanted
        ):
            raise Conflict("simulate.round_differs", code=code)
        return existing
    starts_at = start or default_start
    with clock.frozen(starts_at - OPENED_BEFORE):
        return testing_service.create_round(
            db_session=db_session,
            principal=principal,
            data=RoundCreate(
                code=code,
                name=name,
                region_code=region_code,
                starts_at=starts_at,
                pool_policy=dict(policy),
            ),
        )


def ensure_labs(db_session: Session, principal: Principal, layout: Layout) -> None:
    codes_wanted = {f"SIMLAB-{city}-1": city for city in layout.cities}
    have = set(
        db_session.execute(select(Lab.code).where(Lab.code.in_(list(codes_wanted)))).scalars()
    )
    for lab_code, city in sorted(codes_wanted.items()):
        if lab_code in have:
            continue
        name, residents = layout.cities[city]
        testing_service.create_lab(
            db_session=db_session,
            principal=principal,
            data=LabCreate(
                code=lab_code,
                name=f"{name}第1检测实验室",
                region_code=city,
                daily_capacity=max(MIN_LAB_CAPACITY, math.ceil(residents / RESIDENTS_PER_LAB_TUBE)),
            ),
        )


def ensure_sites(db_session: Session, principal: Principal, layout: Layout) -> None:
    """Create the sites not there yet; a site that exists keeps its own hours and capacity,
    which its queue then follows."""
    sites = layout.sites
    have = {
        s.code: s
        for s in db_session.execute(
            select(Site).where(Site.code.in_([s.code for s in sites]))
        ).scalars()
    }
    for site in sites:
        found = have.get(site.code)
        if found is not None:
            site.capacity_per_hour = found.capacity_per_hour
            continue
        testing_service.create_site(
            db_session=db_session,
            principal=principal,
            data=SiteCreate(
                code=site.code,
                name=site.name,
                region_code=site.community,
                address=site.name,
                teams=site.teams,
                opens_at=OPENS,
                closes_at=CLOSES,
                capacity_per_hour=site.capacity_per_hour,
                grids=list(site.grids),
            ),
        )
