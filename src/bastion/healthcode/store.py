"""The status store: set-based recompute that writes only what changed.

One recompute, whatever its size, is a handful of statements:

1. the union of the evidence sources (bastion.healthcode.sources) for the people concerned is
   ranked by the rule table in SQL (ROW_NUMBER over the person: strictest colour, then rule
   position, then the oldest record; the pop-up of the earliest popup-bearing rule) into the
   temporary table ``hc_new``;
2. ``hc_new`` is compared with ``code_status``: new and changed statuses, and non-green statuses
   of concerned people who have no evidence any more (they turn green), go to ``hc_diff``;
3. ``hc_diff`` is upserted into ``code_status`` (version + 1; a person who turns green keeps a
   green row so the version never goes back; ``seq`` = the batch's number in ``code_batches``,
   taken under the write lock so numbers follow commit order, which the lookup servers poll
   by) and appended to ``code_history``;
4. the batch is sealed by one audit entry (bastion.healthcode.history).

Flows call :func:`recompute_people` (targeted) and :func:`recompute_region` (bulk) inside their
own transaction; :func:`recompute` is the permission-checked service behind the API and CLI.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    String,
    bindparam,
    case,
    column,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateTableAs

from bastion.core import clock
from bastion.core.auth import Perm, Principal, system_principal
from bastion.core.db import UtcDateTime, analyze_if_many, bulk_insert, is_postgres
from bastion.core.errors import InvalidInput
from bastion.healthcode import history
from bastion.healthcode.rules import EVIDENCE_TYPE, RuleSet, rule_set_for
from bastion.healthcode.sources import Context, Target, evidence_union
from bastion.protocols.service import profile_on
from bastion.regions import service as region_service

MAX_PEOPLE = 1_000_000
#: Serialises recomputes on PostgreSQL (two at once would both diff against the same old
#: statuses and write history rows with a stale "old colour").
_LOCK_KEY = 0x6863_7374  # "hcst"


@dataclass(frozen=True)
class RecomputeResult:
    batch_id: str
    changed: int
    rule_set: str


def current_rules(db_session: Session, now: datetime | None = None) -> RuleSet:
    """The rule set in force now, by the protocol profile in force today."""
    day = clock.to_local(now).date() if now else clock.today()
    return rule_set_for(profile_on(db_session, day).key, day)


def _ts(db_session: Session) -> str:
    return "TIMESTAMP WITH TIME ZONE" if is_postgres(db_session) else "DATETIME"


def _create_temp(db_session: Session) -> None:
    ts = _ts(db_session)
    cols = (
        "person_id BIGINT PRIMARY KEY, colour VARCHAR(6), rule VARCHAR(64), "
        "reason_key VARCHAR(64), evidence_type VARCHAR(24), evidence_id VARCHAR(40), "
        f"popup VARCHAR(32), valid_until {ts}"
    )
    for ddl in (
        "CREATE TEMPORARY TABLE IF NOT EXISTS hc_people (person_id BIGINT PRIMARY KEY)",
        f"CREATE TEMPORARY TABLE IF NOT EXISTS hc_new ({cols})",
        f"CREATE TEMPORARY TABLE IF NOT EXISTS hc_diff ({cols}, old_colour VARCHAR(6), "
        "old_version INTEGER)",
    ):
        db_session.execute(text(ddl))


def load_people(db_session: Session, person_ids: Iterable[int]) -> int:
    """Fill the temporary table ``hc_people`` with ``person_ids``."""
    _create_temp(db_session)
    db_session.execute(text("DELETE FROM hc_people"))
    unique = sorted({int(i) for i in person_ids})
    bulk_insert(db_session, "hc_people", ["person_id"], ((i,) for i in unique))
    analyze_if_many(db_session, "hc_people", len(unique))
    return len(unique)


def _by_kind(rules: RuleSet, kind_col: Any, values: dict[str, Any], type_: Any) -> Any:
    return case(
        *((kind_col == r.kind.value, literal(values[r.kind.value], type_)) for r in rules.rules),
        else_=None,
    )


def _ranked(ctx: Context) -> Any:
    """SELECT of the new status of every concerned person with evidence (hc_new's columns)."""
    rules = ctx.rules
    union = evidence_union(ctx)
    if union is None:
        return None
    ev = union.c
    ranked = select(
        ev.person_id,
        ev.kind,
        ev.record_type,
        ev.record_id,
        ev.valid_until,
        ev.request_id,
        func.row_number()
        .over(
            partition_by=ev.person_id,
            # The tie-break of rules.decide: no expiry first, then the latest expiry.
            order_by=(
                ev.sev,
                ev.pos,
                ev.record_id,
                case((ev.valid_until.is_(None), 0), else_=1),
                ev.valid_until.desc(),
            ),
        )
        .label("rn"),
        func.min(ev.popup_pos).over(partition_by=ev.person_id).label("popup_pos"),
    ).subquery("ranked")
    r = ranked.c
    colour = _by_kind(rules, r.kind, {x.kind.value: x.colour for x in rules.rules}, String)
    key = _by_kind(rules, r.kind, {x.kind.value: x.key for x in rules.rules}, String)
    manual = r.kind.in_(("manual_red", "manual_yellow"))
    rule = literal(f"{rules.version}:", String) + case(
        (manual, r.kind + "#" + func.cast(r.request_id, String)), else_=key
    )
    reason = _by_kind(rules, r.kind, {x.kind.value: x.reason_key for x in rules.rules}, String)
    etype = func.coalesce(
        r.record_type,
        _by_kind(rules, r.kind, {x.kind.value: EVIDENCE_TYPE[x.kind] for x in rules.rules}, String),
    )
    popup = case(
        *(
            (r.popup_pos == i, literal(x.popup, String))
            for i, x in enumerate(rules.rules)
            if x.popup
        ),
        else_=None,
    )
    return select(
        r.person_id.label("person_id"),
        colour.label("colour"),
        rule.label("rule"),
        reason.label("reason_key"),
        etype.label("evidence_type"),
        func.cast(r.record_id, String).label("evidence_id"),
        popup.label("popup"),
        r.valid_until.label("valid_until"),
    ).where(r.rn == 1)


def _exec(db_session: Session, sql: str, **params: Any) -> int:
    stmt = text(sql)
    if "at" in params:
        stmt = stmt.bindparams(bindparam("at", type_=UtcDateTime()))
    result = cast(CursorResult[Any], db_session.execute(stmt, params))
    return max(result.rowcount or 0, 0)


def _distinct(db_session: Session, a: str, b: str) -> str:
    op = "IS DISTINCT FROM" if is_postgres(db_session) else "IS NOT"
    return f"{a} {op} {b}"


def _diff(db_session: Session, target: Target, rules: RuleSet) -> int:
    """Fill hc_diff from hc_new and code_status; the number of changes."""
    changed = " OR ".join(
        _distinct(db_session, f"s.{c}", f"n.{c}")
        for c in (
            "colour",
            "rule",
            "reason_key",
            "evidence_type",
            "evidence_id",
            "popup",
            "valid_until",
        )
    )
    n = _exec(
        db_session,
        f"""INSERT INTO hc_diff (person_id, colour, rule, reason_key, evidence_type, evidence_id,
                popup, valid_until, old_colour, old_version)
            SELECT n.person_id, n.colour, n.rule, n.reason_key, n.evidence_type, n.evidence_id,
                n.popup, n.valid_until, s.colour, s.version
            FROM hc_new n LEFT JOIN code_status s ON s.person_id = n.person_id
            WHERE s.person_id IS NULL OR {changed}""",  # noqa: S608 - fixed columns
    )
    # Concerned people whose status is not green and who have no evidence any more.
    if target.people_table:
        concerned = "s.person_id IN (SELECT person_id FROM hc_people)"
        params: dict[str, Any] = {}
    elif target.scope is None or not target.scope.prefix:
        concerned, params = "1 = 1", {}
    else:
        # Region codes are digits (checked on the way in): safe as literals.
        clause = target.scope.clause(column("region_code", String))
        compiled = clause.compile(
            dialect=db_session.get_bind().dialect, compile_kwargs={"literal_binds": True}
        )
        concerned = f"s.person_id IN (SELECT id FROM persons WHERE {compiled})"  # noqa: S608
        params = {}
    n += _exec(
        db_session,
        f"""INSERT INTO hc_diff (person_id, colour, rule, reason_key, evidence_type, evidence_id,
                popup, valid_until, old_colour, old_version)
            SELECT s.person_id, 'green', :rule, 'healthcode.reason.default', NULL, NULL, NULL,
                NULL, s.colour, s.version
            FROM code_status s
            WHERE s.colour <> 'green' AND {concerned}
              AND NOT EXISTS (SELECT 1 FROM hc_new n WHERE n.person_id = s.person_id)""",  # noqa: S608
        rule=rules.rule_name("default"),
        **params,
    )
    return n


def _apply(db_session: Session, *, now: datetime, cause: str, batch_id: str, seq: int) -> None:
    """Write hc_diff: UPDATE the rows that exist, INSERT the new ones, append the history."""
    params = {"at": now, "cause": cause, "batch": batch_id, "seq": seq}
    cols = "colour, rule, reason_key, evidence_type, evidence_id, popup, valid_until"
    _exec(
        db_session,
        """UPDATE code_status SET colour = d.colour, rule = d.rule, reason_key = d.reason_key,
                evidence_type = d.evidence_type, evidence_id = d.evidence_id, popup = d.popup,
                valid_until = d.valid_until, version = code_status.version + 1,
                changed_at = :at, seq = :seq
            FROM hc_diff d
            WHERE d.person_id = code_status.person_id AND d.old_version IS NOT NULL""",
        **params,
    )
    _exec(
        db_session,
        f"""INSERT INTO code_status (person_id, {cols}, version, changed_at, seq)
            SELECT person_id, {cols}, 1, :at, :seq FROM hc_diff
            WHERE old_version IS NULL""",  # noqa: S608 - fixed columns
        **params,
    )
    _exec(
        db_session,
        """INSERT INTO code_history (person_id, old_colour, new_colour, rule, reason_key,
                evidence_type, evidence_id, popup, valid_until, at, cause, batch_id)
            SELECT person_id, old_colour, colour, rule, reason_key, evidence_type, evidence_id,
                popup, valid_until, :at, :cause, :batch
            FROM hc_diff ORDER BY person_id""",
        **params,
    )


def _run(
    db_session: Session,
    target: Target,
    *,
    actor: Principal | None = None,
    cause: str = "recompute",
    region_code: str | None = None,
) -> RecomputeResult:
    db_session.flush()
    now = clock.now().replace(microsecond=0)
    rules = current_rules(db_session, now)
    if is_postgres(db_session):
        db_session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        # One long set-based statement per step: JIT compilation costs more than it saves
        # here, and hashing a round's worth of people wants memory.
        db_session.execute(text("SET LOCAL jit = off"))
        db_session.execute(text("SET LOCAL work_mem = '256MB'"))
    _create_temp(db_session)
    db_session.execute(text("DELETE FROM hc_diff"))
    ctx = Context(db_session, rules, target, now)
    ranked = _ranked(ctx)
    if ranked is not None:
        # CREATE TABLE AS, not INSERT … SELECT: PostgreSQL runs it in parallel (an INSERT's
        # SELECT never is), and the anti-joins over a city's people are the bulk of the work.
        db_session.execute(text("DROP TABLE IF EXISTS hc_new"))
        db_session.execute(CreateTableAs(ranked, "hc_new", temporary=True))
    else:
        db_session.execute(text("DELETE FROM hc_new"))
    if is_postgres(db_session):
        db_session.execute(text("ANALYZE hc_new"))
    changed = _diff(db_session, target, rules)
    batch_id = uuid.uuid4().hex
    if changed:
        seq = _new_batch(db_session, batch_id=batch_id, at=now, changed=changed)
        _apply(db_session, now=now, cause=cause, batch_id=batch_id, seq=seq)
        history.seal(
            db_session=db_session,
            actor=actor or system_principal(),
            batch_id=batch_id,
            cause=cause,
            region_code=region_code,
            at=now,
            staged=True,
        )
    _expire_loaded(db_session)
    return RecomputeResult(batch_id=batch_id, changed=changed, rule_set=rules.version)


def _new_batch(db_session: Session, *, batch_id: str, at: datetime, changed: int) -> int:
    """Number this write (code_batches.seq). Taken under the write lock (PostgreSQL: the
    advisory lock held since the start of :func:`_run`; SQLite: this INSERT takes the database
    lock), so every smaller number is already committed or rolled back: the lookup servers
    poll ``seq > last seen`` (bastion.healthcode.lookup)."""
    from bastion.healthcode.models import CodeBatch

    seq = db_session.execute(
        insert(CodeBatch).values(batch_id=batch_id, at=at, changed=changed).returning(CodeBatch.seq)
    ).scalar_one()
    return int(seq)


def _expire_loaded(db_session: Session) -> None:
    from bastion.healthcode.models import CodeStatus

    for obj in list(db_session.identity_map.values()):
        if isinstance(obj, CodeStatus):
            db_session.expire(obj)


def recompute_people(
    *,
    db_session: Session,
    person_ids: Sequence[int] | Iterable[int],
    cause: str = "recompute",
    actor: Principal | None = None,
) -> RecomputeResult:
    """Targeted recompute of ``person_ids`` (flows call it after single events)."""
    ids = list(person_ids)
    if len(ids) > MAX_PEOPLE:
        raise InvalidInput.one("person_ids", "healthcode.too_many_people", max=MAX_PEOPLE)
    load_people(db_session, ids)
    return _run(db_session, Target(people_table=True), actor=actor, cause=cause)


def recompute_region(
    *,
    db_session: Session,
    region_code: str | None,
    cause: str = "recompute",
    actor: Principal | None = None,
) -> RecomputeResult:
    """Set-based recompute of every resident of ``region_code`` (None: everyone)."""
    scope = (
        region_service.scope_of(db_session=db_session, code=region_code) if region_code else None
    )
    return _run(db_session, Target(scope=scope), actor=actor, cause=cause, region_code=region_code)


def recompute(
    *,
    db_session: Session,
    principal: Principal,
    region_code: str | None = None,
    person_ids: Sequence[int] | None = None,
) -> RecomputeResult:
    """The permission-checked recompute: a region inside the principal's subtree (default:
    their own region), or a list of people who all live inside it."""
    from bastion.registry.models import Person

    principal.require(Perm.healthcode_recompute)
    if person_ids:
        ids = sorted({int(i) for i in person_ids})
        if len(ids) > MAX_PEOPLE:
            raise InvalidInput.one("person_ids", "healthcode.too_many_people", max=MAX_PEOPLE)
        found = db_session.execute(
            select(Person.id, Person.region_code).where(Person.id.in_(ids))
        ).all()
        if len(found) != len(ids):
            raise InvalidInput.one("person_ids", "healthcode.person_unknown")
        for _, home in found:
            principal.require_region(home)
        return recompute_people(db_session=db_session, person_ids=ids, actor=principal)
    code = region_code or principal.region_code or None
    if code:
        region_service.get_or_404(db_session=db_session, code=code)
        principal.require_region(code)
    return recompute_region(db_session=db_session, region_code=code, actor=principal)


__all__ = [
    "RecomputeResult",
    "current_rules",
    "load_people",
    "recompute",
    "recompute_people",
    "recompute_region",
]


def people_touched_by_results(db_session: Session, report: Any) -> list[int]:
    """The people a results upload (and the tracing flow after it) may have changed: positives,
    escalated and released retests, everyone in the positive pools' holds, the new cases and
    the contacts traced from them. ``report`` is a testing ResultReport (its ``tracing`` is set
    by bastion.testing.flows)."""
    from bastion.testing.models import RetestTask
    from bastion.tracing.models import Case, Contact, ContactLink

    people: set[int] = set()
    hold_ids: set[int] = set()
    for summary in getattr(report, "pool_summaries", []) or []:
        for name in ("positive", "escalated", "released"):
            people.update(int(i) for i in getattr(summary, name, []) or [])
        for name in ("hold_ids", "confirmed_holds", "reversed_holds", "withdrawn_holds"):
            hold_ids.update(int(i) for i in getattr(summary, name, []) or [])
    if hold_ids:
        people.update(
            db_session.execute(
                select(RetestTask.person_id).where(RetestTask.hold_id.in_(sorted(hold_ids)))
            ).scalars()
        )
    case_ids = sorted(getattr(getattr(report, "tracing", None), "case_ids", []) or [])
    if case_ids:
        people.update(
            db_session.execute(select(Case.person_id).where(Case.id.in_(case_ids))).scalars()
        )
        people.update(
            db_session.execute(
                select(Contact.person_id)
                .outerjoin(ContactLink, ContactLink.contact_id == Contact.id)
                .where((Contact.case_id.in_(case_ids)) | (ContactLink.case_id.in_(case_ids)))
            ).scalars()
        )
    return sorted(people)


def recompute_after_results(*, db_session: Session, report: Any) -> RecomputeResult | None:
    """Targeted recompute of everyone a results upload touched (the flow's last step)."""
    people = people_touched_by_results(db_session, report)
    if not people:
        return None
    return recompute_people(db_session=db_session, person_ids=people)
