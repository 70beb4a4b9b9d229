"""The entry point: :func:`simulate_round` checks its arguments, sets the round up and plays
it community by community (see the package docstring)."""

from __future__ import annotations

import math
import time as wall_clock
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session

from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.errors import InvalidInput
from bastion.regions import service as region_service
from bastion.simulate.round.layout import layout_of
from bastion.simulate.round.params import (
    ATTENDANCE,
    DEFAULT_POLICY,
    HOUSEHOLD_ATTACK,
    LEAD,
    Progress,
)
from bastion.simulate.round.people import Visit, plan_community, residents_of
from bastion.simulate.round.run import Run
from bastion.simulate.round.setup import ensure_labs, ensure_round, ensure_sites, round_name
from bastion.simulate.round.summary import RoundSummary, summarise
from bastion.simulate.round.window import arrival_window
from bastion.testing import pooling
from bastion.testing import service as testing_service


def default_start(today: date | None = None) -> datetime:
    """Local midnight two days before ``today`` (the clock's by default): the whole round lies
    in the past."""
    day = (today or clock.today()) - timedelta(days=2)
    return datetime.combine(day, time(0), tzinfo=clock.local_tz())


def simulate_round(
    *,
    db_session: Session,
    region_code: str,
    prevalence: float,
    seed: int,
    code: str | None = None,
    start: datetime | None = None,
    pool_policy: Mapping[str, int | str] | None = None,
    progress: Progress | None = None,
) -> RoundSummary:
    """Run a whole testing round over the residents of ``region_code`` (see the module
    docstring), in the caller's transaction, as the system. ``code`` defaults to
    ``SIM-<region>-<seed>``, ``start`` to local midnight two days ago, ``pool_policy`` to
    lockdown 1, control 5, elsewhere 10. Running it again with the same arguments changes
    nothing and returns the same figures.

    Refuses a prevalence outside [0, 1], an unknown region or one where nobody lives (by grid or
    community), a start without a zone or less than :data:`LEAD` ago, a malformed code or pool
    policy, and a round code already used by a different round (Conflict)."""
    began = wall_clock.perf_counter()
    principal = system_principal()
    limit = clock.now()
    if not (isinstance(prevalence, int | float) and math.isfinite(prevalence)) or not (
        0.0 <= prevalence <= 1.0
    ):
        raise InvalidInput.one("prevalence", "simulate.bad_prevalence", value=prevalence)
    region = region_service.get(db_session=db_session, code=region_code)
    if region is None:
        raise InvalidInput.one("region", "error.region_unknown", region=region_code[:20])
    if start is not None:
        if start.tzinfo is None:
            raise InvalidInput.one("start", "field.needs_timezone")
        start = start.astimezone(UTC)
        if start + LEAD > limit:
            raise InvalidInput.one(
                "start", "simulate.start_too_recent", hours=int(LEAD.total_seconds() // 3600)
            )
    layout = layout_of(db_session, region_code)
    if not layout.communities:
        raise InvalidInput.one("region", "simulate.no_people", region=region_code)
    policy = dict(DEFAULT_POLICY) | dict(pool_policy or {})
    try:
        pooling.PoolPolicy.from_dict(dict(policy))
    except pooling.PoolPolicyError as err:
        raise InvalidInput.one(f"pool_policy.{err.field}", err.reason, **err.params) from None
    code = code or f"SIM-{region_code}-{seed}"
    rnd = ensure_round(
        db_session,
        principal,
        code=code,
        name=round_name(region, seed, prevalence),
        region_code=region_code,
        start=start,
        default_start=default_start(),
        policy=policy,
    )
    if rnd.starts_at + LEAD > limit:
        raise InvalidInput.one(
            "start", "simulate.start_too_recent", hours=int(LEAD.total_seconds() // 3600)
        )
    ensure_labs(db_session, principal, layout)
    ensure_sites(db_session, principal, layout)
    on = clock.to_local(rnd.starts_at).date()
    round_policy = testing_service.policy_of(rnd)
    for site in layout.sites:
        site.size = round_policy.size_for(
            testing_service.zone_kind_of(db_session=db_session, region_code=site.community, on=on)
        )

    run = Run(db_session, principal, rnd, seed, layout, limit, progress, prevalence)
    window = arrival_window(rnd.starts_at, rnd.deadline_at)
    attendance = run.rng("attendance").uniform(*ATTENDANCE)
    attack = HOUSEHOLD_ATTACK if prevalence <= HOUSEHOLD_ATTACK else prevalence
    household_rate = min(1.0, prevalence / attack) if attack > 0 else 0.0
    scope = region_service.scope_of(db_session=db_session, code=region_code)
    total = layout.residents
    done = 0
    # Off-grid households go to the next site in the round's order (the same community's next
    # site, or the next community's first), which is run after theirs; the last site's stay.
    incoming: list[Visit] = []
    last_site = layout.sites[-1].code
    for community in layout.communities:
        plan = plan_community(
            run.rng("community", community.code),
            residents_of(db_session, scope, community.code),
            window=window,
            attendance=attendance,
            household_rate=household_rate,
            attack=attack,
            site_of_grid=layout.site_of_grid,
            fallback=community.sites[0],
        )
        for site in community.sites:
            visits = plan.by_site.get(site.code, []) + incoming
            incoming = plan.away.get(site.code, [])
            if site.code == last_site:
                visits += incoming
            run.run_site(site, visits)
        done += community.residents
        run.tell("sampling", done, total)
    run.run_labs(retest=False, stage="results")
    run.retests()
    summary = summarise(db_session=db_session, rnd=rnd, seed=seed, prevalence=prevalence)
    return replace(
        summary,
        sites=len(layout.sites),
        labs=len(layout.cities),
        infected_sampled=len(run.infected),
        refused_scans=run.refused_scans,
        refused_results=run.refused_results,
        seconds=wall_clock.perf_counter() - began,
    )
