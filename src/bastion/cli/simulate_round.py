"""``bastion simulate round``: a whole mass-testing round over the demo province, through the
same bulk paths real scans and results take (:mod:`bastion.simulate.round`).

:func:`register` adds the command to the ``simulate`` command group
(``simulate_round.register(simulate_app)`` in bastion.cli.simulate).
"""

from __future__ import annotations

import time
from datetime import datetime

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bastion.cli.common import console, domain_errors, err_console
from bastion.core import clock
from bastion.core.db import transaction
from bastion.core.errors import InvalidInput

STAGES = {
    "sampling": "sampling 采样 (residents)",
    "results": "lab results 检测 (tubes)",
    "retests": "retests 复核 (tubes)",
}


def parse_start(value: str | None) -> datetime | None:
    """An ISO 8601 time; without an offset it is local time (Asia/Shanghai by default)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput.one("start", "field.bad_datetime", value=value[:40]) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=clock.local_tz())


@domain_errors
def simulate_round_command(
    region: str = typer.Option(
        ..., "--region", help="Region code: everyone registered below it is to be tested"
    ),
    prevalence: float = typer.Option(
        ..., help="Share of people infected, clustered by household (0.001 = 1 in 1,000)"
    ),
    seed: int = typer.Option(1, help="The same seed over the same registry gives the same round"),
    code: str | None = typer.Option(None, help="Round code [default: SIM-<region>-<seed>]"),
    start: str | None = typer.Option(
        None,
        help="Start of the round, ISO 8601, local time unless an offset is given "
        "[default: local midnight two days ago; at least 48 h ago]",
    ),
    pool: int = typer.Option(
        10, help="People per tube outside lockdown and control zones (1, 5, 10, 20)"
    ),
    control: int = typer.Option(5, help="People per tube in control zones (1, 5, 10, 20)"),
    lockdown: str = typer.Option("1", help="Lockdown zones: 1 (single tubes) or 'household'"),
) -> None:
    """Run a whole testing round for the residents of a region: sites and labs, scans by site
    and hour, boxes handed over to the city's lab, results with the given prevalence, holds of
    positive pools and their single-tube retests. Running it again changes nothing."""
    from bastion.simulate.round import simulate_round

    policy: dict[str, int | str] = {
        "lockdown": int(lockdown) if lockdown.strip().isdigit() else lockdown.strip(),
        "control": control,
        "elsewhere": pool,
    }
    started = time.perf_counter()
    with (
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as bar,
        transaction() as session,
    ):
        tasks: dict[str, TaskID] = {}

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGES.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = simulate_round(
            db_session=session,
            region_code=region.strip(),
            prevalence=prevalence,
            seed=seed,
            code=code,
            start=parse_start(start),
            pool_policy=policy,
            progress=advance,
        )
    seconds = time.perf_counter() - started

    def local(moment: datetime | None) -> str:
        return "—" if moment is None else clock.to_local(moment).strftime("%Y-%m-%d %H:%M")

    def share(part: int, whole: int) -> str:
        return f"{part:,}" if whole == 0 else f"{part:,} ({part / whole:.1%})"

    table = Table(
        title=f"{summary.round_code} · region {summary.region_code} · seed {summary.seed} · "
        f"prevalence {summary.prevalence:g}",
        title_justify="left",
    )
    table.add_column("what")
    table.add_column("figure", justify="right")
    table.add_row("sites / labs 采样点 / 实验室", f"{summary.sites:,} / {summary.labs:,}")
    table.add_row("people required 应检", f"{summary.required:,}")
    table.add_row("people sampled 已采", share(summary.sampled, summary.required))
    table.add_row("  of whom off their grid 跨网格", f"{summary.off_grid:,}")
    table.add_row("tubes 采样管", f"{summary.tubes:,}")
    table.add_row("boxes 转运箱", f"{summary.boxes:,}")
    table.add_row("positive tubes 阳性管", share(summary.positive_tubes, summary.tubes))
    table.add_row("invalid tubes 无效管", f"{summary.invalid_tubes:,}")
    table.add_row("people held 混管阳性人员", f"{summary.people_in_positive_tubes:,}")
    table.add_row("retests 复核单管", f"{summary.retest_tubes:,}")
    table.add_row(
        "positive people after retest 复核阳性",
        f"{summary.positive_people:,} (infected sampled: {summary.infected_sampled:,})",
    )
    table.add_row(
        "holds confirmed/reversed/open 混管结果",
        f"{summary.holds_confirmed:,} / {summary.holds_reversed:,} / {summary.holds_open:,}",
    )
    table.add_row("retest tasks open 未完成复核", f"{summary.retest_tasks_open:,}")
    table.add_row(
        "refused scans / results 拒收", f"{summary.refused_scans:,} / {summary.refused_results:,}"
    )
    table.add_row(
        "start → deadline 时限", f"{local(summary.starts_at)} → {local(summary.deadline_at)}"
    )
    table.add_row(
        "sampling 采样", f"{local(summary.first_scan_at)} → {local(summary.last_scan_at)}"
    )
    table.add_row("last result 最后结果", local(summary.last_upload_at))
    span = summary.span
    table.add_row(
        "start → last result 总时长",
        "—" if span is None else f"{span.total_seconds() / 3600:.1f} h",
    )
    console.print(table)
    rate = summary.sampled / seconds if seconds > 0 else 0.0
    console.print(f"simulated in {seconds:.1f} s ({rate:,.0f} people/s)")


def register(app: typer.Typer) -> None:
    app.command("round")(simulate_round_command)
