"""Rounds, sampling sites and labs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import date, time, timedelta
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import Conflict, FieldProblem, Forbidden, InvalidInput, NotFound
from bastion.regions import service as region_service
from bastion.regions.codes import Scope
from bastion.regions.models import Zone
from bastion.testing import coverage, exemptions, pooling
from bastion.testing.models import Lab, Round, Site, SiteGrid
from bastion.testing.schemas import LabCreate, LabUpdate, RoundCreate, SiteCreate

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{1,39}$")
DEFAULT_ROUND_HOURS = 24
ZONE_STRICTNESS = {"lockdown": 3, "high": 3, "control": 2, "medium": 2, "precaution": 1, "low": 1}
#: Upper bounds of a site's and a lab's counts: far above any real one, and inside their
#: columns (``teams`` is a small integer: a larger number would fail in the database).
MAX_TEAMS = 1_000
MAX_CAPACITY_PER_HOUR = 100_000
MAX_DAILY_CAPACITY = 10_000_000


def _check_code(field: str, value: str, problems: list[FieldProblem]) -> None:
    if not CODE_RE.match(value):
        problems.append(FieldProblem(field, "testing.bad_code"))


def local_times(problems: list[FieldProblem], **times: time | None) -> bool:
    """Whether every given opening time is a plain local wall-clock time; one sent with an
    offset is refused naming its field (it could not be compared with the others)."""
    plain = True
    for name, value in times.items():
        if value is not None and value.tzinfo is not None:
            problems.append(FieldProblem(name, "site.time_with_offset"))
            plain = False
    return plain


def check_count(field: str, value: int, maximum: int, problems: list[FieldProblem]) -> None:
    """A count that must be positive and at most ``maximum``."""
    if value <= 0:
        problems.append(FieldProblem(field, "field.must_be_positive"))
    elif value > maximum:
        problems.append(FieldProblem(field, "field.out_of_range", {"min": 1, "max": maximum}))


# Rounds ----------------------------------------------------------------------------------------


def create_round(*, db_session: Session, principal: Principal, data: RoundCreate) -> Round:
    """Open a round over a region subtree. Refuses a malformed code, a region outside the user's
    subtree, a deadline before the start, a pool policy over 20 or of unknown sizes, and a code
    already used."""
    principal.require(Perm.rounds_manage)
    problems: list[FieldProblem] = []
    _check_code("code", data.code, problems)
    if not data.name.strip():
        problems.append(FieldProblem("name", "field.required"))
    if data.starts_at.tzinfo is None:
        problems.append(FieldProblem("starts_at", "field.needs_timezone"))
    deadline = data.deadline_at or data.starts_at + timedelta(hours=DEFAULT_ROUND_HOURS)
    if deadline.tzinfo is None:
        problems.append(FieldProblem("deadline_at", "field.needs_timezone"))
    elif data.starts_at.tzinfo is not None and deadline <= data.starts_at:
        problems.append(FieldProblem("deadline_at", "round.deadline_before_start"))
    try:
        policy = pooling.PoolPolicy.from_dict(dict(data.pool_policy))
    except pooling.PoolPolicyError as err:
        problems.append(FieldProblem(f"pool_policy.{err.field}", err.reason, dict(err.params)))
        policy = pooling.PoolPolicy()
    problems.extend(exemptions.problems(data.exemptions))
    if problems:
        raise InvalidInput(problems=problems)
    region_service.get_or_404(db_session=db_session, code=data.region_code)
    principal.require_region(data.region_code)
    if db_session.execute(select(Round.id).where(Round.code == data.code)).first():
        raise Conflict(
            "round.code_taken",
            code=data.code,
            problems=[FieldProblem("code", "round.code_taken", {"code": data.code})],
        )
    rnd = Round(
        code=data.code,
        name=data.name.strip(),
        region_code=data.region_code,
        starts_at=data.starts_at,
        deadline_at=deadline,
        status="open",
        pool_policy=json.dumps(policy.to_dict()),
        exemptions=json.dumps(data.exemptions, ensure_ascii=False),
        created_by=principal.user_id,
        created_at=clock.now(),
    )
    db_session.add(rnd)
    db_session.flush()
    # Who must be tested is counted once, when the round opens (the coverage denominator).
    coverage.snapshot_required(db_session=db_session, round_id=rnd.id)
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="round.create",
        target_type="round",
        target_id=rnd.id,
        region_code=rnd.region_code,
        details={"code": rnd.code, "policy": policy.to_dict()},
    )
    return rnd


def policy_of(rnd: Round) -> pooling.PoolPolicy:
    return pooling.PoolPolicy.from_dict(json.loads(rnd.pool_policy))


def get_round(*, db_session: Session, principal: Principal, ref: str | int) -> Round:
    """A round by id, by code, or ``"latest"``, inside the principal's subtree."""
    stmt = select(Round)
    text_ref = str(ref)
    # Refuse what cannot be a round before it reaches the database: an id past the integer
    # range or a code with a NUL byte would otherwise fail there rather than say "not found".
    if text_ref != "latest" and not (
        (text_ref.isascii() and text_ref.isdigit() and len(text_ref) <= 9)
        or CODE_RE.match(text_ref)
    ):
        raise NotFound("round.not_found", round=text_ref[:40])
    if ref == "latest":
        stmt = stmt.where(principal.scope.clause(Round.region_code)).order_by(
            Round.starts_at.desc(), Round.id.desc()
        )
    elif isinstance(ref, int) or (text_ref.isascii() and text_ref.isdigit() and len(text_ref) <= 9):
        stmt = stmt.where(Round.id == int(ref))
    else:
        stmt = stmt.where(Round.code == str(ref))
    rnd = db_session.execute(stmt.limit(1)).scalar_one_or_none()
    if rnd is None or not _round_visible(principal, rnd):
        raise NotFound("round.not_found", round=str(ref))
    return rnd


