"""The coverage counters: kept as scans and results land, and rebuilt from the record.

Every writer here is set-based and runs in its caller's transaction; none commits.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    Select,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import column, table

from bastion.core import clock
from bastion.core.db import (
    UtcDateTime,
    among,
    id_chunks,
    index_lookups,
    is_postgres,
    sort_memory,
)
from bastion.core.errors import NotFound
from bastion.isolation.models import Placement
from bastion.regions import service as region_service
from bastion.regions.codes import Scope
from bastion.registry.models import Person
from bastion.testing import exemptions
from bastion.testing.models import (
    Round,
    RoundCoverage,
    RoundExcused,
    RoundScreeningHour,
    Tube,
    TubeMember,
)
from bastion.tracing.models import Case

AnySelect = Select[*tuple[Any, ...]]


COUNTERS = (
    "required",
    "sampled",
    "sampled_required",
    "on_time",
    "resulted",
    "positive_people",
    "positive_tubes",
)

#: The ingest's temporary table (see testing.ingest), as far as coverage reads it.
VERDICT = table(
    "scan_verdict",
    column("round_id", Integer),
    column("home", String),
    column("scanned_at", UtcDateTime()),
    column("person_id", BigInteger),
    column("tube_id", BigInteger),
    column("retest", Boolean),
    column("verdict", String),
)


# Who is required ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoundRules:
    """A round's rule of who must be tested, ready to become SQL."""

    round_id: int
    scope: Scope
    rules: tuple[exemptions.Exemption, ...]
    exempt_scopes: tuple[Scope, ...]
    on: date
    deadline: datetime
    #: The round closed with its excused people written down (``freeze_excused``): those are
    #: its excused, not whoever is under control now (ADR 0009, revision).
    frozen: bool = False

    @property
    def needs_person(self) -> bool:
        return any(r.needs_person for r in self.rules)

    def required(
        self, home: Any, born: Any = None, groups: Any = None, person: Any = None
    ) -> ColumnElement[bool]:
        """SQL: a person living at ``home``, born ``born``, in ``groups`` is required by the
        round's rules. Given ``person`` (their id column), also: not excused now, i.e. not
        under isolation control or with an open case unless already sampled in the round
        (:func:`excused`; ADR 0009). The stored ``required`` counters are written without
        ``person`` (the rules only); the views take the excused away live."""
        conditions = [self.scope.clause(home)]
        for rule in self.rules:
            if rule.kind == "age_under":
                conditions.append(born <= exemptions.born_on_or_before(self.on, rule.years))
            elif rule.kind == "age_over":
                conditions.append(born > exemptions.born_on_or_before(self.on, rule.years + 1))
            elif rule.kind == "special_group":
                conditions.append(groups.op("&")(rule.group_bit) == 0)
        conditions.extend(not_(s.clause(home)) for s in self.exempt_scopes)
        if person is not None:
            conditions.append(not_(excused(self.round_id, person, frozen=self.frozen)))
        return and_(*conditions)


def rules_of(db_session: Session, rnd: Round) -> RoundRules:
    """The round's rules; refuses (InvalidInput) malformed exemptions stored on it."""
    parsed = exemptions.parse(rnd.exemptions)
    return RoundRules(
        round_id=rnd.id,
        scope=region_service.scope_of(db_session=db_session, code=rnd.region_code),
        rules=tuple(parsed),
        exempt_scopes=tuple(
            region_service.scope_of(db_session=db_session, code=r.code)
            for r in parsed
            if r.kind == "region"
        ),
        on=clock.to_local(rnd.starts_at).date(),
        deadline=rnd.deadline_at,
        frozen=rnd.excused_frozen_at is not None,
    )


def _round_by_id(db_session: Session, round_id: int) -> Round:
    rnd = db_session.get(Round, round_id)
    if rnd is None:
        raise NotFound("round.not_found", round=str(round_id))
    return rnd


def _one_if(condition: ColumnElement[bool]) -> Any:
    return case((condition, 1), else_=0)


def not_retest(col: Any) -> ColumnElement[bool]:
    """SQL: a member row that is not a retest (the words of the partial unique index, so
    PostgreSQL can use it)."""
    clause: ColumnElement[bool] = not_(col)
    return clause


