"""The status store: recompute writes only what changed, with history sealed in the audit log."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bastion.audit import service as audit_service
from bastion.healthcode import history, store
from bastion.healthcode.models import CodeHistory, CodeStatus
from bastion.healthcode.rules import decide
from bastion.healthcode.sources import gather
from tests.integration.healthcode import records
from tests.support import factories
from tests.support.world import CHANGYI_GRID


def _status(db: Session, person_id: int) -> CodeStatus | None:
    return db.get(CodeStatus, person_id)


def test_case_and_contacts_get_their_colours_and_name_the_record(db: Session) -> None:
    patient, close, secondary, other = (factories.person(db) for _ in range(4))
    c = records.case(db, patient)
    k1 = records.contact(db, close, c)
    k2 = records.contact(db, secondary, c, level="secondary")
    result = store.recompute_people(
        db_session=db, person_ids=[patient.id, close.id, secondary.id, other.id]
    )
    assert result.changed == 3
    s = _status(db, patient.id)
    assert s is not None
    assert (s.colour, s.evidence_type, s.evidence_id, s.popup) == ("red", "case", str(c.id), "case")
    assert s.rule.endswith(":case")
    s = _status(db, close.id)
    assert s is not None
    assert (s.colour, s.evidence_type, s.evidence_id) == (
        "red",
        "contact",
        str(k1.id),
    )
    s = _status(db, secondary.id)
    assert s is not None
    assert (s.colour, s.evidence_id) == ("yellow", str(k2.id))
    assert _status(db, other.id) is None
    assert db.scalar(select(func.count()).select_from(CodeHistory)) == 3


def test_recompute_twice_changes_nothing_and_release_turns_green(db: Session) -> None:
    patient = factories.person(db)
    c = records.case(db, patient)
    store.recompute_people(db_session=db, person_ids=[patient.id])
    again = store.recompute_people(db_session=db, person_ids=[patient.id])
    assert again.changed == 0
    c.status = "discharged"
    c.closed_on = c.reported_on
    db.flush()
    released = store.recompute_people(db_session=db, person_ids=[patient.id])
    assert released.changed == 1
    s = _status(db, patient.id)
    assert s is not None
    assert s.colour == "green"
    assert s.version == 2
    rows = (
        db.execute(
            select(CodeHistory).where(CodeHistory.person_id == patient.id).order_by(CodeHistory.id)
        )
        .scalars()
        .all()
    )
    assert [(r.old_colour, r.new_colour) for r in rows] == [(None, "red"), ("red", "green")]


def test_strictest_colour_wins_across_sources(db: Session) -> None:
    p = factories.person(db)
    other = factories.person(db)
    c = records.case(db, other)
    k = records.contact(db, p, c, level="secondary")
    records.placement(db, p, reason="secondary_contact", source_type="contact", source_id=k.id)
    store.recompute_people(db_session=db, person_ids=[p.id])
    s = _status(db, p.id)
    assert s is not None
    assert s.colour == "yellow"
    assert s.rule.endswith(":secondary_contact")
    k.level = "close"
    records.placement(
        db, p, reason="close_contact", source_type="contact", source_id=k.id, setting="home"
    )
    store.recompute_people(db_session=db, person_ids=[p.id])
    s = _status(db, p.id)
    assert s is not None
    assert (s.colour, s.evidence_type, s.evidence_id) == (
        "red",
        "contact",
        str(k.id),
    )
    assert s.version == 2


def test_region_recompute_touches_only_the_region(db: Session) -> None:
    inside = factories.person(db)
    outside = factories.person(db, region_code=CHANGYI_GRID)
    records.case(db, inside)
    records.case(db, outside)
    result = store.recompute_region(db_session=db, region_code="220100")
    assert result.changed == 1
    assert _status(db, inside.id) is not None
    assert _status(db, outside.id) is None


def test_sql_ranking_agrees_with_the_pure_rules(db: Session) -> None:
    people = [factories.person(db) for _ in range(4)]
    c = records.case(db, people[0])
    records.contact(db, people[1], c)
    records.contact(db, people[2], c, level="secondary")
    records.placement(
        db,
        people[2],
        reason="secondary_contact",
        source_type="contact",
        source_id=c.id,
        setting="home_monitoring",
    )
    ids = [p.id for p in people]
    store.recompute_people(db_session=db, person_ids=ids)
    rules = store.current_rules(db)
    from bastion.core import clock

    evidence = gather(db_session=db, rules=rules, person_ids=ids, now=clock.now())
    for pid in ids:
        want = decide(evidence[pid], rules)
        s = _status(db, pid)
        got = (
            (s.colour, s.rule, s.evidence_type, s.evidence_id, s.popup)
            if s
            else ("green", rules.rule_name("default"), None, None, None)
        )
        assert got == (want.colour, want.rule, want.evidence_type, want.evidence_id, want.popup)


def test_history_is_sealed_and_an_edited_row_is_caught(db: Session) -> None:
    p = factories.person(db)
    records.case(db, p)
    store.recompute_people(db_session=db, person_ids=[p.id])
    assert history.verify(db_session=db).ok
    assert audit_service.verify(db_session=db).ok
    row = db.execute(select(CodeHistory).where(CodeHistory.person_id == p.id)).scalar_one()
    row.new_colour = "green"
    db.flush()
    report = history.verify(db_session=db)
    assert not report.ok
    assert "edited" in report.problems[0]


def test_a_row_moved_in_time_or_cause_breaks_its_seal(db: Session) -> None:
    from datetime import timedelta

    p = factories.person(db)
    records.case(db, p)
    store.recompute_people(db_session=db, person_ids=[p.id])
    row = db.execute(select(CodeHistory).where(CodeHistory.person_id == p.id)).scalar_one()
    row.at = row.at - timedelta(days=3)
    db.flush()
    assert not history.verify(db_session=db).ok
    row.at = row.at + timedelta(days=3)
    db.flush()
    assert history.verify(db_session=db).ok
    db.delete(row)
    db.flush()
    report = history.verify(db_session=db)
    assert report.problems
    assert "deleted" in report.problems[0]


def test_each_write_is_a_numbered_batch_and_a_noop_writes_none(db: Session) -> None:
    """Lookups poll code_status by batch number (seq): every recompute that changes something
    takes the next number and stamps its rows with it; one that changes nothing writes no
    batch, no status, no history and no seal."""
    from bastion.audit.models import AuditEntry
    from bastion.healthcode.models import CodeBatch

    patient, close = factories.person(db), factories.person(db)
    c = records.case(db, patient)
    first = store.recompute_people(db_session=db, person_ids=[patient.id])
    records.contact(db, close, c)
    second = store.recompute_people(db_session=db, person_ids=[patient.id, close.id])
    batches = db.execute(select(CodeBatch).order_by(CodeBatch.seq)).scalars().all()
    assert [(b.batch_id, b.changed) for b in batches] == [(first.batch_id, 1), (second.batch_id, 1)]
    assert batches[0].seq < batches[1].seq
    assert _status(db, patient.id).seq == batches[0].seq  # type: ignore[union-attr]
    assert _status(db, close.id).seq == batches[1].seq  # type: ignore[union-attr]

    counts = (
        db.scalar(select(func.count()).select_from(CodeBatch)),
        db.scalar(select(func.count()).select_from(CodeHistory)),
        db.scalar(select(func.count()).select_from(AuditEntry)),
    )
    noop = store.recompute_region(db_session=db, region_code=None)
    assert noop.changed == 0
    assert (
        db.scalar(select(func.count()).select_from(CodeBatch)),
        db.scalar(select(func.count()).select_from(CodeHistory)),
        db.scalar(select(func.count()).select_from(AuditEntry)),
    ) == counts
