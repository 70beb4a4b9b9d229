"""Read views of placements, transfer tasks and batches: person fields masked unless the caller
may unmask and asked to (every unmask audited), red flags of daily closure, release blockers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.i18n import Language, t
from bastion.isolation import service, transfers
from bastion.isolation.models import (
    IsolationSite,
    Placement,
    PlacementTest,
    TransferBatch,
    TransferTask,
)
from bastion.isolation.schemas import (
    BatchRead,
    PlacementRead,
    TestRead,
    TestTaskRead,
    TransferTaskRead,
)
from bastion.registry.idnumber import mask_name
from bastion.registry.models import Person


def _unmask(principal: Principal, unmask: bool) -> bool:
    if unmask:
        principal.require(Perm.personal_unmask)
    return unmask


def _people(
    db_session: Session, principal: Principal, person_ids: Sequence[int], unmasked: bool
) -> dict[int, tuple[str, str]]:
    """(name, ID number) per person, masked unless ``unmasked`` (then each unmask audited)."""
    from bastion.core import crypto

    if not person_ids:
        return {}
    people = db_session.execute(
        select(Person).where(Person.id.in_(sorted(set(person_ids))))
    ).scalars()
    out: dict[int, tuple[str, str]] = {}
    for p in people:
        if unmasked:
            out[p.id] = (p.name, crypto.decrypt(p.id_cipher))
            audit_service.record(
                db_session=db_session,
                actor=principal,
                action="person.unmask",
                target_type="person",
                target_id=p.id,
                region_code=p.region_code,
            )
        else:
            out[p.id] = (mask_name(p.name), p.id_masked)
    return out


def _site_codes(db_session: Session, ids: Sequence[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    rows = db_session.execute(
        select(IsolationSite.id, IsolationSite.code).where(IsolationSite.id.in_(wanted))
    ).all()
    return {int(i): str(c) for i, c in rows}


def placements(
    db_session: Session,
    principal: Principal,
    rows: Sequence[Placement],
    *,
    unmask: bool = False,
    detail: bool = False,
    lang: Language = "zh-CN",
) -> list[PlacementRead]:
    """The API view of placements; ``detail`` adds test days and release blockers."""
    unmasked = _unmask(principal, unmask)
    people = _people(db_session, principal, [p.person_id for p in rows], unmasked)
    sites = _site_codes(db_session, [p.site_id for p in rows])
    today = clock.today()
    out: list[PlacementRead] = []
    for p in rows:
        name, number = people.get(p.person_id, ("", ""))
        note = service.profile_note(db_session, p)
        view = PlacementRead(
            id=p.id,
            person_id=p.person_id,
            person_name=name,
            person_id_number=number,
            masked=not unmasked,
            region_code=p.region_code,
            setting=p.setting,
            reason=p.reason,
            source_type=p.source_type,
            source_id=p.source_id,
            profile=p.profile,
            profile_note=t(note, lang, profile=p.profile) if note else None,
            status=p.status,
            starts_on=p.starts_on,
            planned_end_on=p.planned_end_on,
            released_on=p.released_on,
            site_code=sites.get(p.site_id) if p.site_id else None,
            follows_id=p.follows_id,
            override_reason=p.override_reason,
        )
        if detail:
            view.tests = [
                TestRead(
                    day_no=x.day_no,
                    due_on=x.due_on,
                    result=x.result,
                    tested_on=x.tested_on,
                    tube_barcode=x.tube_barcode,
                )
                for x in service.tests_of(db_session, p.id)
            ]
            if p.status == "active":
                view.release_blockers = [
                    t(
                        b.key,
                        lang,
                        day=b.day_no or "",
                        due_on=b.due_on.isoformat() if b.due_on else "",
                    )
                    for b in service.blockers_of(db_session, p, today)
                ]
        out.append(view)
    return out


def tasks(
    db_session: Session, principal: Principal, rows: Sequence[TransferTask], *, unmask: bool = False
) -> list[TransferTaskRead]:
    unmasked = _unmask(principal, unmask)
    people = _people(db_session, principal, [x.person_id for x in rows], unmasked)
    sites = _site_codes(db_session, [x.site_id for x in rows])
    batch_ids = sorted({x.batch_id for x in rows if x.batch_id is not None})
    batches = (
        dict(
            db_session.execute(
                select(TransferBatch.id, TransferBatch.code).where(TransferBatch.id.in_(batch_ids))
            ).all()
        )
        if batch_ids
        else {}
    )
    today = clock.today()
    return [
        TransferTaskRead(
            id=x.id,
            person_id=x.person_id,
            person_name=people.get(x.person_id, ("", ""))[0],
            masked=not unmasked,
            placement_id=x.placement_id,
            region_code=x.region_code,
            kind=x.kind,
            destination=x.destination,
            site_code=sites.get(x.site_id) if x.site_id else None,
            batch_code=batches.get(x.batch_id) if x.batch_id else None,
            status=x.status,
            special_needs=x.special_needs,
            failure_reason=x.failure_reason,
            created_on=x.created_on,
            red=transfers.is_red(x, today),
        )
        for x in rows
    ]


def batch(db_session: Session, row: TransferBatch) -> BatchRead:
    people = db_session.execute(
        select(func.count()).select_from(TransferTask).where(TransferTask.batch_id == row.id)
    ).scalar_one()
    site = _site_codes(db_session, [row.site_id]) if row.site_id else {}
    return BatchRead(
        id=row.id,
        code=row.code,
        region_code=row.region_code,
        site_code=site.get(row.site_id) if row.site_id else None,
        vehicle=row.vehicle,
        escort=row.escort,
        cross_region=row.cross_region,
        status=row.status,
        failure_reason=row.failure_reason,
        people=int(people),
        created_at=row.created_at,
        dispatched_at=row.dispatched_at,
        finished_at=row.finished_at,
    )


def day_test_tasks(
    db_session: Session,
    principal: Principal,
    rows: Sequence[tuple[PlacementTest, Placement]],
    *,
    unmask: bool = False,
) -> list[TestTaskRead]:
    unmasked = _unmask(principal, unmask)
    people = _people(db_session, principal, [p.person_id for _, p in rows], unmasked)
    sites = _site_codes(db_session, [p.site_id for _, p in rows])
    return [
        TestTaskRead(
            placement_id=p.id,
            person_id=p.person_id,
            person_name=people.get(p.person_id, ("", ""))[0],
            masked=not unmasked,
            region_code=p.region_code,
            setting=p.setting,
            site_code=sites.get(p.site_id) if p.site_id else None,
            day_no=x.day_no,
            due_on=x.due_on,
            result=x.result,
        )
        for x, p in rows
    ]
