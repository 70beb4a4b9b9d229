"""Centralised isolation sites: hotels, makeshift hospitals, hospitals; their beds, occupancy and
basics (water, power, heating, network)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import Conflict, FieldProblem, InvalidInput, NotFound
from bastion.isolation.enums import Basic, BasicStatus, PlacementStatus, SiteKind
from bastion.isolation.models import IsolationSite, Placement, SiteBasic
from bastion.isolation.schemas import BasicRead, SiteCreate, SiteRead
from bastion.regions import service as region_service

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{1,31}$")
#: A bed is taken by a placement assigned to the site that is waiting for its transfer
#: (pending: the bed is reserved) or there (active).
HOLDS_BED = (PlacementStatus.pending, PlacementStatus.active)


def create_site(*, db_session: Session, principal: Principal, data: SiteCreate) -> IsolationSite:
    """Register a centralised site. Refuses a malformed or taken code, an unknown kind or
    region, a region outside the user's subtree, and non-positive rooms or beds."""
    principal.require(Perm.isolation_write)
    problems: list[FieldProblem] = []
    if not CODE_RE.match(data.code):
        problems.append(FieldProblem("code", "isolation.bad_code"))
    if not data.name.strip():
        problems.append(FieldProblem("name", "field.required"))
    if data.kind not in SiteKind.__members__:
        problems.append(FieldProblem("kind", "isolation.unknown_site_kind", {"value": data.kind}))
    for name, value in (("rooms", data.rooms), ("beds", data.beds)):
        if value <= 0:
            problems.append(FieldProblem(name, "field.must_be_positive"))
    if region_service.get(db_session=db_session, code=data.region_code) is None:
        problems.append(
            FieldProblem("region_code", "error.region_unknown", {"region": data.region_code})
        )
    if problems:
        raise InvalidInput(problems=problems)
    principal.require_region(data.region_code)
    if db_session.execute(select(IsolationSite.id).where(IsolationSite.code == data.code)).first():
        raise Conflict("isolation.site_code_taken", code=data.code)
    site = IsolationSite(
        code=data.code,
        name=data.name.strip(),
        kind=data.kind,
        region_code=data.region_code,
        address=data.address,
        rooms=data.rooms,
        beds=data.beds,
        active=True,
        created_at=clock.now(),
    )
    db_session.add(site)
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="site.create",
        target_type="isolation_site",
        target_id=site.id,
        region_code=site.region_code,
        details={"code": site.code, "kind": site.kind, "beds": site.beds},
    )
    return site


def get_site(*, db_session: Session, principal: Principal, code: str) -> IsolationSite:
    """A site by code inside the principal's region (else not found)."""
    principal.require(Perm.isolation_read)
    site = db_session.execute(
        select(IsolationSite).where(IsolationSite.code == code[:40])
    ).scalar_one_or_none()
    if site is None or not principal.scope.contains(site.region_code):
        raise NotFound("isolation.site_not_found", site=code[:40])
    return site


def occupancy(db_session: Session, site_ids: Sequence[int]) -> dict[int, int]:
    """Beds taken per site (placements waiting for transfer there, or there)."""
    if not site_ids:
        return {}
    rows = db_session.execute(
        select(Placement.site_id, func.count())
        .where(Placement.site_id.in_(site_ids), Placement.status.in_(HOLDS_BED))
        .group_by(Placement.site_id)
    ).all()
    taken = {int(site_id or 0): int(n) for site_id, n in rows}
    return {sid: taken.get(sid, 0) for sid in site_ids}


def list_sites(
    *,
    db_session: Session,
    principal: Principal,
    region_code: str | None = None,
    kind: str | None = None,
) -> list[IsolationSite]:
    """Sites in the region (the principal's own by default), by code."""
    principal.require(Perm.isolation_read)
    conds = [principal.scope.clause(IsolationSite.region_code)]
    if region_code:
        principal.require_region(region_code)
        scope = region_service.scope_of(db_session=db_session, code=region_code)
        conds.append(scope.clause(IsolationSite.region_code))
    if kind:
        conds.append(IsolationSite.kind == kind)
    return list(
        db_session.execute(select(IsolationSite).where(*conds).order_by(IsolationSite.code))
        .scalars()
        .all()
    )


def basics_of(db_session: Session, site_id: int) -> list[BasicRead]:
    """Every basic of a site: its last report, or ``ok`` with no time when never reported."""
    rows = {
        b.item: b
        for b in db_session.execute(select(SiteBasic).where(SiteBasic.site_id == site_id))
        .scalars()
        .all()
    }
    out: list[BasicRead] = []
    for item in Basic:
        row = rows.get(item.value)
        out.append(
            BasicRead(
                item=item.value,
                status=row.status if row else BasicStatus.ok.value,
                note=row.note if row else "",
                updated_at=row.updated_at if row else None,
            )
        )
    return out


def to_read(db_session: Session, site: IsolationSite, taken: int | None = None) -> SiteRead:
    if taken is None:
        taken = occupancy(db_session, [site.id])[site.id]
    return SiteRead(
        id=site.id,
        code=site.code,
        name=site.name,
        kind=site.kind,
        region_code=site.region_code,
        address=site.address,
        rooms=site.rooms,
        beds=site.beds,
        occupied=taken,
        free=max(site.beds - taken, 0),
        basics=basics_of(db_session, site.id),
    )


def update_basic(
    *, db_session: Session, principal: Principal, code: str, item: str, status: str, note: str
) -> IsolationSite:
    """Report the state of one basic (water, power, heating, network): ``ok`` or ``problem``
    (a problem needs a note saying what is wrong). Audited."""
    principal.require(Perm.isolation_write)
    site = get_site(db_session=db_session, principal=principal, code=code)
    problems: list[FieldProblem] = []
    if item not in Basic.__members__:
        problems.append(FieldProblem("item", "isolation.unknown_basic", {"value": item}))
    if status not in BasicStatus.__members__:
        problems.append(FieldProblem("status", "isolation.unknown_basic_status", {"value": status}))
    if status == BasicStatus.problem and not note.strip():
        problems.append(FieldProblem("note", "isolation.problem_needs_note"))
    if problems:
        raise InvalidInput(problems=problems)
    row = db_session.get(SiteBasic, (site.id, item))
    if row is None:
        row = SiteBasic(site_id=site.id, item=item)
        db_session.add(row)
    row.status = status
    row.note = note.strip()[:200]
    row.updated_at = clock.now()
    row.updated_by = principal.user_id
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="site.update",
        target_type="isolation_site",
        target_id=site.id,
        region_code=site.region_code,
        details={"basic": item, "status": status, "note": row.note},
    )
    return site
