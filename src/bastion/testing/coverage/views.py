"""Reading coverage: a region's view of a round, a round's status by city, the people not yet
tested in a grid, and the bulletin's screening figures."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, case, func, literal, not_, select
from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import Perm, Principal
from bastion.core.errors import InvalidInput, NotFound
from bastion.regions import service as region_service
from bastion.regions.codes import Scope, is_valid_code
from bastion.regions.models import Region
from bastion.registry.models import Person
from bastion.testing import service as testing_service
from bastion.testing.coverage.counters import (
    COUNTERS,
    excused_by_home,
    not_retest,
    rules_of,
    sampled_in,
)
from bastion.testing.coverage.schemas import (
    CoverageFigures,
    CoverageRow,
    CoverageView,
    RoundStatus,
    Screened,
)
from bastion.testing.models import Round, RoundCoverage, RoundScreeningHour, TubeMember

MAX_PAGE = 500
INT32_MAX = 2_147_483_647
#: Codes at least this long may hold a not-yet-tested list (communities and grids).
NOT_TESTED_MIN_CODE = 12
#: Days the screening figures may be asked for (beyond them local midnights overflow).
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2999, 12, 31)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _figures(counts: Sequence[int]) -> dict[str, Any]:
    c = dict(zip(COUNTERS, (int(x or 0) for x in counts), strict=True))
    return {
        **c,
        "not_tested": max(c["required"] - c["sampled_required"], 0),
        "coverage": _share(c["sampled_required"], c["required"]),
        "on_time_share": _share(c["on_time"], c["required"]),
        "results_share": _share(c["resulted"], c["sampled"]),
    }


def _add(a: Sequence[int], b: Sequence[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _row(
    code: str,
    region: Region | None,
    counts: Sequence[int],
    *,
    late_now: bool,
    unassigned: bool = False,
) -> CoverageRow:
    figures = _figures(counts)
    return CoverageRow(
        code=code,
        name_zh=region.name_zh if region else code,
        name_en=region.name_en if region else code,
        level=region.level if region else (region_service.level_of(code) or ""),
        unassigned=unassigned,
        late=late_now and figures["not_tested"] > 0,
        **figures,
    )


def counts_by_region(
    db_session: Session, rnd: Round, scopes: Sequence[Scope], key_len: int | None
) -> dict[str, list[int]]:
    """The round's counters (in :data:`COUNTERS` order) inside every scope, summed by the first
    ``key_len`` characters of the region code (the whole code when None; everything under the
    key ``""`` when 0), with the people excused now (under isolation control or with an open
    case, not sampled: ADR 0009) taken out of ``required``.

    The one reading of the isolation-aware figures: the views, :func:`figures` (the bulletin,
    the simulator) all come through here, so they never disagree. The excused are taken out
    grid by grid, never below a grid's own figure (a person who moved since the snapshot is
    counted at their old home and excused at their new one until the next rebuild), before
    anything is summed: every roll-up of the same grids gives the same total. One statement:
    the counter rows of the region, left-joined to the excused count per home
    (:func:`~bastion.testing.coverage.counters.excused_by_home`, which starts from the people
    under control, never from the registry)."""
    rc = RoundCoverage
    excused = excused_by_home(rules_of(db_session, rnd), scopes).subquery("excused")
    taken = case(
        (excused.c.n.is_(None), 0), (excused.c.n > rc.required, rc.required), else_=excused.c.n
    )
    key: Any
    if key_len is None:
        key = rc.region_code
    elif key_len == 0:
        key = literal("", String)
    else:
        key = func.substr(rc.region_code, 1, key_len)
    columns = [
        (rc.required - taken if c == "required" else getattr(rc, c)).label(c) for c in COUNTERS
    ]
    inner = (
        select(key.label("k"), *columns)
        .select_from(rc)
        .outerjoin(excused, excused.c.home == rc.region_code)
        .where(rc.round_id == rnd.id, *(s.clause(rc.region_code) for s in scopes))
        .subquery()
    )
    stmt = select(inner.c.k, *(func.sum(inner.c[c]) for c in COUNTERS)).group_by(inner.c.k)
    return {k: [int(x or 0) for x in rest] for k, *rest in db_session.execute(stmt)}


def figures(*, db_session: Session, rnd: Round, scopes: Sequence[Scope] = ()) -> CoverageFigures:
    """The round's figures summed over every region inside all ``scopes`` (the whole round when
    none), as the views show them: the excused taken out of ``required``
    (:func:`counts_by_region`). For readers that need one region's totals (the bulletin's round
    section, the simulator's summary); checks nothing, the caller has."""
    counts = counts_by_region(db_session, rnd, scopes, 0).get("", [0] * len(COUNTERS))
    return CoverageFigures(**_figures(counts))


def _six_digit_regions(db_session: Session) -> dict[str, Region]:
    return {
        r.code: r
        for r in db_session.execute(select(Region).where(func.length(Region.code) == 6)).scalars()
    }


