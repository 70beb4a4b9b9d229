"""Sampling sites after they are registered: the list, changes, and what the API shows of one.

Registering a site is ``testing.service.create_site``; the users bound to a site are
``testing.recorders``; a round's load per site and hour is ``testing.site_load``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bastion.core.auth import Perm, Principal
from bastion.core.errors import FieldProblem, InvalidInput
from bastion.regions import service as region_service
from bastion.testing import service as testing_service
from bastion.testing.models import Site, SiteGrid
from bastion.testing.schemas import SiteRead, SiteUpdate


def grids_of(db_session: Session, site_ids: Sequence[int]) -> dict[int, list[str]]:
    """The grids each site serves, in one query."""
    found: dict[int, list[str]] = defaultdict(list)
    if site_ids:
        rows = db_session.execute(
            select(SiteGrid.site_id, SiteGrid.region_code)
            .where(SiteGrid.site_id.in_(list(site_ids)))
            .order_by(SiteGrid.site_id, SiteGrid.region_code)
        )
        for site_id, grid in rows:
            found[site_id].append(grid)
    return found


def to_reads(db_session: Session, sites: Sequence[Site]) -> list[SiteRead]:
    grids = grids_of(db_session, [s.id for s in sites])
    return [
        SiteRead.model_validate(site).model_copy(update={"grids": grids.get(site.id, [])})
        for site in sites
    ]


def to_read(db_session: Session, site: Site) -> SiteRead:
    return to_reads(db_session, [site])[0]


def list_sites(
    *,
    db_session: Session,
    principal: Principal,
    region_code: str | None = None,
    active: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Site], int]:
    """Sites in the caller's subtree (or in ``region_code``'s, which must lie inside it: 403
    otherwise, 404 unknown), by code, a page at a time, with the total; ``active`` keeps one
    state only."""
    principal.require(Perm.testing_read)
    return testing_service.page_of(
        db_session,
        principal,
        Site,
        region_code=region_code,
        active=active,
        offset=offset,
        limit=limit,
    )


def update_site(*, db_session: Session, principal: Principal, code: str, data: SiteUpdate) -> Site:
    """Change a site's name, address, teams, opening hours, hourly capacity, grids served or
    active flag (a field left out stays as it is; ``grids`` replaces the set). Refuses, naming
    the field, what creating it refuses: a blank name, non-positive or out-of-range teams and
    capacity, closing before opening (``closes_at``, or ``opens_at`` when only it is sent), an
    unknown grid or one outside the site's region (``grids``); a grid outside the user's subtree
    is forbidden; a site outside it is not found. A deactivated site's scans are refused
    (``scan.unknown_site``). Audited when something changed."""
    principal.require(Perm.sites_manage)
    site = testing_service.get_site(db_session=db_session, principal=principal, code=code)
    principal.require_region(site.region_code)
    problems: list[FieldProblem] = []
    if data.name is not None and not data.name.strip():
        problems.append(FieldProblem("name", "field.required"))
    if data.capacity_per_hour is not None:
        testing_service.check_count(
            "capacity_per_hour",
            data.capacity_per_hour,
            testing_service.MAX_CAPACITY_PER_HOUR,
            problems,
        )
    if data.teams is not None:
        testing_service.check_count("teams", data.teams, testing_service.MAX_TEAMS, problems)
    opens_at = data.opens_at if data.opens_at is not None else site.opens_at
    closes_at = data.closes_at if data.closes_at is not None else site.closes_at
    plain = testing_service.local_times(problems, opens_at=data.opens_at, closes_at=data.closes_at)
    if plain and closes_at <= opens_at:
        hours_field = "opens_at" if data.closes_at is None else "closes_at"
        problems.append(FieldProblem(hours_field, "site.closes_before_opening"))
    grids: list[str] | None = None
    if data.grids is not None:
        grids = sorted({g.strip() for g in data.grids})
        within = region_service.scope_of(db_session=db_session, code=site.region_code)
        for grid in grids:
            if region_service.get(db_session=db_session, code=grid) is None:
                problems.append(FieldProblem("grids", "error.region_unknown", {"region": grid}))
            elif not within.contains(grid):
                problems.append(
                    FieldProblem(
                        "grids",
                        "site.grid_outside_region",
                        {"grid": grid, "region": site.region_code},
                    )
                )
    if problems:
        raise InvalidInput(problems=problems)
    for grid in grids or ():
        principal.require_region(grid)

    changes = testing_service.apply_changes(
        site,
        {
            "name": None if data.name is None else data.name.strip(),
            "address": None if data.address is None else data.address.strip(),
            "teams": data.teams,
            "opens_at": data.opens_at,
            "closes_at": data.closes_at,
            "capacity_per_hour": data.capacity_per_hour,
            "active": data.active,
        },
    )
    if grids is not None:
        before = grids_of(db_session, [site.id]).get(site.id, [])
        if before != grids:
            db_session.execute(delete(SiteGrid).where(SiteGrid.site_id == site.id))
            db_session.add_all(SiteGrid(site_id=site.id, region_code=g) for g in grids)
            changes["grids"] = [before, grids]
    testing_service.audit_changes(db_session, principal, site, changes)
    return site