# Who is excused now (ADR 0009) -------------------------------------------------------------

#: Placement statuses under which a person is under isolation control (pending: waiting for the
#: transfer). Every setting counts, home health monitoring included: each has its own test days.
CONTROLLED = ("pending", "active")


def sampled_in(round_id: int, person: Any) -> ColumnElement[bool]:
    """SQL: ``person`` (an id column) was sampled in the round (retests excepted; the partial
    unique index on (round, person) answers it)."""
    return (
        select(TubeMember.id)
        .where(
            TubeMember.round_id == round_id,
            TubeMember.person_id == person,
            not_retest(TubeMember.retest),
        )
        .exists()
    )


def under_control(person: Any) -> ColumnElement[bool]:
    """SQL: ``person`` (an id column) has a pending or active placement or an open case now."""
    placed = (
        select(Placement.id)
        .where(Placement.person_id == person, Placement.status.in_(CONTROLLED))
        .exists()
    )
    ill = select(Case.id).where(Case.person_id == person, Case.status == "open").exists()
    return or_(placed, ill)


def excused(round_id: int, person: Any, *, frozen: bool = False) -> ColumnElement[bool]:
    """SQL: ``person`` is excused from the round now: under control (they are tested on their
    own schedule) and not sampled in it (someone sampled stays required and sampled, so
    coverage never passes 100%). For a round whose excused were written down at close
    (``frozen``): written down then, and still not sampled (a scan made before the close may
    arrive later)."""
    if frozen:
        written = (
            select(RoundExcused.person_id)
            .where(RoundExcused.round_id == round_id, RoundExcused.person_id == person)
            .exists()
        )
        return and_(written, not_(sampled_in(round_id, person)))
    return and_(under_control(person), not_(sampled_in(round_id, person)))


def excused_by_home(rules: RoundRules, scopes: Sequence[Scope]) -> AnySelect:
    """SQL: ``(home, n)``, how many people the round's rules require are excused now
    (:func:`excused`), per home region inside every scope; for a round whose excused were
    written down at close, how many of those are still not sampled.

    Read at every view, so it starts from the people under control, never from the registry,
    and their home is the residence recorded on their placement or case (``region_code``, the
    person's grid when placed or reported): the pending and active placements of the region
    (``ix_placements_status_region``) and its open cases (``ix_cases_region_code``), one row per
    person, less those sampled in the round (``uq_tube_members_round_person``). The registry
    is read only when the round's rules need a person's age or groups (a primary-key lookup per
    person under control). ADR 0009 has the figures."""
    if rules.frozen:
        e = RoundExcused
        return (
            select(e.region_code.label("home"), func.count().label("n"))
            .where(
                e.round_id == rules.round_id,
                *(s.clause(e.region_code) for s in scopes),
                not_(sampled_in(rules.round_id, e.person_id)),
            )
            .group_by(e.region_code)
        )
    people = _excused_now(rules, scopes)
    return (
        select(people.c.home.label("home"), func.count().label("n"))
        .select_from(people)
        .group_by(people.c.home)
    )


def _excused_now(rules: RoundRules, scopes: Sequence[Scope]) -> Any:
    """SQL, a subquery: ``(person_id, home)`` of everyone the round's rules require who is
    excused now (:func:`excused_by_home` has how they are found)."""

    def under(model: type[Placement] | type[Case], condition: ColumnElement[bool]) -> AnySelect:
        home = model.region_code
        return select(model.person_id.label("person_id"), home.label("home")).where(
            condition, rules.scope.clause(home), *(s.clause(home) for s in scopes)
        )

    both = union_all(
        under(Placement, Placement.status.in_(CONTROLLED)),
        under(Case, Case.status == "open"),
    ).subquery()
    people = (
        select(both.c.person_id, func.min(both.c.home).label("home"))
        .group_by(both.c.person_id)
        .subquery()
    )
    home = people.c.home
    frm: Any = people
    if rules.needs_person:
        frm = people.join(Person, Person.id == people.c.person_id)
        required = rules.required(home, Person.birth_date, Person.special_groups)
    else:
        required = rules.required(home)
    return (
        select(people.c.person_id.label("person_id"), home.label("home"))
        .select_from(frm)
        .where(required, not_(sampled_in(rules.round_id, people.c.person_id)))
        .subquery("excused_now")
    )