def _check_region_code(code: str) -> None:
    if not is_valid_code(code):
        raise InvalidInput.one("region", "error.region_unknown", region=code[:20])


def get_round(*, db_session: Session, principal: Principal, ref: str) -> Round:
    """A round by id, code or ``latest`` inside the principal's view; an id too large to be one
    or a reference no round code could match is simply not found (never a database error)."""
    ref = ref.strip()
    if ref.isascii() and ref.isdigit():
        if int(ref) > INT32_MAX:
            raise NotFound("round.not_found", round=ref[:40])
    elif ref != "latest" and not testing_service.CODE_RE.match(ref):
        raise NotFound("round.not_found", round=ref[:40])
    return testing_service.get_round(db_session=db_session, principal=principal, ref=ref)


def view(
    *, db_session: Session, principal: Principal, ref: str, region_code: str | None = None
) -> CoverageView:
    """The coverage of round ``ref`` in ``region_code`` (default: the round's region, or the
    user's own when the round is above it): the region's totals and one row per child region.
    Reads only the round's counters inside the region. Refuses a user without the testing
    permission, a round the user cannot see (404), an unknown region and a region outside the
    user's subtree (403)."""
    principal.require(Perm.testing_read)
    rnd = get_round(db_session=db_session, principal=principal, ref=ref)
    if region_code is None:
        inside = principal.scope.contains(rnd.region_code)
        region_code = rnd.region_code if inside else principal.region_code
    _check_region_code(region_code)
    region = region_service.get_or_404(db_session=db_session, code=region_code)
    principal.require_region(region.code)
    scope = region_service.scope_of(db_session=db_session, code=region.code)
    children = (
        db_session.execute(
            select(Region).where(Region.parent_code == region.code).order_by(Region.code)
        )
        .scalars()
        .all()
    )
    if children:
        key_len: int | None = min(len(c.code) for c in children)
    else:
        key_len = len(region.code) + 3 if len(region.code) < 15 else len(region.code)
    grouped = counts_by_region(db_session, rnd, (scope, principal.scope), key_len)
    by_code = {c.code: c for c in children}
    six = _six_digit_regions(db_session) if key_len == 6 else {}
    zero = [0] * len(COUNTERS)
    sums: dict[str, list[int]] = {c.code: list(zero) for c in children}
    unassigned = list(zero)
    for key, counts in grouped.items():
        target = _child_for(key, region.code, by_code, six)
        if target is None:
            unassigned = _add(unassigned, counts)
        else:
            sums[target] = _add(sums.get(target, zero), counts)
    now = clock.now()
    late_now = now > rnd.deadline_at
    rows = [
        _row(code, by_code.get(code) or db_session.get(Region, code), counts, late_now=late_now)
        for code, counts in sorted(sums.items())
    ]
    if any(unassigned) and rows:
        rows.append(_row(region.code, region, unassigned, late_now=late_now, unassigned=True))
    total = list(zero)
    for counts in grouped.values():
        total = _add(total, counts)
    return CoverageView(
        round_id=rnd.id,
        round_code=rnd.code,
        round_name=rnd.name,
        round_status=rnd.status,
        deadline_at=rnd.deadline_at,
        as_of=now,
        region=_row(region.code, region, total, late_now=late_now),
        rows=rows,
    )


def _child_for(
    key: str, parent: str, children: dict[str, Region], six: dict[str, Region]
) -> str | None:
    """The child of ``parent`` a grouped code belongs to; None for ``parent`` itself."""
    if key == parent:
        return None
    if key in children:
        return key
    node = six.get(key)
    while node is not None and node.parent_code is not None:
        if node.parent_code in children:
            return node.parent_code
        if node.parent_code == parent:
            break
        node = six.get(node.parent_code)
    # A code below ``parent`` with no region row: shown under its own code.
    return key


