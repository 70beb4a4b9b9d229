"""Evidence as SQL: one source per kind, each a SELECT of
``(person_id, kind, record_type, record_id, valid_until, request_id)`` limited to the people a
recompute concerns. The store ranks their union by the rule table (bastion.healthcode.store);
:func:`gather` loads the same rows for a few people (the API's explanation, the tests).

Sources read other domains' documented columns only (docs/dev/shared-records.md, the testing
package's holds and tasks, zones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    cast,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from bastion.core import clock
from bastion.core.db import UtcDateTime
from bastion.healthcode.models import ManualRequest, ManualRequestPerson
from bastion.healthcode.rules import SEVERITY, Evidence, Kind, RuleSet
from bastion.isolation.models import Placement
from bastion.regions import service as region_service
from bastion.regions.codes import Scope
from bastion.regions.models import Zone
from bastion.registry.models import Person
from bastion.testing.coverage.counters import rules_of
from bastion.testing.models import PoolHold, RetestTask, Round, Tube, TubeMember
from bastion.testing.pools.holds import held_persons_query, owed_clause
from bastion.tracing.models import Case, Contact

COLUMNS = ("person_id", "kind", "record_type", "record_id", "valid_until", "request_id")

#: Placement states that put a person under control (pending: waiting for transfer).
LIVE_PLACEMENT = ("pending", "active")


@dataclass(frozen=True)
class Target:
    """Whom a recompute concerns: everyone, a region's residents, or the people in the
    temporary table ``hc_people`` (a list of ids)."""

    scope: Scope | None = None
    people_table: bool = False

    def person_clause(self, person_id: Any) -> ColumnElement[bool]:
        """SQL: ``person_id`` is concerned."""
        if self.people_table:
            from sqlalchemy import column, table

            people = table("hc_people", column("person_id", BigInteger))
            clause: ColumnElement[bool] = person_id.in_(select(people.c.person_id))
            return clause
        if self.scope is None or (not self.scope.prefix and not self.scope.excluded):
            return true()
        scoped: ColumnElement[bool] = person_id.in_(
            select(Person.id).where(self.scope.clause(Person.region_code))
        )
        return scoped

    def person_row_clause(self, person: Any) -> ColumnElement[bool]:
        """SQL on a ``persons`` row: concerned (region scopes need no sub-select)."""
        if self.people_table:
            return self.person_clause(person.id)
        if self.scope is None:
            return true()
        return self.scope.clause(person.region_code)


def _row(
    person_id: Any,
    kind: Kind,
    record_id: Any,
    *,
    record_type: Any = None,
    valid_until: Any = None,
    request_id: Any = None,
) -> list[Any]:
    return [
        person_id.label("person_id"),
        literal(kind.value, String).label("kind"),
        (record_type if record_type is not None else cast(null(), String)).label("record_type"),
        cast(record_id, BigInteger).label("record_id"),
        (valid_until if valid_until is not None else cast(null(), UtcDateTime())).label(
            "valid_until"
        ),
        (request_id if request_id is not None else cast(null(), BigInteger)).label("request_id"),
    ]


Source = Callable[["Context"], list[Select[Any]]]


@dataclass(frozen=True)
class Context:
    db_session: Session
    rules: RuleSet
    target: Target
    now: datetime


def cases(ctx: Context) -> list[Select[Any]]:
    return [
        select(*_row(Case.person_id, Kind.case, Case.id)).where(
            Case.status == "open", ctx.target.person_clause(Case.person_id)
        )
    ]


def contacts(ctx: Context) -> list[Select[Any]]:
    out = []
    for level, kind in (("close", Kind.close_contact), ("secondary", Kind.secondary_contact)):
        out.append(
            select(*_row(Contact.person_id, kind, Contact.id)).where(
                Contact.status == "active",
                Contact.level == level,
                ctx.target.person_clause(Contact.person_id),
            )
        )
    return out


def placements(ctx: Context) -> list[Select[Any]]:
    """Live placements: as a case or a close contact (red, naming the case / contact they rest
    on), as a secondary contact (yellow), home health monitoring (yellow)."""
    live = and_(Placement.status.in_(LIVE_PLACEMENT), ctx.target.person_clause(Placement.person_id))
    controlled = Placement.setting != "home_monitoring"
    return [
        select(*_row(Placement.person_id, Kind.placement_case, Placement.source_id)).where(
            live, controlled, Placement.reason == "case", Placement.source_type == "case"
        ),
        select(*_row(Placement.person_id, Kind.placement_close, Placement.source_id)).where(
            live,
            controlled,
            Placement.reason == "close_contact",
            Placement.source_type == "contact",
        ),
        select(*_row(Placement.person_id, Kind.placement_secondary, Placement.id)).where(
            live, controlled, Placement.reason == "secondary_contact"
        ),
        select(*_row(Placement.person_id, Kind.health_monitoring, Placement.id)).where(
            live, Placement.setting == "home_monitoring"
        ),
    ]


def manual(ctx: Context) -> list[Select[Any]]:
    """Approved manual changes still in force (the request's evidence record is named)."""
    out = []
    for colour, kind in (("red", Kind.manual_red), ("yellow", Kind.manual_yellow)):
        out.append(
            select(
                *_row(
                    ManualRequestPerson.person_id,
                    kind,
                    ManualRequest.evidence_id,
                    record_type=ManualRequest.evidence_type,
                    valid_until=ManualRequest.expires_at,
                    request_id=ManualRequest.id,
                )
            )
            .join(ManualRequest, ManualRequest.id == ManualRequestPerson.request_id)
            .where(
                ManualRequest.status == "approved",
                ManualRequest.colour == colour,
                or_(ManualRequest.expires_at.is_(None), ManualRequest.expires_at > ctx.now),
                ctx.target.person_clause(ManualRequestPerson.person_id),
            )
        )
    return out


def pool_holds(ctx: Context) -> list[Select[Any]]:
    held = held_persons_query().subquery()
    return [
        select(*_row(held.c.person_id, Kind.pool_hold, held.c.hold_id)).where(
            ctx.target.person_clause(held.c.person_id)
        )
    ]


def antigen(ctx: Context) -> list[Select[Any]]:
    """A positive antigen whose PCR retest is still owed."""
    return [
        select(*_row(RetestTask.person_id, Kind.antigen_positive, RetestTask.antigen_id))
        .outerjoin(PoolHold, PoolHold.id == RetestTask.hold_id)
        .where(
            RetestTask.reason == "antigen",
            RetestTask.antigen_id.is_not(None),
            owed_clause(),
            ctx.target.person_clause(RetestTask.person_id),
        )
    ]


def missed_round_tests(ctx: Context) -> list[Select[Any]]:
    """People a round required who were not sampled in it by its deadline, nor anywhere since,
    for ``missed_test_days`` after the deadline. People under isolation control or with an
    open case at any time during the round are tested on their own schedule and never miss it
    (:func:`excused_during`; ADR 0009)."""
    earliest = ctx.now - timedelta(days=ctx.rules.missed_test_days)
    rounds = ctx.db_session.execute(
        select(Round).where(Round.deadline_at <= ctx.now, Round.deadline_at > earliest)
    ).scalars()
    out = []
    for rnd in rounds:
        rules = rules_of(ctx.db_session, rnd)
        p = aliased(Person, name="p")
        # One anti-join: sampled in the round, or anywhere since its deadline (tested late).
        # PostgreSQL runs it as parallel hash anti-joins over the residents and the round's
        # members (EXPLAIN at 9 M: docs/healthcode.md, Figures).
        sampled = (
            select(TubeMember.id)
            .where(
                TubeMember.person_id == p.id,
                or_(
                    TubeMember.round_id == rnd.id,
                    TubeMember.scanned_at >= literal(rnd.deadline_at, UtcDateTime()),
                ),
            )
            .exists()
        )
        # And one against the people under control during the round: a few hundred thousand
        # rows at most, sorted or hashed once per worker and met only by the people the first
        # anti-join left. Kept apart: folded into the members' anti-join, PostgreSQL gives up
        # the parallel hash for a merge anti-join that sorts all the members in every worker.
        spared = union_all(*excused_during(rnd)).subquery("excused")
        excused = select(spared.c.person_id).where(spared.c.person_id == p.id).exists()
        out.append(
            select(*_row(p.id, Kind.missed_round_test, literal(rnd.id, BigInteger))).where(
                rules.required(p.region_code, p.birth_date, p.special_groups),
                ctx.target.person_row_clause(p),
                not_(sampled),
                not_(excused),
            )
        )
    return out


#: Placement states that had a person under control for a while (cancelled ones never did).
HELD_PLACEMENT = (*LIVE_PLACEMENT, "released")


def excused_during(rnd: Round) -> list[Select[Any]]:
    """SELECTs of ``person_id``: the people under control at any time during the round's local
    days (its start's to its deadline's, both counted): a placement of any setting, pending,
    active or released, whose days overlap them, or a case open on one of them. Day-grained,
    as placements and cases are (a person released on the round's last day is excused): the
    missed-test rule judges a round that is over, so it asks who was under control then, where
    the coverage views ask who is now (``coverage.excused``). They start from the placements
    and cases, never from the registry."""
    first = clock.to_local(rnd.starts_at).date()
    # The last instant before the deadline: a deadline at local midnight ends the day before.
    last = clock.to_local(rnd.deadline_at - timedelta(microseconds=1)).date()
    placed = select(Placement.person_id.label("person_id")).where(
        Placement.status.in_(HELD_PLACEMENT),
        Placement.starts_on <= last,
        or_(Placement.released_on.is_(None), Placement.released_on >= first),
    )
    ill = select(Case.person_id.label("person_id")).where(
        Case.reported_on <= last,
        or_(Case.closed_on.is_(None), Case.closed_on >= first),
    )
    return [placed, ill]


def zones_without_test(ctx: Context) -> list[Select[Any]]:
    """Residents of a zone whose kind needs a recent negative test and who have none sampled
    within the window (sampling time, not result time)."""
    if not ctx.rules.zone_test_kinds:
        return []
    day = ctx.now.date()
    zones = ctx.db_session.execute(
        select(Zone).where(
            Zone.kind.in_(ctx.rules.zone_test_kinds),
            Zone.starts_on <= day,
            or_(Zone.ends_on.is_(None), Zone.ends_on >= day),
        )
    ).scalars()
    since = literal(ctx.now - timedelta(hours=ctx.rules.test_window_hours), UtcDateTime())
    out = []
    for zone in zones:
        p = aliased(Person, name="p")
        negative = (
            select(TubeMember.id)
            .join(Tube, Tube.id == TubeMember.tube_id)
            .where(
                TubeMember.person_id == p.id,
                TubeMember.scanned_at >= since,
                Tube.result == "negative",
            )
            .exists()
        )
        out.append(
            select(*_row(p.id, Kind.zone_no_test, literal(zone.id, BigInteger))).where(
                region_service.scope_of(db_session=ctx.db_session, code=zone.region_code).clause(
                    p.region_code
                ),
                ctx.target.person_row_clause(p),
                not_(negative),
            )
        )
    return out


SOURCES: tuple[Source, ...] = (
    cases,
    contacts,
    placements,
    manual,
    pool_holds,
    antigen,
    missed_round_tests,
    zones_without_test,
)


def evidence_union(ctx: Context) -> Any:
    """The union of every source whose kind the rule set reads (a selectable), or None."""
    rules = ctx.rules
    wanted = {r.kind.value for r in rules.rules}
    selects = []
    for source in SOURCES:
        for stmt in source(ctx):
            kind = _kind_of(stmt)
            if kind not in wanted:
                continue
            rule = rules.rule_for(kind)
            assert rule is not None
            # The rank of each row as plain numbers, so the ranking sorts on integers rather
            # than evaluating the rule table for every row.
            position = rules.position(kind)
            selects.append(
                stmt.add_columns(
                    literal(-SEVERITY[rule.colour], Integer).label("sev"),
                    literal(position, Integer).label("pos"),
                    (literal(position, Integer) if rule.popup else cast(null(), Integer)).label(
                        "popup_pos"
                    ),
                )
            )
    if not selects:
        return None
    return union_all(*selects).subquery("evidence")


def _kind_of(stmt: Select[Any]) -> str:
    col = stmt.selected_columns.kind
    element = getattr(col, "element", col)
    return str(getattr(element, "value", ""))


def gather(
    *, db_session: Session, rules: RuleSet, person_ids: Sequence[int], now: datetime
) -> dict[int, list[Evidence]]:
    """The evidence of a few people, by person (for explanations and tests)."""
    from bastion.healthcode.store import load_people

    load_people(db_session, person_ids)
    ctx = Context(db_session, rules, Target(people_table=True), now)
    union = evidence_union(ctx)
    out: dict[int, list[Evidence]] = {int(i): [] for i in person_ids}
    if union is None:
        return out
    for row in db_session.execute(select(union)):
        out.setdefault(int(row.person_id), []).append(
            Evidence(
                kind=Kind(row.kind),
                record_id=int(row.record_id),
                valid_until=row.valid_until,
                record_type=row.record_type,
                request_id=row.request_id,
            )
        )
    return out