def freeze_excused(*, db_session: Session, rnd: Round) -> None:
    """Write down who is excused from ``rnd`` now (call it as the round closes): from then on
    its figures and its list of people not tested take these as its excused, whatever happens
    to anyone's placement or case later (ADR 0009, revision). Does nothing for a round already
    frozen."""
    if rnd.excused_frozen_at is not None:
        return
    people = _excused_now(rules_of(db_session, rnd), ())
    db_session.execute(
        insert(RoundExcused).from_select(
            ["round_id", "person_id", "region_code"],
            select(literal(rnd.id, Integer), people.c.person_id, people.c.home),
        )
    )
    rnd.excused_frozen_at = clock.now()
    db_session.flush()


def excused_by_region(
    db_session: Session, rules: RoundRules, scopes: Sequence[Scope], key_len: int | None
) -> dict[str, int]:
    """How many people the round's rules require are excused now (:func:`excused_by_home`),
    per home region inside every scope, summed by the first ``key_len`` characters of the code
    (the whole code when None)."""
    homes = excused_by_home(rules, scopes).subquery()
    key = homes.c.home if key_len is None else func.substr(homes.c.home, 1, key_len)
    inner = select(key.label("k"), homes.c.n).subquery()
    stmt = select(inner.c.k, func.sum(inner.c.n)).group_by(inner.c.k)
    return {k: int(n) for k, n in db_session.execute(stmt)}


# Writing the counters ----------------------------------------------------------------------


def _upsert_statement(
    dialect: str,
    model: type[RoundCoverage] | type[RoundScreeningHour],
    keys: Sequence[str],
    values: Sequence[str],
    source: AnySelect,
    *,
    replace: bool = False,
    returning: str | None = None,
    python_defaults: bool = True,
) -> Any:
    """INSERT the rows of ``source`` (``keys`` then ``values`` columns); where a row exists, add
    the values to it (or ``replace`` them); RETURNING the ``returning`` column of every row
    written. ``source`` must have a WHERE clause (SQLite's parser needs one before ON CONFLICT)
    and should be ordered by its keys: writers then lock rows in the same order, so two ingests
    touching the same grids queue instead of deadlocking. A Core statement on the table (the
    ORM's bulk layer adds nothing here but cost). Without ``python_defaults`` (PostgreSQL) the
    other columns take their server defaults."""
    tbl = model.__table__
    assert isinstance(tbl, Table)  # a declarative model's table
    stmt: Any
    if dialect == "postgresql":
        pg = postgresql.insert(tbl).from_select(
            [*keys, *values], source, include_defaults=python_defaults
        )
        pg_set = {v: pg.excluded[v] if replace else tbl.c[v] + pg.excluded[v] for v in values}
        stmt = pg.on_conflict_do_update(index_elements=list(keys), set_=pg_set)
    else:
        lite = sqlite.insert(tbl).from_select([*keys, *values], source)
        lite_set = {v: lite.excluded[v] if replace else tbl.c[v] + lite.excluded[v] for v in values}
        stmt = lite.on_conflict_do_update(index_elements=list(keys), set_=lite_set)
    return stmt if returning is None else stmt.returning(tbl.c[returning])


def _upsert(
    db_session: Session,
    model: type[RoundCoverage] | type[RoundScreeningHour],
    keys: Sequence[str],
    values: Sequence[str],
    source: AnySelect,
    *,
    replace: bool = False,
) -> None:
    """Run :func:`_upsert_statement` in the session's transaction."""
    dialect = db_session.get_bind().dialect.name
    stmt = _upsert_statement(dialect, model, keys, values, source, replace=replace)
    db_session.connection().execute(stmt)


def _hour_of(db_session: Session, instant: Any) -> Any:
    """SQL: the UTC hour an instant falls in, in the form the engine stores instants."""
    if is_postgres(db_session):
        # date_bin works on the instant itself: no time zone to convert (date_trunc's is slow).
        return func.date_bin(text("INTERVAL '1 hour'"), instant, text("TIMESTAMPTZ '2000-01-01Z'"))
    # SQLite keeps UTC instants as 'YYYY-MM-DD HH:MM:SS.ffffff' text (core.db).
    return func.strftime("%Y-%m-%d %H:00:00.000000", instant)