def _round_visible(principal: Principal, rnd: Round) -> bool:
    """A user sees a round that covers their region or lies inside it."""
    return principal.scope.contains(rnd.region_code) or rnd.region_code in principal.ancestors


def list_rounds(*, db_session: Session, principal: Principal) -> Sequence[Round]:
    principal.require(Perm.testing_read)
    rows = db_session.execute(select(Round).order_by(Round.starts_at.desc())).scalars().all()
    return [r for r in rows if _round_visible(principal, r)]


def close_round(*, db_session: Session, principal: Principal, ref: str | int) -> Round:
    principal.require(Perm.rounds_manage)
    rnd = get_round(db_session=db_session, principal=principal, ref=ref)
    principal.require_region(rnd.region_code)
    if rnd.status == "closed":
        raise Conflict("round.already_closed")
    rnd.status = "closed"
    rnd.closed_at = clock.now()
    db_session.flush()
    # Who is excused now is written down: the closed round's figures stand still (ADR 0009).
    coverage.freeze_excused(db_session=db_session, rnd=rnd)
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="round.close",
        target_type="round",
        target_id=rnd.id,
        region_code=rnd.region_code,
    )
    return rnd


# Zones and pool sizes --------------------------------------------------------------------------


def zone_kind_of(*, db_session: Session, region_code: str, on: date) -> str | None:
    """The strictest zone in force on ``on`` over ``region_code`` or any of its ancestors."""
    chain = [r.code for r in region_service.ancestors(db_session=db_session, code=region_code)]
    if not chain:
        return None
    kinds = db_session.execute(
        select(Zone.kind).where(
            Zone.region_code.in_(chain),
            Zone.starts_on <= on,
            (Zone.ends_on.is_(None)) | (Zone.ends_on >= on),
        )
    ).scalars()
    best: str | None = None
    for kind in kinds:
        if best is None or ZONE_STRICTNESS[kind] > ZONE_STRICTNESS[best]:
            best = kind
    return best


def planned_size(
    *, db_session: Session, rnd: Round, region_code: str, on: date
) -> pooling.PoolSize:
    """The pool size ``rnd``'s policy plans at a site in ``region_code`` (its zone's, on ``on``):
    a number of people, or one tube per household."""
    return policy_of(rnd).size_for(
        zone_kind_of(db_session=db_session, region_code=region_code, on=on)
    )


def planned_capacity(*, db_session: Session, rnd: Round, region_code: str, on: date) -> int:
    """How many people one tube may hold at a site in ``region_code`` during ``rnd``."""
    return pooling.capacity(
        planned_size(db_session=db_session, rnd=rnd, region_code=region_code, on=on)
    )


# Sites and labs --------------------------------------------------------------------------------


