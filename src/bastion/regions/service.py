"""Regions: the tree, subtree scopes, and zones."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date
from importlib import resources

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import Conflict, InvalidInput, NotFound
from bastion.regions import codes
from bastion.regions.enums import RegionLevel, ZoneKind
from bastion.regions.models import Region, Zone


def get(*, db_session: Session, code: str) -> Region | None:
    return db_session.get(Region, code)


def get_or_404(*, db_session: Session, code: str) -> Region:
    region = db_session.get(Region, code)
    if region is None:
        raise NotFound("error.region_unknown", region=code)
    return region


def scope_of(*, db_session: Session, code: str) -> codes.Scope:
    """The subtree of ``code`` as a prefix scope, excluding prefix-neighbours that belong to
    another branch of the tree (梅河口 220581 under the province, not under 通化 2205)."""
    pfx = codes.prefix(code)
    if len(code) != 6:
        return codes.Scope(prefix=pfx)
    # Only 6-digit regions can sit elsewhere than their code suggests: statistical codes below a
    # district are built from their parent's code.
    six = db_session.execute(
        select(Region.code, Region.parent_code).where(
            func.length(Region.code) == 6, codes.Scope(prefix=pfx).clause(Region.code)
        )
    ).all()
    parents: dict[str, str | None] = {c: p for c, p in six}  # noqa: C416 - rows, not pairs
    excluded: list[str] = []
    for candidate in parents:
        if candidate == code:
            continue
        node: str | None = candidate
        while node is not None and node != code:
            node = parents.get(node)
        if node is None:
            excluded.append(codes.prefix(candidate))
    # Drop exclusions nested in another exclusion.
    excluded.sort()
    pruned = [e for e in excluded if not any(e != o and e.startswith(o) for o in excluded)]
    return codes.Scope(prefix=pfx, excluded=tuple(pruned))


def children(*, db_session: Session, principal: Principal, code: str) -> Sequence[Region]:
    """The direct children of ``code``, which must lie in the principal's subtree."""
    principal.require(Perm.regions_read)
    principal.require_region(code)
    parent = get_or_404(db_session=db_session, code=code)
    rows = db_session.execute(
        select(Region).where(Region.parent_code == parent.code).order_by(Region.code)
    ).scalars()
    return [r for r in rows if principal.scope.contains(r.code)]


def read(*, db_session: Session, principal: Principal, code: str) -> Region:
    """One region inside the principal's subtree."""
    principal.require(Perm.regions_read)
    principal.require_region(code)
    return get_or_404(db_session=db_session, code=code)


def ancestors(*, db_session: Session, code: str) -> list[Region]:
    """From the province down to ``code`` itself."""
    chain: list[Region] = []
    node = db_session.get(Region, code)
    while node is not None:
        chain.append(node)
        node = db_session.get(Region, node.parent_code) if node.parent_code else None
    return list(reversed(chain))


def load_base_regions(*, db_session: Session) -> int:
    """Load the province, its cities and the listed districts from the packaged census CSV.

    Idempotent: regions already present are left as they are. Returns how many were added.
    """
    text = resources.files("bastion.data").joinpath("jilin_regions.csv").read_text("utf-8")
    rows = list(csv.DictReader(text.splitlines()))
    existing = set(db_session.execute(select(Region.code)).scalars())
    added = 0
    for row in rows:
        if row["code"] in existing:
            continue
        db_session.add(
            Region(
                code=row["code"],
                parent_code=row["parent_code"] or None,
                level=row["level"],
                name_zh=row["name_zh"],
                name_en=row["name_en"],
                population=int(row["population_2020"]) if row["population_2020"] else None,
            )
        )
        added += 1
        db_session.flush()
    return added


# Zones ---------------------------------------------------------------------------------------


def designate_zone(
    *,
    db_session: Session,
    principal: Principal,
    region_code: str,
    kind: str,
    starts_on: date,
    reason: str,
) -> Zone:
    """Designate a zone on a region from ``starts_on``. Refuses an unknown kind, a region outside
    the user's subtree, and a second open zone on the same region (lift it first)."""
    principal.require(Perm.zones_write)
    if kind not in ZoneKind.__members__:
        raise InvalidInput.one("kind", "zone.unknown_kind", value=kind)
    if not reason.strip():
        raise InvalidInput.one("reason", "field.required")
    region = get_or_404(db_session=db_session, code=region_code)
    principal.require_region(region.code)
    open_zone = db_session.execute(
        select(Zone).where(Zone.region_code == region_code, Zone.ends_on.is_(None))
    ).scalar_one_or_none()
    if open_zone is not None:
        raise Conflict("zone.already_open", region=region_code, kind=open_zone.kind)
    zone = Zone(
        region_code=region_code,
        kind=kind,
        starts_on=starts_on,
        reason=reason.strip(),
        designated_by=principal.user_id,
        created_at=clock.now(),
    )
    db_session.add(zone)
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="zone.designate",
        target_type="zone",
        target_id=zone.id,
        region_code=region_code,
        details={"kind": kind, "starts_on": starts_on.isoformat()},
    )
    return zone


def lift_zone(*, db_session: Session, principal: Principal, zone_id: int, ends_on: date) -> Zone:
    """Close an open zone on ``ends_on`` (kept in the history)."""
    principal.require(Perm.zones_write)
    zone = db_session.get(Zone, zone_id)
    if zone is None or not principal.scope.contains(zone.region_code):
        raise NotFound("error.not_found")
    if zone.ends_on is not None:
        raise Conflict("zone.already_lifted", ends_on=zone.ends_on.isoformat())
    if ends_on < zone.starts_on:
        raise InvalidInput.one("ends_on", "zone.ends_before_start")
    zone.ends_on = ends_on
    zone.lifted_by = principal.user_id
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="zone.lift",
        target_type="zone",
        target_id=zone.id,
        region_code=zone.region_code,
        details={"ends_on": ends_on.isoformat()},
    )
    return zone


def zones_in_force(
    *, db_session: Session, principal: Principal, on: date | None = None
) -> Sequence[Zone]:
    """Zones in force on ``on`` (today by default) inside the principal's subtree."""
    principal.require(Perm.regions_read)
    day = on or clock.today()
    stmt = (
        select(Zone)
        .where(
            Zone.starts_on <= day,
            (Zone.ends_on.is_(None)) | (Zone.ends_on >= day),
            principal.scope.clause(Zone.region_code),
        )
        .order_by(Zone.region_code)
    )
    return db_session.execute(stmt).scalars().all()


def level_of(code: str) -> RegionLevel | None:
    """The level a well-formed code implies (6-digit codes need the table to tell apart)."""
    return {9: RegionLevel.street, 12: RegionLevel.community, 15: RegionLevel.grid}.get(len(code))