def snapshot_required(*, db_session: Session, round_id: int) -> None:
    """Record, per home region, how many people the round requires: everyone registered in the
    round's subtree whom no exemption names, counted now. Safe to call again (it replaces the
    figure, leaving the sampled counters alone). Refuses an unknown round and malformed
    exemptions stored on it (InvalidInput naming ``exemptions.N``)."""
    rnd = _round_by_id(db_session, round_id)
    rules = rules_of(db_session, rnd)
    db_session.execute(
        update(RoundCoverage).where(RoundCoverage.round_id == rnd.id).values(required=0)
    )
    source = (
        select(literal(rnd.id, Integer), Person.region_code, func.count())
        .where(rules.required(Person.region_code, Person.birth_date, Person.special_groups))
        .group_by(Person.region_code)
        .order_by(Person.region_code)
    )
    _upsert(
        db_session,
        RoundCoverage,
        ("round_id", "region_code"),
        ("required",),
        source,
        replace=True,
    )


def add_newcomers(*, db_session: Session, people: ColumnElement[bool]) -> None:
    """Count people registered while rounds are open (``people``: a condition on ``Person``)
    into the required figure of every open round whose rule names them: the snapshot taken when
    the round opened could not, and without this a newcomer who is sampled would count as sampled
    and required but never as required (coverage above 100%)."""
    open_rounds = db_session.execute(select(Round).where(Round.status == "open")).scalars().all()
    for rnd in open_rounds:
        rules = rules_of(db_session, rnd)
        source = (
            select(literal(rnd.id, Integer), Person.region_code, func.count())
            .where(
                people,
                rules.required(Person.region_code, Person.birth_date, Person.special_groups),
            )
            .group_by(Person.region_code)
            .order_by(Person.region_code)
        )
        _upsert(db_session, RoundCoverage, ("round_id", "region_code"), ("required",), source)


def add_sampled_from_verdict(
    *,
    db_session: Session,
    kept: dict[tuple[Any, ...], tuple[float, Any]] | None = None,
    rounds: Iterable[int] | None = None,
    known: Mapping[int, KeyedRound] | None = None,
) -> None:
    """Add the persons the ingest has just accepted (``scan_verdict`` rows with verdict 'ok',
    retests excepted) to their home regions' counters and to the hourly screening figures;
    creates the rows of regions the round had none for (people from elsewhere sampled in the
    round, with nothing required). Call once per landed chunk, after the members are inserted
    and before the temporary tables are cleared. Refuses nothing: rounds were checked upstream.

    The live API calls this for every group it commits, hundreds of times a second, and passes
    ``kept`` (a dict it keeps between calls): the two statements are then built once per round
    and reused for :data:`KEPT_FOR` seconds, so a group pays for running them, not for building
    them (the round's region tree read, the rules parsed, the statement composed). Given the
    chunk's ``rounds``, PostgreSQL counts both in one statement a round (:func:`_combined`).
    ``known`` gives rounds as the caller read them in this transaction (by id), which spares
    reading them again to find their statements.
    """
    if rounds is not None and is_postgres(db_session):
        # One statement a round, one pass over the verdicts for both counters.
        for round_id in sorted(set(rounds)):
            db_session.connection().execute(
                _kept(db_session, kept, round_id, combined=True, known=known)
            )
        return
    hours_stmt = _kept(db_session, kept, None)
    # The hours written name the rounds of the chunk: no second pass to find them.
    found = sorted(set(db_session.connection().execute(hours_stmt).scalars()))
    for round_id in found:
        db_session.connection().execute(_kept(db_session, kept, round_id))


class KeyedRound(Protocol):
    """What a round's coverage statement depends on (a ``Round``, or the live API's read of
    one, ``ingest.RoundNow``)."""

    @property
    def id(self) -> int: ...
    @property
    def region_code(self) -> str: ...
    @property
    def exemptions(self) -> str: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def deadline_at(self) -> datetime: ...


#: How long the live API reuses the counting statements built for a round. A change to the
#: round's exemptions or deadline is seen at once (they are part of the key); a change to the
#: region tree (a new grid) reaches the required flag within this time, as zone changes reach
#: the live API's pool sizes (``testing.ingest.SiteCache``).
KEPT_FOR = 30.0