def create_site(*, db_session: Session, principal: Principal, data: SiteCreate) -> Site:
    """Register a sampling site and the grids it serves. Refuses (naming the field) a malformed
    code, an unknown region or grid, grids outside the site's region (``grids``), non-positive
    capacity or teams, closing before opening, and a code already used; a region or grid
    outside the user's subtree is forbidden. Audited (``site.create``); a refusal records
    nothing."""
    principal.require(Perm.sites_manage)
    problems: list[FieldProblem] = []
    _check_code("code", data.code, problems)
    if not data.name.strip():
        problems.append(FieldProblem("name", "field.required"))
    check_count("capacity_per_hour", data.capacity_per_hour, MAX_CAPACITY_PER_HOUR, problems)
    check_count("teams", data.teams, MAX_TEAMS, problems)
    if local_times(problems, opens_at=data.opens_at, closes_at=data.closes_at) and (
        data.closes_at <= data.opens_at
    ):
        problems.append(FieldProblem("closes_at", "site.closes_before_opening"))
    site_region = region_service.get(db_session=db_session, code=data.region_code)
    if site_region is None:
        problems.append(
            FieldProblem("region_code", "error.region_unknown", {"region": data.region_code})
        )
    within = (
        region_service.scope_of(db_session=db_session, code=data.region_code)
        if site_region is not None
        else None
    )
    for grid in data.grids:
        if region_service.get(db_session=db_session, code=grid) is None:
            problems.append(FieldProblem("grids", "error.region_unknown", {"region": grid}))
        elif within is not None and not within.contains(grid):
            problems.append(
                FieldProblem(
                    "grids", "site.grid_outside_region", {"grid": grid, "region": data.region_code}
                )
            )
    if problems:
        raise InvalidInput(problems=problems)
    principal.require_region(data.region_code)
    for grid in data.grids:
        principal.require_region(grid)
    if db_session.execute(select(Site.id).where(Site.code == data.code)).first():
        raise Conflict(
            "site.code_taken",
            code=data.code,
            problems=[FieldProblem("code", "site.code_taken", {"code": data.code})],
        )
    site = Site(
        code=data.code,
        name=data.name.strip(),
        region_code=data.region_code,
        address=data.address,
        teams=data.teams,
        opens_at=data.opens_at,
        closes_at=data.closes_at,
        capacity_per_hour=data.capacity_per_hour,
        active=True,
    )
    db_session.add(site)
    db_session.flush()
    grids = sorted(set(data.grids))
    db_session.add_all(SiteGrid(site_id=site.id, region_code=g) for g in grids)
    db_session.flush()
    _audit(
        db_session,
        principal,
        "create",
        site,
        {
            "name": site.name,
            "region_code": site.region_code,
            "capacity_per_hour": site.capacity_per_hour,
            "teams": site.teams,
            "grids": grids,
        },
    )
    return site


def get_site(*, db_session: Session, principal: Principal, code: str) -> Site:
    site = db_session.execute(select(Site).where(Site.code == code)).scalar_one_or_none()
    if site is None or not principal.scope.contains(site.region_code):
        raise NotFound("site.not_found", site=code)
    return site


def create_lab(*, db_session: Session, principal: Principal, data: LabCreate) -> Lab:
    """Register a lab with its daily capacity in tubes. Audited (``lab.create``); a refusal
    records nothing."""
    principal.require(Perm.labs_manage)
    problems: list[FieldProblem] = []
    _check_code("code", data.code, problems)
    if not data.name.strip():
        problems.append(FieldProblem("name", "field.required"))
    check_count("daily_capacity", data.daily_capacity, MAX_DAILY_CAPACITY, problems)
    if region_service.get(db_session=db_session, code=data.region_code) is None:
        problems.append(
            FieldProblem("region_code", "error.region_unknown", {"region": data.region_code})
        )
    if problems:
        raise InvalidInput(problems=problems)
    principal.require_region(data.region_code)
    if db_session.execute(select(Lab.id).where(Lab.code == data.code)).first():
        raise Conflict(
            "lab.code_taken",
            code=data.code,
            problems=[FieldProblem("code", "lab.code_taken", {"code": data.code})],
        )
    lab = Lab(
        code=data.code,
        name=data.name.strip(),
        region_code=data.region_code,
        daily_capacity=data.daily_capacity,
        active=True,
    )
    db_session.add(lab)
    db_session.flush()
    _audit(
        db_session,
        principal,
        "create",
        lab,
        {"name": lab.name, "region_code": lab.region_code, "daily_capacity": lab.daily_capacity},
    )
    return lab


def get_lab(*, db_session: Session, principal: Principal, code: str) -> Lab:
    lab = db_session.execute(select(Lab).where(Lab.code == code)).scalar_one_or_none()
    if lab is None:
        raise NotFound("lab.not_found", lab=code)
    return lab


