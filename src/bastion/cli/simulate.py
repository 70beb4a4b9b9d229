"""``bastion simulate …``: synthetic populations for demos, tests and benchmarks."""

from __future__ import annotations

import time

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from bastion.cli.common import console, domain_errors, err_console
from bastion.core.db import transaction
from bastion.simulate.province import PROVINCE_POPULATION, ProvinceSummary

simulate_app = typer.Typer(help="Synthetic populations: the demo province.", no_args_is_help=True)

SCALE_HELP = (
    f"Share of the real population: 1.0 = all {PROVINCE_POPULATION:,} people, "
    f"0.01 ≈ {round(PROVINCE_POPULATION * 0.01):,}"
)


@simulate_app.command("province")
@domain_errors
def simulate_province(
    scale: float = typer.Option(0.01, help=SCALE_HELP),
    seed: int = typer.Option(1, help="The same seed (on the same day) gives the same people"),
) -> None:
    """Build the demo province (regions below the districts, buildings, households, persons)
    into the database, which must not hold any persons yet."""
    summary, seconds = build_with_progress(scale=scale, seed=seed)
    print_summary(summary, seconds)


def build_with_progress(*, scale: float, seed: int) -> tuple[ProvinceSummary, float]:
    """Build the province in one transaction of its own, with a progress bar on stderr;
    returns the summary and the seconds it took, commit included."""
    from bastion.simulate import province

    started = time.perf_counter()
    with (
        Progress(
            TextColumn("[bold]building the province"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("persons"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as bar,
        transaction() as session,
    ):
        task = bar.add_task("build", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = province.build_province(
            db_session=session, scale=scale, seed=seed, progress=advance
        )
    return summary, time.perf_counter() - started


def print_summary(summary: ProvinceSummary, seconds: float) -> None:
    """What the build added, as a table, and how fast it went."""
    table = Table(title=f"Demo province (scale {summary.scale:g}, seed {summary.seed})")
    table.add_column("what")
    table.add_column("added", justify="right")
    table.add_row("persons", f"{summary.persons:,}")
    table.add_row("households", f"{summary.households:,}")
    table.add_row("buildings", f"{summary.buildings:,}")
    for level in ("district", "street", "community", "grid"):
        table.add_row(f"regions: {level}", f"{summary.regions.get(level, 0):,}")
    console.print(table)
    rate = summary.persons / seconds if seconds > 0 else 0.0
    console.print(f"built in {seconds:.1f} s ({rate:,.0f} persons/s)")


# `bastion simulate round` lives in its own module.
from bastion.cli import simulate_round  # noqa: E402 - needs simulate_app defined above

simulate_round.register(simulate_app)

# `bastion simulate outbreak` too.
from bastion.cli import simulate_outbreak  # noqa: E402 - needs simulate_app defined above

simulate_outbreak.register(simulate_app)