def _kept(
    db_session: Session,
    kept: dict[tuple[Any, ...], tuple[float, Any]] | None,
    round_id: int | None,
    *,
    combined: bool = False,
    known: Mapping[int, KeyedRound] | None = None,
) -> Any:
    """The hours statement (``round_id`` None), the coverage statement of ``round_id``, or
    (``combined``) both of that round in one statement, from ``kept`` when it holds a fresh
    one; Core statements over the verdict table. ``known``: see
    :func:`add_sampled_from_verdict`."""
    dialect = db_session.get_bind().dialect.name
    rnd: Round | None = None
    if round_id is None:
        key: tuple[Any, ...] = (dialect,)
    else:
        seen = known.get(round_id) if known is not None else None
        if seen is None:
            seen = rnd = _round_by_id(db_session, round_id)
        # What the round's statement depends on: a change to any of these builds it again.
        key = (
            dialect,
            combined,
            seen.id,
            seen.region_code,
            seen.exemptions,
            seen.starts_at,
            seen.deadline_at,
        )
    now = time.monotonic()
    found = kept.get(key) if kept is not None else None
    if found is not None and found[0] > now:
        return found[1]
    if rnd is None and round_id is not None:
        rnd = _round_by_id(db_session, round_id)
    if rnd is None:
        stmt = _hours_statement(db_session)
    elif combined:
        stmt = _combined_statement(db_session, rules_of(db_session, rnd))
    else:
        stmt = _coverage_statement(dialect, rules_of(db_session, rnd))
    if kept is not None:
        if len(kept) > 1_000:
            kept.clear()
        kept[key] = (now + KEPT_FOR, stmt)
    return stmt


def _accepted() -> ColumnElement[bool]:
    v = VERDICT
    return and_(v.c.verdict == "ok", not_retest(v.c.retest))


def _hours_statement(db_session: Session, hours: Any = None) -> Any:
    """Add person-scans per (round, district, hour) of ``hours`` (a subquery of those three
    columns; by default the verdicts' accepted rows); returns the round of each row written."""
    if hours is None:
        v = VERDICT
        hours = (
            select(
                v.c.round_id.label("round_id"),
                func.substr(v.c.home, 1, 6).label("district"),
                _hour_of(db_session, v.c.scanned_at).label("hour"),
            )
            .where(_accepted())
            .subquery()
        )
    source = (
        select(hours.c.round_id, hours.c.district, hours.c.hour, func.count())
        .where(hours.c.district.is_not(None))
        .group_by(hours.c.round_id, hours.c.district, hours.c.hour)
        .order_by(hours.c.round_id, hours.c.district, hours.c.hour)
    )
    return _upsert_statement(
        db_session.get_bind().dialect.name,
        RoundScreeningHour,
        ("round_id", "district_code", "hour"),
        ("scans",),
        source,
        returning="round_id",
    )


def _verdicts_required(rules: RoundRules) -> tuple[ColumnElement[bool], Any]:
    """Whether a verdict row's person is required by the round's rules, and what to select it
    from (the verdicts, joined to the persons when a rule reads their birth date or groups)."""
    v = VERDICT
    if rules.needs_person:
        required = rules.required(v.c.home, Person.birth_date, Person.special_groups)
        return required, v.outerjoin(Person, Person.id == v.c.person_id)
    return rules.required(v.c.home), v


def _coverage_statement(dialect: str, rules: RoundRules) -> Any:
    """Add the verdicts' accepted people of one round to their home regions' counters."""
    v = VERDICT
    round_id = rules.round_id
    # A tube that already has a result (a late member; rare) counts towards results out.
    prior = select(Tube.result).where(Tube.id == v.c.tube_id).scalar_subquery()
    result = case((v.c.tube_id.is_(None), None), else_=prior)
    required, frm = _verdicts_required(rules)
    rows = (
        select(
            v.c.home.label("home"),
            _one_if(required).label("req"),
            _one_if(and_(required, v.c.scanned_at <= rules.deadline)).label("in_time"),
            result.label("result"),
        )
        .select_from(frm)
        .where(_accepted(), v.c.round_id == round_id)
        .subquery()
    )
    source = (
        select(
            literal(round_id, Integer),
            rows.c.home,
            func.count(),
            func.sum(rows.c.req),
            func.sum(rows.c.in_time),
            func.sum(_one_if(rows.c.result.is_not(None))),
            func.sum(_one_if(rows.c.result == "positive")),
        )
        .where(rows.c.home.is_not(None))
        .group_by(rows.c.home)
        .order_by(rows.c.home)
    )
    return _upsert_statement(
        dialect,
        RoundCoverage,
        ("round_id", "region_code"),
        ("sampled", "sampled_required", "on_time", "resulted", "positive_people"),
        source,
    )