def list_labs(
    *,
    db_session: Session,
    principal: Principal,
    region_code: str | None = None,
    active: bool | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[Lab], int]:
    """Labs in the caller's subtree (or in ``region_code``'s, which must lie inside it: 403
    otherwise), by code, a page at a time, with the total; ``active`` keeps one state only."""
    principal.require(Perm.testing_read)
    return page_of(
        db_session,
        principal,
        Lab,
        region_code=region_code,
        active=active,
        offset=offset,
        limit=limit,
    )


#: What ``page_of`` lists.
_Listed = TypeVar("_Listed", Site, Lab)


def page_of(
    db_session: Session,
    principal: Principal,
    model: type[_Listed],
    *,
    region_code: str | None,
    active: bool | None,
    offset: int,
    limit: int,
) -> tuple[list[_Listed], int]:
    """A page of the sites or labs (``model``) in the caller's subtree, or in ``region_code``'s
    (which must lie inside it), by code, with the total; ``active`` keeps one state only."""
    conds: list[Any] = [principal.scope.clause(model.region_code)]
    if region_code is not None:
        conds.append(region_scope(db_session, principal, region_code).clause(model.region_code))
    if active is not None:
        conds.append(model.active.is_(active))
    total = db_session.execute(select(func.count()).select_from(model).where(*conds)).scalar_one()
    rows = db_session.execute(
        select(model).where(*conds).order_by(model.code).offset(offset).limit(limit)
    ).scalars()
    return list(rows), int(total)


def update_lab(*, db_session: Session, principal: Principal, code: str, data: LabUpdate) -> Lab:
    """Change a lab's name, daily capacity or active flag (a field left out stays). Refuses a
    blank name and a capacity that is not positive or is out of range, naming the field; a lab
    outside the user's subtree is forbidden. Audited when something changed."""
    principal.require(Perm.labs_manage)
    lab = get_lab(db_session=db_session, principal=principal, code=code)
    principal.require_region(lab.region_code)
    problems: list[FieldProblem] = []
    if data.name is not None and not data.name.strip():
        problems.append(FieldProblem("name", "field.required"))
    if data.daily_capacity is not None:
        check_count("daily_capacity", data.daily_capacity, MAX_DAILY_CAPACITY, problems)
    if problems:
        raise InvalidInput(problems=problems)
    wanted: dict[str, Any] = {
        "name": None if data.name is None else data.name.strip(),
        "daily_capacity": data.daily_capacity,
        "active": data.active,
    }
    audit_changes(db_session, principal, lab, apply_changes(lab, wanted))
    return lab


def audit_changes(
    db_session: Session,
    principal: Principal,
    record: Site | Lab,
    changes: dict[str, list[Any]],
) -> None:
    """Record ``changes`` to a site or lab as one ``site.update`` or ``lab.update`` entry; a
    change that changed nothing records nothing."""
    if not changes:
        return
    db_session.flush()
    _audit(db_session, principal, "update", record, {"changes": changes})


def _audit(
    db_session: Session,
    principal: Principal,
    verb: str,
    record: Site | Lab,
    details: dict[str, Any],
) -> None:
    """One ``site.<verb>`` or ``lab.<verb>`` audit entry naming the record and its code."""
    kind = "site" if isinstance(record, Site) else "lab"
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action=f"{kind}.{verb}",
        target_type=kind,
        target_id=record.id,
        region_code=record.region_code,
        details={"code": record.code, **details},
    )


def apply_changes(record: object, wanted: dict[str, Any]) -> dict[str, list[Any]]:
    """Set each attribute of ``wanted`` that is not None and differs; what changed, as
    ``{name: [before, after]}`` (for the audit entry)."""
    changes: dict[str, list[Any]] = {}
    for name, value in wanted.items():
        before = getattr(record, name)
        if value is not None and value != before:
            setattr(record, name, value)
            changes[name] = [_plain(before), _plain(value)]
    return changes


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, time) else value


def region_scope(db_session: Session, principal: Principal, region_code: str) -> Scope:
    """The subtree of the ``region`` filter: 404 for an unknown region, 403 for one outside the
    caller's own subtree (both naming the field)."""
    if region_service.get(db_session=db_session, code=region_code) is None:
        raise NotFound(
            "error.region_unknown",
            region=region_code[:40],
            problems=[FieldProblem("region", "error.region_unknown", {"region": region_code[:40]})],
        )
    if not principal.scope.contains(region_code):
        raise Forbidden(
            "error.region_outside",
            region=region_code,
            problems=[FieldProblem("region", "error.region_outside", {"region": region_code})],
        )
    return region_service.scope_of(db_session=db_session, code=region_code)
