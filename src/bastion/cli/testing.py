"""``bastion testing …``: mass-testing commands (results import, lab status, …)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.console import JustifyMethod
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bastion.cli.common import console, domain_errors, err_console
from bastion.core import clock
from bastion.core.auth import system_principal
from bastion.core.db import transaction

testing_app = typer.Typer(
    help="Mass testing: scans, transport, lab results and figures.", no_args_is_help=True
)

MAX_PROBLEMS_SHOWN = 200
RATING_STYLE = {"green": "bold green", "yellow": "bold yellow", "red": "bold red"}


@testing_app.command("import-results")
@domain_errors
def import_results(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
) -> None:
    """Import lab results from CSV (columns lab, tube, result, ct_orf1ab, ct_n, received_at,
    tested_at), streamed; good rows land, every refused row is reported. Exit 2 when rows were
    refused."""
    from bastion.testing import flows, results

    size = file.stat().st_size
    with (
        file.open("rb") as binary,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rows]} rows"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=size < 1_000_000,
        ) as progress,
    ):
        task = progress.add_task(file.name, total=max(size, 1), rows=0)

        def advance(report: results.ResultReport) -> None:
            position = binary.tell() if not binary.closed else size
            progress.update(task, completed=min(position, size), rows=report.rows)

        with transaction() as session:
            # Through the flow: the positives become cases and contacts in the same transaction.
            report = flows.import_results_file(
                db_session=session, principal=system_principal(), binary=binary, on_chunk=advance
            )
    console.print(
        f"{report.rows} rows: [green]{report.accepted} recorded[/], "
        f"{report.unchanged} unchanged, [yellow]{report.conflicts} conflicts[/], "
        f"[red]{report.refused} refused[/]"
        + (
            f", {report.received_from_file} received from the file"
            if report.received_from_file
            else ""
        )
    )
    outcome = getattr(report, "tracing", None)
    if outcome is not None and outcome.case_ids:
        console.print(
            f"{len(outcome.case_ids)} new cases, {outcome.close_contacts} close and "
            f"{outcome.secondary_contacts} secondary contacts traced"
        )
    if report.stopped:
        err_console.print("[bold red]the file could not be read to its end[/]")
    for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
        err_console.print(f"  {problem.text('en')}")
    if report.refused > MAX_PROBLEMS_SHOWN:
        err_console.print(f"  … and {report.refused - MAX_PROBLEMS_SHOWN} more problems")
    if report.refused:
        raise typer.Exit(2)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} h"


@testing_app.command("lab-status")
@domain_errors
def lab_status(
    day: str = typer.Option(None, "--date", help="Local day, YYYY-MM-DD (default: today)"),
    late_hours: float = typer.Option(12.0, help="A result later than this after receipt is late"),
) -> None:
    """Each lab's figures for a day: load against capacity, turnaround, positive, reversal and
    late rates, and its rating."""
    from bastion.core.errors import InvalidInput
    from bastion.testing import labs

    on: date | None = None
    if day:
        try:
            on = date.fromisoformat(day)
        except ValueError:
            raise InvalidInput.one("date", "field.bad_date", value=day[:40]) from None
    with transaction() as session:
        figures = labs.lab_figures(
            db_session=session, principal=system_principal(), day=on, late_hours=late_hours
        )
    shown = figures[0].day if figures else (on or clock.today())
    table = Table(title=f"Labs on {shown.isoformat()}")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("Lab", "left"),
        ("Capacity", "right"),
        ("Received", "right"),
        ("Load", "right"),
        ("Pending", "right"),
        ("TAT median", "right"),
        ("TAT p90", "right"),
        ("Positive", "right"),
        ("Reversal", "right"),
        ("Late", "right"),
        ("Rating", "center"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for f in figures:
        table.add_row(
            f"{f.code} {f.name}",
            str(f.capacity),
            str(f.received),
            _pct(f.load),
            str(f.pending),
            _hours(f.turnaround_median_hours),
            _hours(f.turnaround_p90_hours),
            _pct(f.positive_rate),
            f"{_pct(f.reversal_rate)} ({f.pools_reversed}/{f.pools_decided})",
            _pct(f.late_share),
            f"[{RATING_STYLE[f.rating]}]{f.rating}[/]",
        )
    if not figures:
        console.print("no active labs")
        return
    console.print(table)


# The coverage commands (round-status, rebuild-coverage) live in their own module.
from bastion.cli import testing_coverage  # noqa: E402 - needs testing_app defined above

testing_coverage.register(testing_app)

from bastion.cli import testing_scans  # noqa: E402 - needs testing_app defined above

testing_scans.register(testing_app)

from bastion.cli import testing_transport  # noqa: E402 - needs testing_app defined above

testing_transport.register(testing_app)

from bastion.cli import testing_sites  # noqa: E402 - needs testing_app defined above

testing_sites.register(testing_app)