def _combined_statement(db_session: Session, rules: RoundRules) -> Any:
    """PostgreSQL: the hours and the coverage counters of one round in one statement. The
    verdicts' accepted rows are grouped once (by home, hour, required, within the deadline, and
    the tube for a tube that existed before), and both upserts read those few groups."""
    v = VERDICT
    required, frm = _verdicts_required(rules)
    # Whether a person is required: per row where a rule reads the person, otherwise per group
    # of rows (the home region alone decides it: one test of the round's scope per region
    # instead of per row, text comparisons all).
    per_row = rules.needs_person
    groups = (
        select(
            v.c.home.label("home"),
            _hour_of(db_session, v.c.scanned_at).label("hour"),
            (required if per_row else literal(None)).label("req"),
            (v.c.scanned_at <= rules.deadline).label("by_deadline"),
            v.c.tube_id.label("old_tube"),
            func.count().label("n"),
        )
        .select_from(frm)
        .where(_accepted(), v.c.round_id == rules.round_id)
        # By position: the same expressions carry their own parameters in each clause.
        .group_by(text("1, 2, 3, 4, 5"))
        .cte("accepted_groups")
    )
    g = groups.c
    req = g.req if per_row else rules.required(g.home)
    hours = _upsert_statement(
        "postgresql",
        RoundScreeningHour,
        ("round_id", "district_code", "hour"),
        ("scans",),
        select(literal(rules.round_id, Integer), func.substr(g.home, 1, 6), g.hour, func.sum(g.n))
        .where(g.home.is_not(None))
        .group_by(text("1, 2, 3"))
        .order_by(text("1, 2, 3")),
    ).cte("hours_added")
    counted = select(
        literal(rules.round_id, Integer),
        g.home,
        func.sum(g.n),
        func.sum(case((req, g.n), else_=0)),
        func.sum(case((and_(req, g.by_deadline), g.n), else_=0)),
        # A tube that already has a result (a late member; rare) counts towards results out.
        func.sum(case((Tube.result.is_not(None), g.n), else_=0)),
        func.sum(case((Tube.result == "positive", g.n), else_=0)),
    )
    source = (
        counted.select_from(groups.outerjoin(Tube, Tube.id == g.old_tube))
        .where(g.home.is_not(None))
        .group_by(g.home)
        .order_by(g.home)
    )
    return _upsert_statement(
        "postgresql",
        RoundCoverage,
        ("round_id", "region_code"),
        ("sampled", "sampled_required", "on_time", "resulted", "positive_people"),
        source,
        # The other counters start at their server defaults: SQLAlchemy does not fill Python
        # defaults into an INSERT that carries another INSERT in its WITH.
        python_defaults=False,
    ).add_cte(hours)


def add_results(*, db_session: Session, tube_ids: Iterable[int] | AnySelect) -> None:
    """Count the results just recorded on ``tube_ids`` (a list of ids, or a SELECT of one column
    of ids): results out and positive people per member's home region, and each positive tube
    once, in its first member's home region. Call it once per tube, when its result goes from
    none to one (a tube passed twice is counted twice); retest tubes are not counted."""
    _count_results(db_session, tube_ids, sign=1)


def remove_results(*, db_session: Session, tube_ids: Iterable[int] | AnySelect) -> None:
    """Take back what :func:`add_results` counted for ``tube_ids``: call it before a recorded
    result is changed (e.g. a conflict resolved the other way), then add_results after."""
    _count_results(db_session, tube_ids, sign=-1)


