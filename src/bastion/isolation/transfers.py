"""Transfers (转运): tasks appear when a person must move; batches carry them with a vehicle and
an escort, pending → dispatched → arrived, or failed with a reason. Assignment to a site never
overbooks it. Daily closure (日清日结): a task still open from before today is red.

A task is cancelled (with its reason in ``failure_reason``) when the move is no longer needed:
its person became a case (:func:`bastion.isolation.service.place_needs`), or their case was
closed before they moved, or they died (:func:`bastion.isolation.service.end_for_cases`). A
cancelled task is finished: it is never batched, and a batch it was in moves on without it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import Conflict, FieldProblem, InvalidInput, InvalidTransition, NotFound
from bastion.isolation import figures
from bastion.isolation.enums import OPEN_TRANSFER, SITE_KINDS_FOR, Setting, TransferStatus
from bastion.isolation.models import IsolationSite, Placement, TransferBatch, TransferTask
from bastion.isolation.schemas import BatchCreate
from bastion.isolation.sites import HOLDS_BED

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{1,39}$")
#: A task that may be put in a batch: waiting, or back after a failed batch.
BATCHABLE = (TransferStatus.pending, TransferStatus.failed)


def is_red(task: TransferTask, today: date) -> bool:
    """日清日结: a task still open (pending, dispatched or failed) that appeared before today."""
    return task.status in OPEN_TRANSFER and task.created_on < today


def list_tasks(
    *,
    db_session: Session,
    principal: Principal,
    status: str | None = None,
    red_only: bool = False,
    kind: str | None = None,
    limit: int = 500,
) -> list[TransferTask]:
    """Transfer tasks of people living in the principal's region, oldest first. ``status``:
    one status, or ``open`` (pending, dispatched, failed); ``red_only``: the open ones from
    before today (daily closure)."""
    principal.require(Perm.isolation_read)
    conds = [principal.scope.clause(TransferTask.region_code)]
    if status == "open":
        conds.append(TransferTask.status.in_(OPEN_TRANSFER))
    elif status:
        conds.append(TransferTask.status == status)
    if kind:
        conds.append(TransferTask.kind == kind)
    if red_only:
        conds += [TransferTask.status.in_(OPEN_TRANSFER), TransferTask.created_on < clock.today()]
    return list(
        db_session.execute(
            select(TransferTask)
            .where(*conds)
            .order_by(TransferTask.created_on, TransferTask.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )


def get_batch(*, db_session: Session, principal: Principal, batch_id: int) -> TransferBatch:
    principal.require(Perm.isolation_read)
    batch = db_session.get(TransferBatch, batch_id)
    if batch is None or not principal.scope.contains(batch.region_code):
        raise NotFound("transfer.batch_not_found", batch=batch_id)
    return batch


def tasks_of(db_session: Session, batch_id: int) -> list[TransferTask]:
    return list(
        db_session.execute(
            select(TransferTask).where(TransferTask.batch_id == batch_id).order_by(TransferTask.id)
        )
        .scalars()
        .all()
    )


def _locked_site(db_session: Session, code: str) -> IsolationSite:
    # Lock the site row before counting its beds: two batches assigning people to the same
    # site at once would otherwise both count the same free beds and together overbook it.
    # (On SQLite the database-wide write lock serialises the two transactions instead.)
    site = db_session.execute(
        select(IsolationSite).where(IsolationSite.code == code[:40]).with_for_update()
    ).scalar_one_or_none()
    if site is None or not site.active:
        raise NotFound("isolation.site_not_found", site=code[:40])
    return site


def _free_beds(db_session: Session, site: IsolationSite) -> int:
    from sqlalchemy import func

    taken = db_session.execute(
        select(func.count())
        .select_from(Placement)
        .where(Placement.site_id == site.id, Placement.status.in_(HOLDS_BED))
    ).scalar_one()
    return site.beds - int(taken)


def create_batch(*, db_session: Session, principal: Principal, data: BatchCreate) -> TransferBatch:
    """Put open tasks in a batch with a vehicle and an escort. A batch to a site assigns each
    person a bed there: refused when the site has fewer free beds than people (naming the site
    and its free beds), or is of a kind that does not fit a task (a case goes to a hospital or
    makeshift hospital, a contact to a hotel or other centralised site). A batch home carries
    released people and names no site. Refuses tasks not found in the principal's region and
    tasks already in a live batch or finished. People from several cities, or from another
    city than the site's, make the batch cross-region."""
    principal.require(Perm.transfers_write)
    problems: list[FieldProblem] = []
    if not CODE_RE.match(data.code):
        problems.append(FieldProblem("code", "transfer.bad_code"))
    for name in ("vehicle", "escort"):
        if not getattr(data, name).strip():
            problems.append(FieldProblem(name, "field.required"))
    if problems:
        raise InvalidInput(problems=problems)
    ids = sorted(set(data.tasks))
    tasks = {
        t.id: t
        for t in db_session.execute(select(TransferTask).where(TransferTask.id.in_(ids))).scalars()
    }
    for task_id in ids:
        task = tasks.get(task_id)
        if task is None or not principal.scope.contains(task.region_code):
            raise NotFound("transfer.task_not_found", task=task_id)
    for task in tasks.values():
        if task.status not in BATCHABLE or (task.status == "pending" and task.batch_id):
            problems.append(
                FieldProblem(
                    "tasks", "transfer.task_not_open", {"task": task.id, "status": task.status}
                )
            )
        if (task.kind == "to_home") != (data.site is None):
            problems.append(FieldProblem("site", "transfer.site_unfit", {"task": task.id}))
    if problems:
        raise InvalidInput(problems=problems)
    if db_session.execute(select(TransferBatch.id).where(TransferBatch.code == data.code)).first():
        raise Conflict("transfer.batch_code_taken", code=data.code)

    site: IsolationSite | None = None
    if data.site is not None:
        site = _locked_site(db_session, data.site)
        for task in tasks.values():
            fits = SITE_KINDS_FOR.get(Setting(task.destination), ())
            if site.kind not in fits:
                problems.append(
                    FieldProblem(
                        "site",
                        "transfer.site_kind_unfit",
                        {"task": task.id, "kind": site.kind, "destination": task.destination},
                    )
                )
        if problems:
            raise InvalidInput(problems=problems)
        free = _free_beds(db_session, site)
        if len(ids) > free:
            raise Conflict("transfer.site_full", site=site.code, free=max(free, 0), needed=len(ids))

    cities = figures.city_resolver(db_session)
    origin = {cities(t.region_code) for t in tasks.values()}
    cross = len(origin) > 1 or (site is not None and {cities(site.region_code)} != origin)
    first = tasks[ids[0]]
    batch = TransferBatch(
        code=data.code,
        region_code=cities(first.region_code)
        if len(origin) == 1
        else first.region_code[:2] + "0000",
        site_id=site.id if site else None,
        vehicle=data.vehicle.strip(),
        escort=data.escort.strip(),
        cross_region=cross,
        status="pending",
        created_by=principal.user_id,
        created_at=clock.now(),
    )
    db_session.add(batch)
    db_session.flush()
    db_session.execute(
        update(TransferTask)
        .where(TransferTask.id.in_(ids))
        .values(
            batch_id=batch.id,
            site_id=site.id if site else None,
            status="pending",
            failure_reason=None,
        ),
        execution_options={"synchronize_session": False},
    )
    for task_id, note in data.special_needs.items():
        if task_id in tasks:
            tasks[task_id].special_needs = note.strip()[:500]
    if site is not None:
        # The beds are taken from now on: the placements are assigned to the site.
        db_session.execute(
            update(Placement)
            .where(Placement.id.in_([t.placement_id for t in tasks.values()]))
            .values(site_id=site.id),
            execution_options={"synchronize_session": False},
        )
    db_session.flush()
    db_session.expire_all()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action="transfer.create",
        target_type="transfer_batch",
        target_id=batch.id,
        region_code=batch.region_code,
        details={"code": batch.code, "people": len(ids), "site": data.site, "cross": cross},
    )
    return batch