def round_status(*, db_session: Session, principal: Principal, ref: str) -> RoundStatus:
    """A whole round at a glance, within the user's subtree: totals and one row per city (cities
    whose residents were sampled in the round though not required by it included). Refuses a
    user without the testing permission and a round the user cannot see."""
    principal.require(Perm.testing_read)
    rnd = get_round(db_session=db_session, principal=principal, ref=ref)
    grouped = counts_by_region(db_session, rnd, (principal.scope,), 6)
    six = _six_digit_regions(db_session)
    zero = [0] * len(COUNTERS)
    cities: dict[str, list[int]] = {}
    total = list(zero)
    for key, counts in grouped.items():
        city = _city_of(key, six)
        cities[city] = _add(cities.get(city, zero), counts)
        total = _add(total, counts)
    now = clock.now()
    late_now = now > rnd.deadline_at
    rows = [
        _row(code, six.get(code), counts, late_now=late_now)
        for code, counts in sorted(cities.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]
    return RoundStatus(
        round_id=rnd.id,
        round_code=rnd.code,
        round_name=rnd.name,
        region_code=rnd.region_code,
        round_status=rnd.status,
        starts_at=rnd.starts_at,
        deadline_at=rnd.deadline_at,
        as_of=now,
        totals=_row(
            rnd.region_code, db_session.get(Region, rnd.region_code), total, late_now=late_now
        ),
        cities=rows,
    )


def _city_of(code: str, six: dict[str, Region]) -> str:
    """The city (or county-level city under the province) a 6-digit code sits in."""
    node = six.get(code)
    while node is not None:
        if node.level == "city" or node.parent_code is None:
            return node.code
        parent = six.get(node.parent_code)
        if parent is None or parent.level == "province":
            return node.code
        node = parent
    return code


def not_tested(
    *,
    db_session: Session,
    principal: Principal,
    ref: str,
    region_code: str,
    offset: int = 0,
    limit: int = 50,
) -> tuple[Sequence[Person], int]:
    """One page of the people round ``ref`` requires in ``region_code`` (a grid or a community)
    who have not been sampled yet, in address order, and how many there are in all. Refuses a
    user without the testing and registry permissions, a round the user cannot see, a region
    above a community (the list is a door-knocking list), an unknown region, a region outside
    the user's subtree, and a page out of range."""
    principal.require(Perm.testing_read)
    principal.require(Perm.registry_read)
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput.one("limit", "field.out_of_range", min=1, max=MAX_PAGE)
    if offset < 0:
        raise InvalidInput.one("offset", "field.out_of_range", min=0, max="∞")
    rnd = get_round(db_session=db_session, principal=principal, ref=ref)
    _check_region_code(region_code)
    if len(region_code) < NOT_TESTED_MIN_CODE:
        raise InvalidInput.one("region", "testing.not_tested_needs_grid")
    region = region_service.get_or_404(db_session=db_session, code=region_code)
    principal.require_region(region.code)
    rules = rules_of(db_session, rnd)
    conditions = [
        region_service.scope_of(db_session=db_session, code=region.code).clause(Person.region_code),
        principal.scope.clause(Person.region_code),
        # Required by the rules and not excused now (under isolation control or with an open
        # case: tested on their own schedule; ADR 0009).
        rules.required(Person.region_code, Person.birth_date, Person.special_groups, Person.id),
        not_(sampled_in(rnd.id, Person.id)),
    ]
    total = db_session.execute(
        select(func.count()).select_from(Person).where(*conditions)
    ).scalar_one()
    page = (
        db_session.execute(
            select(Person)
            .where(*conditions)
            .order_by(Person.address, Person.id)
            .offset(offset)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    return page, int(total)


# Screening figures for the bulletin ---------------------------------------------------------


def screened_on(*, db_session: Session, region_code: str, day: date) -> int:
    """Person-scans (retests excepted, every round) of people living in ``region_code``'s
    subtree, made during local day ``day``."""
    start, end = clock.local_day_bounds(day)
    return _screened(db_session, region_code, start, end)


def screened_cumulative(*, db_session: Session, region_code: str, day: date) -> int:
    """Person-times screened (retests excepted, every round) of people living in
    ``region_code``'s subtree, from the first round to the end of local day ``day``."""
    _, end = clock.local_day_bounds(day)
    return _screened(db_session, region_code, None, end)


def _on_the_hour(instant: datetime | None) -> bool:
    return instant is None or (instant.minute, instant.second, instant.microsecond) == (0, 0, 0)


def _screened(db_session: Session, region_code: str, start: datetime | None, end: datetime) -> int:
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    coarse = len(scope.prefix) <= 6 and all(len(e) <= 6 for e in scope.excluded)
    if coarse and _on_the_hour(start) and _on_the_hour(end):
        h = RoundScreeningHour
        conditions = [scope.clause(h.district_code), h.hour < end]
        if start is not None:
            conditions.append(h.hour >= start)
        total = db_session.execute(select(func.sum(h.scans)).where(*conditions)).scalar_one()
        return int(total or 0)
    # Below a district (or a zone whose days do not start on the hour): count the members, one
    # index range per round.
    m = TubeMember
    conditions = [
        m.round_id.in_(select(Round.id)),
        scope.clause(m.region_code),
        not_retest(m.retest),
        m.scanned_at < end,
    ]
    if start is not None:
        conditions.append(m.scanned_at >= start)
    return int(db_session.execute(select(func.count()).where(*conditions)).scalar_one())


def screened(*, db_session: Session, principal: Principal, region_code: str, day: date) -> Screened:
    """The bulletin's screening figures of ``region_code`` for ``day``. Refuses a user without
    the testing permission, an unknown region and one outside the user's subtree."""
    principal.require(Perm.testing_read)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput.one(
            "day", "field.out_of_range", min=FIRST_DAY.isoformat(), max=LAST_DAY.isoformat()
        )
    _check_region_code(region_code)
    region = region_service.get_or_404(db_session=db_session, code=region_code)
    principal.require_region(region.code)
    return Screened(
        region_code=region.code,
        day=day,
        screened=screened_on(db_session=db_session, region_code=region.code, day=day),
        cumulative=screened_cumulative(db_session=db_session, region_code=region.code, day=day),
    )