def _count_results(db_session: Session, tube_ids: Iterable[int] | AnySelect, *, sign: int) -> None:
    # Through the indexes only: the members and tubes of the ids, however few the statistics
    # (taken before the round's upload) say there are; a hash join read every tube of the round
    # for each chunk of an upload.
    with index_lookups(db_session), sort_memory(db_session, _RESULT_SORT_MB):
        # The ids name the tubes, not the members: a probe a tube and then its members, rather
        # than a probe of the tube for each of its members.
        if isinstance(tube_ids, Select):
            _count_result_slice(db_session, Tube.id.in_(tube_ids), sign)
            return
        ids = sorted({int(i) for i in tube_ids})
        for chunk in id_chunks(db_session, ids):
            _count_result_slice(db_session, among(db_session, Tube.id, chunk), sign)


#: The members of an upload's chunk of 50,000 tubes are sorted by home region to be counted:
#: half a million rows, which PostgreSQL's default 4 MB of sort memory spilled to disk (20 MB,
#: a tenth of the statement's time).
_RESULT_SORT_MB = 64


def _count_result_slice(db_session: Session, which: ColumnElement[bool], sign: int) -> None:
    m = TubeMember
    positive = Tube.result == "positive"
    resulted = func.sum(_one_if(Tube.result.is_not(None)))
    # "Has a result" is counted, not filtered on: as a WHERE condition the planner, whose
    # statistics still say no tube of the round has a result, walked every resulted tube by the
    # (round, result) index and checked each against the ids (a 90,000-tube upload took three
    # minutes, quadratic in the tubes already resulted); from the ids, it is a probe a tube.
    source = (
        select(
            m.round_id,
            m.region_code,
            resulted * sign,
            func.sum(_one_if(positive)) * sign,
            func.sum(_one_if(and_(positive, m.position == 1))) * sign,
        )
        .join(Tube, Tube.id == m.tube_id)
        .where(which, not_retest(m.retest))
        .group_by(m.round_id, m.region_code)
        .having(resulted > 0)
        .order_by(m.round_id, m.region_code)
    )
    _upsert(
        db_session,
        RoundCoverage,
        ("round_id", "region_code"),
        ("resulted", "positive_people", "positive_tubes"),
        source,
    )


def rebuild(*, db_session: Session, round_id: int) -> None:
    """Recompute every coverage and screening figure of the round from the record: required from
    the registry now, the rest from its tube members and tube results. The repair path; a full
    city round takes seconds, not the milliseconds of the incremental path. Refuses an unknown
    round and malformed exemptions."""
    rnd = _round_by_id(db_session, round_id)
    rules = rules_of(db_session, rnd)
    db_session.execute(delete(RoundCoverage).where(RoundCoverage.round_id == rnd.id))
    db_session.execute(delete(RoundScreeningHour).where(RoundScreeningHour.round_id == rnd.id))
    snapshot_required(db_session=db_session, round_id=rnd.id)
    m = TubeMember
    if rules.needs_person:
        required = rules.required(m.region_code, Person.birth_date, Person.special_groups)
    else:
        required = rules.required(m.region_code)
    positive = Tube.result == "positive"
    stmt = (
        select(
            literal(rnd.id, Integer),
            m.region_code,
            func.count(),
            func.sum(_one_if(required)),
            func.sum(_one_if(and_(required, m.scanned_at <= rnd.deadline_at))),
            func.sum(_one_if(Tube.result.is_not(None))),
            func.sum(_one_if(positive)),
            func.sum(_one_if(and_(positive, m.position == 1))),
        )
        .select_from(m)
        .outerjoin(Tube, Tube.id == m.tube_id)
    )
    if rules.needs_person:
        stmt = stmt.outerjoin(Person, Person.id == m.person_id)
    source = (
        stmt.where(m.round_id == rnd.id, not_retest(m.retest))
        .group_by(m.region_code)
        .order_by(m.region_code)
    )
    _upsert(
        db_session,
        RoundCoverage,
        ("round_id", "region_code"),
        (
            "sampled",
            "sampled_required",
            "on_time",
            "resulted",
            "positive_people",
            "positive_tubes",
        ),
        source,
    )
    hours = (
        select(
            m.round_id.label("round_id"),
            func.substr(m.region_code, 1, 6).label("district"),
            _hour_of(db_session, m.scanned_at).label("hour"),
        )
        .where(m.round_id == rnd.id, not_retest(m.retest))
        .subquery()
    )
    db_session.connection().execute(_hours_statement(db_session, hours))