def _move(
    db_session: Session,
    principal: Principal,
    batch_id: int,
    *,
    allowed: Sequence[str],
    to: str,
    action: str,
    reason: str | None = None,
) -> TransferBatch:
    principal.require(Perm.transfers_write)
    batch = get_batch(db_session=db_session, principal=principal, batch_id=batch_id)
    if batch.status not in allowed:
        raise InvalidTransition("transfer.bad_transition", status=batch.status, to=to)
    now = clock.now()
    batch.status = to
    if to == "dispatched":
        batch.dispatched_at = now
    else:
        batch.finished_at = now
    if reason is not None:
        batch.failure_reason = reason
    # A task cancelled while in the batch (its person's case was closed, or they became a
    # case) stays cancelled: the vehicle's progress no longer concerns it.
    tasks = [t for t in tasks_of(db_session, batch.id) if t.status != TransferStatus.cancelled]
    for task in tasks:
        task.status = to
        if to == "arrived":
            task.arrived_at = now
        if reason is not None:
            task.failure_reason = reason
    placement_ids = [t.placement_id for t in tasks]
    if to == "arrived":
        # Arrival starts the waiting placements: at the site, or home monitoring at home.
        db_session.execute(
            update(Placement)
            .where(Placement.id.in_(placement_ids), Placement.status == "pending")
            .values(status="active"),
            execution_options={"synchronize_session": False},
        )
    elif to == "failed" and batch.site_id is not None:
        # The beds are given back; the tasks wait for another batch.
        db_session.execute(
            update(Placement)
            .where(Placement.id.in_(placement_ids), Placement.status == "pending")
            .values(site_id=None),
            execution_options={"synchronize_session": False},
        )
    db_session.flush()
    audit_service.record(
        db_session=db_session,
        actor=principal,
        action=action,
        target_type="transfer_batch",
        target_id=batch.id,
        region_code=batch.region_code,
        details={"people": len(tasks), **({"reason": reason} if reason else {})},
    )
    return batch


def dispatch(*, db_session: Session, principal: Principal, batch_id: int) -> TransferBatch:
    """The vehicle leaves: pending → dispatched."""
    return _move(
        db_session,
        principal,
        batch_id,
        allowed=("pending",),
        to="dispatched",
        action="transfer.dispatch",
    )


def arrive(*, db_session: Session, principal: Principal, batch_id: int) -> TransferBatch:
    """The vehicle arrived: dispatched → arrived; the people's placements become active."""
    return _move(
        db_session,
        principal,
        batch_id,
        allowed=("dispatched",),
        to="arrived",
        action="transfer.arrive",
    )


def fail(*, db_session: Session, principal: Principal, batch_id: int, reason: str) -> TransferBatch:
    """The batch did not make it (a reason is required): its tasks are open again (failed, and
    red from tomorrow until a new batch carries them) and the site's beds are given back."""
    if not reason.strip():
        raise InvalidInput.one("reason", "field.required")
    return _move(
        db_session,
        principal,
        batch_id,
        allowed=("pending", "dispatched"),
        to="failed",
        action="transfer.fail",
        reason=reason.strip()[:500],
    )
